"""Where results are recorded and written: secrets redacted, each result collected, compliance.json
(rewritten while the run goes on) and the final reports, the console summary, Allure labels."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from . import __version__
from .catalog import Requirement, default_catalog
from .coordination import SITE_KEY, STARTED_KEY
from .report_json import build_compliance, write_compliance
from .site import Site
from .sitepacks import registry as pack_registry
from .targets import is_secret_key


def allure_active(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "allure_report_dir", None))


def redact(value: Any, secrets: list[str]) -> Any:
    if not secrets:
        return value
    if isinstance(value, str):
        for s in secrets:
            if s and s in value:
                value = value.replace(s, "<redacted>")
        return value
    if isinstance(value, dict):
        return {redact(k, secrets): ("<redacted>" if is_secret_key(str(k)) else redact(v, secrets))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value


def redact_report(report: pytest.TestReport, exc: BaseException | None, secrets: list[str]) -> None:
    """Secrets out of the exception (Allure formats it itself), the traceback pytest already rendered
    (with --showlocals too) and captured output sections (JUnit's system-out)."""
    if exc is not None:
        exc.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in exc.args)
        if isinstance(getattr(exc, "message", None), str):
            exc.message = redact(exc.message, secrets)  # type: ignore[attr-defined]
    if report.longrepr is not None and not isinstance(report.longrepr, str | tuple):
        text = str(report.longrepr)
        if any(s in text for s in secrets):
            report.longrepr = redact(text, secrets)
    report.sections = [(title, redact(body, secrets)) for title, body in report.sections]


_LAST_WRITE = [0.0]


def label_for_allure(item: pytest.Item, req: Requirement, site: Site, target: Any, result: dict[str, Any]) -> None:
    from .report.allure import apply_labels, attach_evidence, labels_for
    entry = {"id": req.id, "title": req.title, "level": req.level, "area": req.area, "url": req.url,
             "source": req.source, "requirement": req.requirement, "remediation": req.remediation,
             "roles": list(req.roles)}
    try:
        apply_labels(labels_for(entry, result, site.profile, site.phase,
                                target_roles=list(target.roles) if target is not None else None))
        attach_evidence(result, site.report_dir)
    except Exception as exc:  # noqa: BLE001 - labels are decoration; never lose the verdict over them
        item.warn(pytest.PytestWarning(f"wirecheck: could not label the Allure result: {exc}"))


def record_report(report: pytest.TestReport) -> None:
    data = getattr(report, "wirecheck", None)
    if not data:
        return
    RESULTS.append(data)
    cfg = CONFIG.get("config")
    # a run that is killed still leaves a valid (partial) report behind
    if cfg is not None and not hasattr(cfg, "workerinput") and time.monotonic() - _LAST_WRITE[0] > 2:
        _LAST_WRITE[0] = time.monotonic()
        write(cfg, complete=False)


CONFIG: dict[str, pytest.Config] = {}
RESULTS: list[dict[str, Any]] = []


def registry(root: Path, packs=()) -> dict[str, set[str]]:
    """Requirement IDs that have checks, per phase, from the suites' (and the site packs') source
    (read once per run: compliance.json is rewritten while the run goes on)."""
    key = (str(root), tuple(str(p) for p in packs))
    if key not in _REGISTRY:
        _REGISTRY[key] = _read_registry(root, packs)
    return {phase: set(ids) for phase, ids in _REGISTRY[key].items()}


_REGISTRY: dict[tuple[str, tuple[str, ...]], dict[str, set[str]]] = {}


def _read_registry(root: Path, packs=()) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"preflight": set(), "acceptance": set()}
    for phase, ids in pack_registry(list(packs)).items():
        found[phase] |= ids
    pat = re.compile(r"""@requirement\(\s*["']([A-Z0-9-]+)["']""")
    for phase in found:
        for path in (root / "suites" / phase).rglob("*.py"):
            found[phase].update(pat.findall(path.read_text(encoding="utf-8", errors="replace")))
    return found


def write(config: pytest.Config, complete: bool, final: bool = False) -> dict[str, Any]:
    site = config.stash[SITE_KEY]
    root = Path(__file__).resolve().parent.parent
    compliance = build_compliance(
        catalog=default_catalog(), site=site, results=RESULTS, registry=registry(root, site.site_packs),
        started=config.stash[STARTED_KEY], version=__version__)
    compliance["complete"] = complete
    stopped = getattr(config, "_wc_stopped", None)
    if stopped:
        compliance["stopped"] = stopped
    try:
        if final:
            from .report import write_all
            exc_ = getattr(config, "_wc_exceptions", {}) or {}
            compliance = write_all(site.report_dir, compliance, waivers=exc_.get("waivers"),
                                   attestations=exc_.get("attestations"), today=exc_.get("today"),
                                   signing_key=exc_.get("key"))
        else:
            # while the run goes on: without indentation (json's C encoder, a tenth of the CPU for the
            # 400-KB file of a 17-host run); the final file is indented
            write_compliance(site.report_dir, compliance, indent=None)
    except Exception as exc:  # noqa: BLE001 - report the failure in one line, keep the run's verdict
        config._wc_write_error = f"could not write the report in {site.report_dir}: {exc}"  # type: ignore[attr-defined]
    return compliance


def finish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput") or SITE_KEY not in config.stash:
        return
    if getattr(config.option, "collectonly", False):
        return
    if session.shouldstop:
        config._wc_stopped = str(session.shouldstop)  # type: ignore[attr-defined]
    if exitstatus == pytest.ExitCode.INTERRUPTED and not getattr(config, "_wc_stopped", None):
        config._wc_stopped = "interrupted"  # type: ignore[attr-defined]
    config._wc_compliance = write(config, complete=exitstatus != pytest.ExitCode.INTERRUPTED,  # type: ignore[attr-defined]
                                   final=True)
    alluredir = getattr(config.option, "allure_report_dir", None)
    if alluredir and config._wc_compliance:  # type: ignore[attr-defined]
        from .report.allure import write_categories, write_environment
        write_environment(Path(alluredir), config._wc_compliance)  # type: ignore[attr-defined]
        write_categories(Path(alluredir))


def summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    compliance = getattr(config, "_wc_compliance", None)
    if not compliance:
        return
    from .report_json import summary_lines
    for line in summary_lines(compliance, verbose=config.getoption("verbose", 0) > 0):
        terminalreporter.write_line(line)
    err = getattr(config, "_wc_write_error", None)
    if err:
        terminalreporter.write_line(f"wirecheck: {err}", red=True)
    else:
        terminalreporter.write_line(f"wirecheck: results written to {config.stash[SITE_KEY].report_dir}/compliance.json")

