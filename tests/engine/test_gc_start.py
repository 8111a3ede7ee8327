"""The cyclic collector is off while a run starts and on while its checks run (wirecheck.plugin):
a real run of the suites, observed by a plugin of its own."""

from __future__ import annotations

import json

import pytest

from tests.support.wc import run_suite

PROBE = '''
import gc, json, os

SEEN = {}

def pytest_configure(config):
    SEEN["configure"] = gc.isenabled()

def pytest_collection_modifyitems(items):
    SEEN["collection"] = gc.isenabled()

def pytest_runtest_call(item):
    SEEN.setdefault("checks", set()).add(gc.isenabled())

def pytest_unconfigure(config):
    SEEN["frozen"] = gc.get_freeze_count() > 0
    if "checks" in SEEN:
        SEEN["checks"] = sorted(SEEN["checks"])
    who = config.workerinput["workerid"] if hasattr(config, "workerinput") else "main"
    with open(os.path.join(os.environ["GC_PROBE_OUT"], who + ".json"), "w") as fh:
        json.dump(SEEN, fh)
'''


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_collector_off_at_start_and_on_for_the_checks(tmp_path, workers) -> None:
    (tmp_path / "gcprobe.py").write_text(PROBE)
    out = tmp_path / "seen"
    out.mkdir()
    run = run_suite(["-p", "gcprobe", "-k", "test_cpu_cores or test_os_release", *workers], tmp_path / "r",
                    env={"PYTHONPATH": str(tmp_path), "GC_PROBE_OUT": str(out)})
    assert run.rc in (0, 1), run.stdout[-2000:] + run.stderr[-2000:]
    seen = {p.stem: json.loads(p.read_text()) for p in out.iterdir()}
    if workers:      # the controller collects nothing and runs no check; it has its collector back
        assert sorted(seen) == ["gw0", "gw1", "main"], seen
        assert seen.pop("main") == {"configure": False, "frozen": True}
    checks = set()
    for who, s in seen.items():
        assert (s["configure"], s["collection"], s["frozen"]) == (False, False, True), (who, s)
        checks.update(s.get("checks", []))
    assert checks == {True}, seen
