"""Preflight and acceptance gates: run `pytest suites/<phase>` in a subprocess and judge compliance.json.

A gate blocks on any result with status `fail` (a MUST broken) or `error` (could not measure), and
when the run produced no compliance.json at all. `warn`, `not_applicable` and `not_evaluated` are
reported but do not block. The acceptance gate retries a stack that is still converging: bounded by
`timeout`, one attempt every `interval` seconds, remaining time shown before each wait.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCKING = ("fail", "error")


@dataclass
class GateResult:
    phase: str
    passed: bool
    exit_code: int | None
    report: str
    command: str
    summary: dict[str, int] = field(default_factory=dict)
    blocking: list[dict[str, str]] = field(default_factory=list)
    problem: str | None = None  # the run itself failed (no compliance.json)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0

    def summary_line(self) -> str:
        if self.problem:
            return self.problem
        if self.passed:
            return "passed (" + ", ".join(f"{k}={v}" for k, v in self.summary.items() if v) + ")"
        ids = sorted({b["id"] for b in self.blocking})
        first = self.blocking[0] if self.blocking else {}
        detail = ""
        if first:
            msg = first.get("message") or ""
            prefix = f"{first.get('id')} on {first.get('target')}"
            detail = f" — first: {msg if msg.startswith(str(first.get('id'))) else f'{prefix}: {msg}'}"
        return f"{len(ids)} requirement(s) not met: {', '.join(ids)}{detail}"

    def to_dict(self) -> dict[str, Any]:
        return {"status": "pass" if self.passed else "fail", "exit_code": self.exit_code, "report": self.report,
                "command": self.command, "summary": self.summary, "blocking": self.blocking,
                "problem": self.problem, "attempts": self.attempts, "elapsed_s": round(self.elapsed_s, 1)}


def gate_command(phase: str, report_dir: Path, *, profile: str, inventory: Path | None, suites: Path,
                 pytest_args: list[str], kubeconfig: Path | None = None, wsd: Path | None = None,
                 phase_args: list[str] | None = None) -> tuple[list[str], str]:
    argv = [sys.executable, "-m", "pytest", str(suites / phase), "-p", "no:cacheprovider",
            "--profile", profile, "--report-dir", str(report_dir)]
    if inventory:
        argv += ["--ansible-inventory", str(inventory)]
    if kubeconfig:
        argv += ["--kubeconfig", str(kubeconfig)]
    if wsd and phase == "preflight":
        argv += ["--wire-server-deploy", str(wsd)]  # CTRL-WSD-CHECKOUT judges the checkout in use
    argv += list(pytest_args) + list(phase_args or [])
    cwd = suites.resolve().parent
    return argv, f"(cd {shlex.quote(str(cwd))} && {shlex.join(argv)})"


def judge(report_dir: Path, exit_code: int | None) -> tuple[bool, dict[str, int], list[dict[str, str]], str | None]:
    path = report_dir / "compliance.json"
    if not path.is_file():
        return False, {}, [], f"the {report_dir.name} run produced no compliance.json (pytest exit {exit_code})"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return False, {}, [], f"{path} is not valid JSON: {exc}"
    blocking: list[dict[str, str]] = []
    ran = 0
    for req in data.get("requirements", []):
        for res in req.get("results", []):
            ran += 1
            if res.get("status") in BLOCKING:
                blocking.append({"id": req.get("id", "?"), "level": req.get("level", ""),
                                 "status": res.get("status"), "target": res.get("target", ""),
                                 "message": (res.get("message") or "")[:300]})
    summary = {k: int(v) for k, v in (data.get("summary") or {}).items()}
    if ran == 0:
        return False, summary, [], f"the {report_dir.name} run judged no requirement (pytest exit {exit_code})"
    return not blocking, summary, blocking, None


def run_gate_once(phase: str, report_dir: Path, *, timeout: float | None = None, **kw: Any) -> GateResult:
    argv, line = gate_command(phase, report_dir, **kw)
    report_dir.mkdir(parents=True, exist_ok=True)
    stale = report_dir / "compliance.json"
    stale.unlink(missing_ok=True)  # never judge an older attempt's file
    log = report_dir / "pytest.log"
    start = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        # the ansible the preflight judges (CTRL-ANSIBLE-*) is the one the playbooks run with
        from provisioners.runner import tool_path_env
        proc = subprocess.Popen(argv, cwd=kw["suites"].resolve().parent, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, "PATH": tool_path_env()})
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
    passed, summary, blocking, problem = judge(report_dir, code)
    if code is None:
        passed, problem = False, f"the {phase} run did not finish within {timeout:g}s (see {log})"
    elif problem:
        problem += f"; see {log}"
    return GateResult(phase=phase, passed=passed, exit_code=code, report=str(report_dir), command=line,
                      summary=summary, blocking=blocking, problem=problem, elapsed_s=time.monotonic() - start)


def run_gate_until(phase: str, report_dir: Path, *, timeout: float, interval: float,
                   say: Callable[[str], None], run_timeout: float | None = 1800.0, **kw: Any) -> GateResult:
    """Run the gate; while it blocks and `timeout` seconds have not passed, wait `interval` and retry."""
    start = time.monotonic()
    attempts: list[dict[str, Any]] = []
    n = 0
    while True:
        n += 1
        res = run_gate_once(phase, report_dir, timeout=run_timeout, **kw)
        attempts.append({"attempt": n, "passed": res.passed, "exit_code": res.exit_code,
                         "blocking": sorted({b["id"] for b in res.blocking}), "problem": res.problem,
                         "elapsed_s": round(res.elapsed_s, 1)})
        say(f"{phase} attempt {n}: {'PASS' if res.passed else 'FAIL'} — {res.summary_line()}")
        remaining = timeout - (time.monotonic() - start)
        # a run that could not even produce a report (bad option, crash) will not converge: do not retry
        if res.passed or res.problem and "produced no compliance.json" in res.problem or remaining < interval:
            break
        say(f"{phase}: stack may still be converging; retrying in {interval:g}s "
            f"({remaining:.0f}s of {timeout:g}s left)")
        time.sleep(interval)
    res.attempts = attempts
    res.elapsed_s = time.monotonic() - start
    return res
