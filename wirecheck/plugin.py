"""The pytest plugin: the hooks only, each handing over to the module that does that job.

- options and the site ........ wirecheck.options (command-line options, the Site, waiver files)
- run coordination ............ wirecheck.coordination (xdist by host, host priming, deadline, closing)
- where a verdict is made ..... wirecheck.verdicts (targets per check, applicability, the six outcomes)
- where results are recorded
  and written ................. wirecheck.results (redaction, compliance.json and reports, the summary)
"""

from __future__ import annotations

import datetime as dt
import gc

import pytest

from . import coordination, options, results, verdicts
from .catalog import CatalogError, Spec, requirement_of
from .coordination import CONTROL, RESULTS_KEY, SHARED_KEY, SITE_KEY, STARTED_KEY
from .site import Site, SiteError
from .targets import TargetError, local_target
from .transport import enable_sharing, share_run_dir

__all__ = [
    "pytest_addoption", "pytest_configure", "pytest_unconfigure", "pytest_xdist_make_scheduler",
    "pytest_collection_finish", "pytest_configure_node", "pytest_generate_tests", "pytest_collection_modifyitems",
    "pytest_runtest_setup", "pytest_runtest_call", "pytest_runtest_makereport", "pytest_runtest_logreport",
    "pytest_sessionfinish", "pytest_terminal_summary", "pytest_xdist_auto_num_workers", "pytest_runtestloop",
    "site", "spec", "control",
    "SITE_KEY",
]

# The start of a run (pytest's own start, Ansible's inventory parser, the checks' imports, collection)
# allocates objects that mostly live as long as the run: the cyclic collector walked them some 200
# times there (70 ms of CPU on the single-threaded start of a 17-host run, for a few MB of garbage).
# It is off until collection is done: pytest_collection_finish (or, on an xdist controller, which
# collects nothing, pytest_runtestloop) freezes what is alive then and turns it back on; a run that
# ends before gets it back in pytest_unconfigure.  (Turned off in pytest_addoption, this plugin's
# first hook: importing the module alone changes nothing.)
def pytest_addoption(parser: pytest.Parser) -> None:
    gc.disable()
    options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(id): the catalog requirement a check verifies")
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") in ("no", "load"):
        config.option.dist = "loadgroup"   # a host's checks on one worker: its facts are measured once
    if getattr(config.option, "help", False):
        return
    winput = getattr(config, "workerinput", None)
    if winput and winput.get("wirecheck_run_dir"):
        share_run_dir(winput["wirecheck_run_dir"])   # the controller's SSH masters and host snapshots
        config.stash[SHARED_KEY] = winput["wirecheck_run_dir"]
    try:
        site = options.build_site(config)
    except (SiteError, TargetError, CatalogError) as exc:
        options.fail_usage(str(exc))
    config.stash[SITE_KEY] = site
    config.stash[RESULTS_KEY] = []
    results.CONFIG["config"] = config
    try:
        config._wc_exceptions = options.load_exceptions(config)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - a bad waiver/attestation file is a user error: one line
        options.fail_usage(str(exc))
    if not hasattr(config, "workerinput"):
        # a report being written is not sealed: drop the seal of an earlier run in the same directory
        for name in ("integrity.json", "integrity.sig"):
            (site.report_dir / name).unlink(missing_ok=True)
    config.stash[STARTED_KEY] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if coordination.xdist_controller(config) and not config.option.collectonly:
        # While the workers start (two seconds and more), this process connects to every host and
        # takes its snapshot; the workers then use its connections and read what it measured.
        config.stash[SHARED_KEY] = enable_sharing()
        coordination.PRIMER.start(site)
    elif (not hasattr(config, "workerinput") and not getattr(config.option, "numprocesses", None)
          and not config.option.collectonly and len(site.targets) > 1):
        coordination.PRIMER.start(site)      # a serial run: the same, while the checks are collected


def pytest_unconfigure(config: pytest.Config) -> None:
    gc.enable()
    coordination.unconfigure(config)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    # an xdist controller collects nothing (no pytest_collection_finish): the collector is back on here
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:  # xdist hook: what -n auto means
    return coordination.auto_workers(config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # xdist hook (controller side)
    return coordination.make_scheduler(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    coordination.write_groups(session)
    coordination.start_prefetch(session)
    # what is alive now (modules, the catalog, the collected checks) lives as long as the run: the
    # cyclic collector need not walk it again at each collection (half its CPU in a 17-host run)
    gc.freeze()
    gc.enable()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # xdist hook (controller side)
    coordination.configure_node(node)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    verdicts.parametrize_targets(metafunc)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    coordination.group_items(config, items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    coordination.check_deadline(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    return (yield from verdicts.call_check(item))


@pytest.hookimpl(wrapper=True, trylast=True)   # innermost: report tools (Allure) see our outcome
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    return (yield from verdicts.make_report(item, call))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    results.record_report(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    results.finish(session, exitstatus)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    results.summary(terminalreporter, exitstatus, config)


# --- fixtures every check can take --------------------------------------------------------------

@pytest.fixture
def site(request: pytest.FixtureRequest) -> Site:
    return request.config.stash[SITE_KEY]


@pytest.fixture
def spec(request: pytest.FixtureRequest) -> Spec:
    req = requirement_of(request.node)
    if req is None:
        raise RuntimeError("the spec fixture is for checks marked with @requirement")
    return Spec(req, request.config.stash[SITE_KEY].overrides.get(req.id, {}))


@pytest.fixture
def control(request: pytest.FixtureRequest):
    """The machine running pytest (the Ansible control machine in Wire's docs)."""
    if "t" not in CONTROL:
        t = local_target(["control"])
        t.name = "control"
        t.command_timeout = request.config.option.command_timeout
        CONTROL["t"] = t
    return CONTROL["t"]
