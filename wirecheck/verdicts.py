"""Where a verdict is made: which targets a check runs on, whether it applies, and how what the
check recorded or raised becomes one of the six outcomes with its evidence."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .catalog import Requirement, default_catalog, requirement_of
from .coordination import SITE_KEY, Alarm, RunTimeLimit, prime
from .exit_status import report_outcome
from .outcome import ERROR, FAIL, NOT_APPLICABLE, NOT_EVALUATED, PASS, WARN, Broken, Outcome, begin, end
from .report_json import jsonable
from .results import allure_active, label_for_allure, redact, redact_report
from .site import Site
from .transport import TransportError


def parametrize_targets(metafunc: pytest.Metafunc) -> None:
    mark = metafunc.definition.get_closest_marker("requirement")
    if mark is None or "target" not in metafunc.fixturenames:
        return
    req = default_catalog()[mark.args[0]]
    site = metafunc.config.stash[SITE_KEY]
    targets = [t for t in site.targets if req.applies_to_roles(t.roles)]
    if targets:
        metafunc.parametrize("target", targets, ids=[t.name for t in targets], scope="function")
    else:
        metafunc.parametrize("target", [None], ids=["no-host-in-role"], scope="function")


def applicability(req: Requirement, site: Site, item: pytest.Item) -> str | None:
    if site.profile not in req.profiles:
        return f"{req.id} is for the {' and '.join(req.profiles)} profile; this run is {site.profile}"
    if site.phase not in req.phases:
        return f"{req.id} is checked in the {' and '.join(req.phases)} phase; this run is {site.phase}"
    callspec = getattr(item, "callspec", None)
    if callspec and "target" in callspec.params and callspec.params["target"] is None:
        return f"no target has role {', '.join(req.roles)}"
    return None


def call_check(item: pytest.Item):
    req = requirement_of(item)
    if req is None:
        return (yield)
    site = item.config.stash[SITE_KEY]
    ev, token = begin()
    item._wc_evidence = ev  # type: ignore[attr-defined]
    item._wc_started = time.monotonic()  # type: ignore[attr-defined]
    try:
        reason = applicability(req, site, item)
        if reason:
            raise NotApplicableMarker(reason)
        prime(item, site)
        try:
            with Alarm(item):
                result = yield
        except Outcome as exc:
            # A verdict, not a crash: its traceback (and any chained library error) is never shown, and
            # formatting a deep one costs seconds. Drop both before pytest renders the report.
            exc.__cause__ = exc.__context__ = None
            exc.__suppress_context__ = True
            raise exc.with_traceback(None) from None
        except TransportError as exc:
            raise exc.with_traceback(None) from None
        if ev.broken:
            raise Broken("; ".join(ev.broken))
        return result
    finally:
        end(token)


class NotApplicableMarker(Outcome):
    status = NOT_APPLICABLE


def _message(req: Requirement, target_name: str, status: str, text: str, method: str | None) -> str:
    how = f" ({method})" if method and method not in text else ""
    return f"{req.id} on {target_name}: {text}{how}"


def _cheap_excinfo(exc: BaseException) -> pytest.ExceptionInfo:
    """A stand-in for pytest's report building: a verdict's text, without a traceback to render."""
    try:
        raise pytest.fail.Exception(str(exc), pytrace=False)
    except pytest.fail.Exception:
        return pytest.ExceptionInfo.from_current()


def make_report(item: pytest.Item, call: pytest.CallInfo):
    original = call.excinfo
    if original is not None and isinstance(original.value, (Outcome, TransportError)) \
            and requirement_of(item) is not None:
        # pytest would render a full traceback for the report (0.1 s and more per verdict) only for us
        # to replace it; let it render the message. Outer hooks (Allure) see the real exception again.
        call.excinfo = _cheap_excinfo(original.value)
    try:
        report = yield
    finally:
        call.excinfo = original
    req = requirement_of(item)
    if req is None:
        return report
    if call.when == "setup" and report.passed:
        return report
    if call.when == "teardown" and (report.passed or getattr(item, "_wc_reported", False)):
        return report
    site = item.config.stash[SITE_KEY]
    ev = getattr(item, "_wc_evidence", None)
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("target") if callspec else None
    if target is not None:
        target_name = target.name
    elif "control" in getattr(item, "fixturenames", ()):
        target_name = "control"
    else:
        target_name = site.domain or "site"
    exc = call.excinfo.value if call.excinfo else None
    details: dict[str, Any] = dict(ev.details) if ev else {}
    keep_traceback = False
    if exc is None and call.when == "call" and not (ev and ev.held):
        # No pass without a measurement: a check that returned without one expectation holding
        # judged nothing (a branch that forgot to measure, or to say why it could not).
        status, text = ERROR, ("the check ended without comparing any measured value with the requirement, "
                               "so it cannot pass (a defect in the check: report it)")
    elif exc is None:
        status, text = PASS, None
    elif isinstance(exc, Broken):
        status, text = (FAIL if req.level == "must" else WARN), exc.message
    elif isinstance(exc, RunTimeLimit):
        status, text = NOT_EVALUATED, exc.message
    elif isinstance(exc, Outcome):
        status, text = exc.status, exc.message
        details.update({k: v for k, v in exc.evidence.items() if v is not None})
    elif isinstance(exc, TransportError):
        status, text = ERROR, f"could not measure: {exc}"
    elif isinstance(exc, (pytest.skip.Exception,)):
        status, text = NOT_EVALUATED, f"skipped: {exc}"
    else:
        status, text = ERROR, f"check crashed: {type(exc).__name__}: {exc}"
        keep_traceback = True
    observed = ev.observed if ev else None
    expected = ev.expected if ev else None
    method = ev.method if ev else None
    if text is None:
        if ev and ev.held:
            text = "; ".join(ev.held)
        else:
            text = f"{observed}" if observed is not None else "as required"
    message = _message(req, target_name, status, text, method)
    result = {
        "target": target_name, "status": status, "observed": jsonable(observed), "expected": jsonable(expected),
        "method": method, "message": message,
        "remediation": req.remediation if status in (FAIL, WARN, ERROR) else None,
        "check": item.nodeid, "duration": round(time.monotonic() - getattr(item, "_wc_started", time.monotonic()), 3),
    }
    if details:
        result["evidence"] = jsonable(details)
    result = redact(result, site.secrets)
    if site.secrets:      # what report tools read besides our result: the exception (Allure), tracebacks, output
        redact_report(report, exc, site.secrets)
    report.wirecheck = {"id": req.id, "result": result}
    item._wc_reported = True  # type: ignore[attr-defined]
    if allure_active(item.config):
        label_for_allure(item, req, site, target, result)
    if call.when == "setup" and status == PASS:
        return report
    report.outcome = report_outcome(status)       # error and fail fail the run (wirecheck.exit_status)
    if report.outcome == "passed":
        report.longrepr = None
    elif report.outcome == "skipped":
        path, lineno, _ = item.reportinfo()
        report.longrepr = (str(path), (lineno or 0) + 1, f"{status}: {result['message']}")
    else:
        if not keep_traceback:
            fix = f"\n  fix: {req.remediation}" if req.remediation and status == FAIL else ""
            report.longrepr = result["message"] + fix
    return report

