from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from wirecheck.cli import build_parser
from wirecheck.report import diff, write_all

from .helpers import DATA, REPO, TODAY


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "wirecheck.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


def test_compare_two_nights(demo_old, demo_new):
    d = diff.compare(demo_old, demo_new)
    assert [(c.requirement, c.target, c.old, c.new) for c in d.new_failures] == [
        ("DEMO-NET-IP-FORWARD", "wiab-1", "pass", "fail")]
    assert [(c.requirement, c.old, c.new) for c in d.fixed] == [("DEMO-SYS-CPU", "fail", "pass")]
    changed = {c.requirement: c.detail for c in d.changed_evidence}
    assert set(changed) == {"DEMO-SYS-DISK", "IMP-INOTIFY", "IMP-TIME-DEMO"}
    assert 'observed: {"/": "96.2 GiB"} → {"/": "120.5 GiB"}' in changed["DEMO-SYS-DISK"]
    assert d.new_must_failures[0].requirement == "DEMO-NET-IP-FORWARD"


def test_waived_failure_counts_as_fixed(demo_new, waivers_file):
    from wirecheck.report import apply_exceptions, waivers

    after = apply_exceptions(demo_new, waivers=waivers.load(waivers_file), today=TODAY)
    d = diff.compare(demo_new, after)
    assert [(c.requirement, c.new) for c in d.fixed] == [("DEMO-SYS-DISK", "waived")]


def test_requirements_added_and_removed(demo_old, demo_new):
    demo_new["requirements"] = [r for r in demo_new["requirements"] if r["id"] != "DNS-SPF"]
    demo_new["requirements"].append({**demo_old["requirements"][0], "id": "NEW-REQ"})
    d = diff.compare(demo_old, demo_new)
    assert d.requirements_added == ["NEW-REQ"] and d.requirements_removed == ["DNS-SPF"]


def test_cli_diff_dirs_and_files(tmp_path, demo_old, demo_new):
    write_all(tmp_path / "old", demo_old, today=TODAY)
    write_all(tmp_path / "new", demo_new, today=TODAY)
    cp = run_cli("diff", str(tmp_path / "old"), str(tmp_path / "new"))
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines[0] == "New failures: 1"
    assert lines[1].startswith("  DEMO-NET-IP-FORWARD on wiab-1 [must]: pass → fail — DEMO-NET-IP-FORWARD on wiab-1: "
                               "net.ipv4.ip_forward = 0")
    assert "Fixed: 1" in lines and "  DEMO-SYS-CPU on wiab-1 [must]: fail → pass — now pass" in lines
    assert "Changed evidence (same status): 3" in lines
    cp = run_cli("diff", "--exit-code", "--json", str(DATA / "demo-preflight-2026-11-26.json"),
                 str(tmp_path / "new" / "compliance.json"))
    assert cp.returncode == 1
    assert json.loads(cp.stdout)["new_failures"][0]["requirement"] == "DEMO-NET-IP-FORWARD"
    cp = run_cli("diff", "--exit-code", str(tmp_path / "new"), str(tmp_path / "new"))
    assert cp.returncode == 0 and cp.stdout.startswith("New failures: 0")


@pytest.mark.parametrize("args", [
    ("diff", "/nonexistent/old", "/nonexistent/new"),
    ("verify-report", "/nonexistent/dir"),
    ("html", "/nonexistent/dir"),
    ("sign", "/nonexistent/dir", "--key", "/nonexistent/key"),
    ("allure", "/nonexistent/dir"),
])
def test_user_mistakes_end_with_one_line(args):
    cp = run_cli(*args)
    assert cp.returncode == 2
    assert cp.stderr.startswith("wirecheck: error: ") and cp.stderr.count("\n") == 1, cp.stderr
    assert "Traceback" not in cp.stderr and cp.stdout == ""


def test_not_a_report(tmp_path):
    (tmp_path / "compliance.json").write_text("[1, 2")
    cp = run_cli("diff", str(tmp_path), str(tmp_path))
    assert cp.returncode == 2 and "not a readable compliance.json" in cp.stderr and cp.stderr.count("\n") == 1
    (tmp_path / "compliance.json").write_text("{}")
    cp = run_cli("html", str(tmp_path))
    assert cp.returncode == 2 and "no 'requirements' list" in cp.stderr


def test_help_lists_every_subcommand():
    cp = run_cli("--help")
    assert cp.returncode == 0
    for cmd in ("verify-report", "diff", "html", "sign", "allure", "gate"):
        assert cmd in cp.stdout
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"verify-report", "diff", "html", "sign", "allure", "gate"}
    for cmd in sub.choices:
        cp = run_cli(cmd, "--help")
        assert cp.returncode == 0 and cp.stdout.startswith(f"usage: wirecheck {cmd}")


def test_missing_subcommand_is_a_usage_error():
    cp = run_cli()
    assert cp.returncode == 2 and "required: COMMAND" in cp.stderr


def test_gate_fails_on_must_only_and_honours_waivers(tmp_path, demo_new):
    from wirecheck.report import waivers

    write_all(tmp_path / "r", demo_new, today=TODAY)
    cp = run_cli("gate", str(tmp_path / "r"))
    assert cp.returncode == 1
    assert cp.stdout.splitlines() == [
        "gate failed: 3 MUST requirement(s) not met",
        "  DEMO-SYS-DISK [fail] on wiab-1: more than 200 GiB disk",
        "  DEMO-NET-IP-FORWARD [fail] on wiab-1: IPv4 forwarding between interfaces",
        "  DEMO-NET-FIREWALL [error] on wiab-1: no host firewall interfering",
    ]
    ws = waivers.parse([{"requirement": rid, "justification": "accepted for the pilot", "approver": "CISO",
                         "expires": "2026-12-31"} for rid in ("DEMO-SYS-DISK", "DEMO-NET-IP-FORWARD")])
    write_all(tmp_path / "w", demo_new, today=TODAY, waivers=ws)
    cp = run_cli("gate", str(tmp_path / "w"), "--allow-errors")
    assert cp.returncode == 0 and cp.stdout == "gate passed: no MUST requirement failed (2 waived)\n"
    cp = run_cli("gate", str(tmp_path / "w"), "--allow-errors", "--level", "must,should")
    assert cp.returncode == 1 and "  IMP-INOTIFY [warn] on wiab-1" in cp.stdout
