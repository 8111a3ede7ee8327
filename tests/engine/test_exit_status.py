"""The exit status of a run follows its worst result: `error` (could not measure) and `fail` make it
non-zero on their own; pass, warn and not_applicable alone exit 0.  And a check that returns without
judging anything is an error, not a pass.

Each case is a real pytest run of a small suite using the engine's plugin, with checks that end in
one way each (catalog requirements of the demo preflight; no target is touched).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.wc import QUIET_PLUGINS, REPO

CONFTEST = "from fixtures.checks import *  # noqa\nfrom wirecheck.plugin import *  # noqa\n"
CHECKS = {
    "pass": 'expect(16, "CPU cores", method="stand-in").at_least(8)',
    "fail": 'expect(2, "CPU cores", method="stand-in").at_least(8)',
    "error": 'cannot_measure("`nproc` failed on the host (exit 127): sh: 1: nproc: not found")',
    "error_none": 'expect(None, "CPU cores", method="nproc").at_least(8)',
    "error_unjudged": 'record(note="measured nothing, said nothing")',
    "not_applicable": 'not_applicable("not for this host")',
}
# a MUST for pass/fail/error, a SHOULD (IMP-INOTIFY) for warn: a broken SHOULD is a warning
WARN = ('@requirement("IMP-INOTIFY")\ndef test_warn():\n'
        '    expect(128, "fs.inotify.max_user_instances", method="stand-in").at_least(512)\n')


def run(tmp_path, kinds: list[str], warn: bool = False) -> tuple[int, dict[str, str], dict]:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    body = "from wirecheck import cannot_measure, expect, not_applicable, record, requirement\n\n"
    for kind in kinds:
        body += f'\n@requirement("DEMO-SYS-CPU")\ndef test_{kind}():\n    {CHECKS[kind]}\n'
    if warn:
        body += "\n" + WARN
    (suite / "test_cases.py").write_text(body)
    proc = subprocess.run([sys.executable, "-m", "pytest", str(suite), "-q", *QUIET_PLUGINS, "--rootdir", str(suite),
                           "--report-dir", str(tmp_path / "r"), "--phase", "preflight", "--profile", "demo"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    compliance = json.loads((tmp_path / "r" / "compliance.json").read_text())
    statuses = {r["check"].rsplit("::", 1)[1]: r["status"] for req in compliance["requirements"]
                for r in req["results"]}
    return proc.returncode, statuses, compliance


@pytest.mark.parametrize("kinds,warn,bad", [
    (["error"], False, True),
    (["error_none"], False, True),
    (["error_unjudged"], False, True),
    (["fail"], False, True),
    (["pass", "error"], True, True),
    (["pass", "not_applicable"], True, False),
    (["pass"], False, False),
    (["not_applicable"], True, False),
])
def test_exit_status_follows_the_worst_result(tmp_path, kinds, warn, bad):
    rc, statuses, _ = run(tmp_path, kinds, warn)
    expected = {f"test_{k}": k.split("_")[0] if k.startswith("error") else k for k in kinds}
    if warn:
        expected["test_warn"] = "warn"
    assert statuses == expected
    assert (rc != 0) is bad, (rc, statuses)
    if bad:
        assert rc == 1          # pytest's "tests failed", not a usage or internal error


def test_errors_say_why(tmp_path):
    _, _, compliance = run(tmp_path, ["error_none", "error_unjudged"])
    msgs = {r["check"].rsplit("::", 1)[1]: r["message"] for req in compliance["requirements"] for r in req["results"]}
    assert msgs["test_error_none"] == ("DEMO-SYS-CPU on site: CPU cores: no value was measured, so it "
                                       "cannot be compared with >= 8 (nproc)")
    assert "ended without comparing any measured value with the requirement, so it cannot pass" in \
        msgs["test_error_unjudged"]
