"""Run install steps: playbooks through ansible-runner with live progress, commands through subprocess.

The full Ansible output of every playbook is appended to <report_dir>/install/ansible.log; one
summary line per event lands on the progress callback (stderr by default):

    [  12.4s] install-demo | PLAY [Deploy Wire] | TASK [start nginx] | n1 changed | ok=7 changed=3 failed=0
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from provisioners import InstallResult, ProvisionContext, Step, StepOutcome

Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "step"


def tool_path_env() -> str:
    """PATH with the running interpreter's bin dir first, so ansible-playbook from this venv is used; or
    $WIRECHECK_ANSIBLE_BIN first, the bin directory of a dedicated Ansible environment."""
    here = os.environ.get("WIRECHECK_ANSIBLE_BIN") or str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return here + (os.pathsep + path if path else "")


def ansible_in_use() -> tuple[str | None, str | None]:
    """(path, ansible-core version) of the ansible-playbook the playbooks run with (PATH of tool_path_env)."""
    path = shutil.which("ansible-playbook", path=tool_path_env())
    if not path:
        return None, None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60, check=False,
                             env={**os.environ, "LC_ALL": "C.UTF-8", "PATH": tool_path_env()}).stdout
    except (OSError, subprocess.TimeoutExpired):
        return path, None
    m = re.search(r"core (\d+\.\d+\.\d+)", out)
    return path, m.group(1) if m else None


def runner_config(step: Step, ctx: ProvisionContext, private_dir: Path) -> Any:
    """Build (and prepare) the ansible-runner config for a playbook step; `.command` is the exact argv."""
    from ansible_runner import RunnerConfig

    private_dir.mkdir(parents=True, exist_ok=True)
    cwd = step.cwd or ctx.wsd
    env = {"PATH": tool_path_env(), "LC_ALL": "C.UTF-8", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "ANSIBLE_HOST_KEY_CHECKING": "0"}
    env.update(ctx.env)
    env.update(step.env)
    rc = RunnerConfig(
        private_data_dir=str(private_dir),
        playbook=str(step.playbook),
        inventory=str(step.inventory) if step.inventory else None,
        project_dir=str(cwd),
        host_cwd=str(cwd),
        extravars=step.extra_vars or None,
        tags=",".join(step.tags) or None,
        skip_tags=",".join(step.skip_tags) or None,
        verbosity=ctx.ansible.verbosity or None,
        envvars=env,
        quiet=True,
        timeout=int(step.timeout) if step.timeout else None,
    )
    rc.prepare()
    return rc


def _command_line(rc: Any, redact: bool) -> str:
    import shlex

    argv = list(rc.command)
    if redact:
        # extra vars may carry secrets: the report names the keys only
        for i, tok in enumerate(argv[:-1]):
            if tok in ("-e", "--extra-vars"):
                try:
                    keys = sorted(json.loads(argv[i + 1]))
                except (ValueError, TypeError):
                    continue
                argv[i + 1] = "{" + ", ".join(f'"{k}": …' for k in keys) + "}"
    return f"(cd {shlex.quote(rc.cwd)} && {shlex.join(argv)})"


def describe_command(step: Step, ctx: ProvisionContext, index: int, redact: bool = False) -> str:
    """The exact command a step runs (for --dry-run; `redact` hides extra-var values for the report)."""
    if step.kind == "playbook":
        with tempfile.TemporaryDirectory(prefix="wirecheck-runner-") as tmp:
            return _command_line(runner_config(step, ctx, Path(tmp)), redact)
    return step.shell_line()


class _ProgressTracker:
    """Turns ansible-runner events into one-line progress reports."""

    def __init__(self, step: Step, progress: Progress, start: float) -> None:
        self.step = step
        self.progress = progress
        self.start = start
        self.play = ""
        self.task = ""
        self.counts: dict[str, int] = {"ok": 0, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 0}
        self.failed_tasks: list[dict[str, str]] = []

    def __call__(self, event: dict[str, Any]) -> bool:
        name = event.get("event", "")
        data = event.get("event_data", {}) or {}
        host = data.get("host", "")
        outcome = None
        if name == "playbook_on_play_start":
            self.play = data.get("play", "")
        elif name == "playbook_on_task_start":
            self.task = data.get("task", "")
        elif name == "runner_on_ok":
            changed = bool((data.get("res") or {}).get("changed"))
            outcome = "changed" if changed else "ok"
            self.counts["ok"] += 1
            self.counts["changed"] += int(changed)
        elif name == "runner_on_failed" and not data.get("ignore_errors"):
            outcome = "FAILED"
            self.counts["failed"] += 1
            res = data.get("res") or {}
            msg = " ".join(str(x) for x in (res.get("msg"), res.get("stderr")) if x)
            self.failed_tasks.append({"play": self.play, "task": data.get("task", self.task), "host": host,
                                      "message": str(msg)[:500]})
        elif name == "runner_on_unreachable":
            outcome = "UNREACHABLE"
            self.counts["unreachable"] += 1
            res = data.get("res") or {}
            self.failed_tasks.append({"play": self.play, "task": data.get("task", self.task), "host": host,
                                      "message": str(res.get("msg", ""))[:500]})
        elif name == "runner_on_skipped":
            outcome = "skipped"
            self.counts["skipped"] += 1
        if outcome is not None or name == "playbook_on_play_start":
            elapsed = time.monotonic() - self.start
            parts = [f"[{elapsed:7.1f}s] {self.step.name}", f"PLAY [{self.play}]"]
            if outcome is not None:
                parts += [f"TASK [{self.task}]", f"{host} {outcome}"]
            parts.append(" ".join(f"{k}={self.counts[k]}" for k in ("ok", "changed", "failed")))
            self.progress(" | ".join(parts))
        return True  # keep the event in the artifacts


def run_playbook(step: Step, ctx: ProvisionContext, index: int, progress: Progress) -> StepOutcome:
    from ansible_runner import Runner

    # ansible-runner's private data dir holds the extra vars in clear: keep it out of the report
    with tempfile.TemporaryDirectory(prefix="wirecheck-runner-") as tmp:
        rc = runner_config(step, ctx, Path(tmp))
        start = time.monotonic()
        tracker = _ProgressTracker(step, progress, start)
        command = _command_line(rc, redact=True)
        progress(f"[    0.0s] {step.name} | {command}")
        runner = Runner(config=rc, event_handler=tracker)
        try:
            status, rc_code = runner.run()
        except Exception as exc:  # ansible-runner raises for e.g. a missing ansible-playbook binary
            status, rc_code = f"error: {exc}", None
        elapsed = time.monotonic() - start
        log_path = ctx.report_dir / "install" / "ansible.log"
        stdout_file = Path(rc.artifact_dir) / "stdout"
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"===== {step.name}: {command}\n")
            if stdout_file.is_file():
                log.write(stdout_file.read_text(encoding="utf-8", errors="replace"))
            log.write(f"\n===== {step.name}: status={status} rc={rc_code} elapsed={elapsed:.1f}s\n")
    ok = status == "successful" and rc_code == 0
    progress(f"[{elapsed:7.1f}s] {step.name} | {status} rc={rc_code} | "
             + " ".join(f"{k}={v}" for k, v in tracker.counts.items()))
    return StepOutcome(step=step.name, ok=ok, rc=rc_code, status=str(status), elapsed_s=round(elapsed, 2),
                       counts=dict(tracker.counts), failed_tasks=tracker.failed_tasks, command=command,
                       log=str(log_path))


def run_command(step: Step, ctx: ProvisionContext, progress: Progress) -> StepOutcome:
    start = time.monotonic()
    command = step.shell_line()
    progress(f"[    0.0s] {step.name} | {command}")
    log_path = ctx.report_dir / "install" / "commands.log"
    env = dict(os.environ, PATH=tool_path_env(), **ctx.env, **step.env)
    exe = shutil.which(step.argv[0], path=env["PATH"]) if step.argv else None
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"===== {step.name}: {command}\n")
        log.flush()
        if exe is None:
            rc_code: int | None = None
            status = f"command not found: {step.argv[0] if step.argv else '(empty)'}"
            log.write(status + "\n")
        else:
            proc = subprocess.Popen(step.argv, cwd=step.cwd or ctx.wsd, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                rc_code = proc.wait(timeout=step.timeout)
                status = "successful" if rc_code == 0 else "failed"
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                rc_code, status = None, f"timeout after {step.timeout:g}s"
        elapsed = time.monotonic() - start
        log.write(f"\n===== {step.name}: status={status} rc={rc_code} elapsed={elapsed:.1f}s\n")
    progress(f"[{elapsed:7.1f}s] {step.name} | {status} rc={rc_code}")
    return StepOutcome(step=step.name, ok=rc_code == 0, rc=rc_code, status=status, elapsed_s=round(elapsed, 2),
                       command=command, log=str(log_path))


def run_steps(steps: Sequence[Step], ctx: ProvisionContext, progress: Progress | None = None) -> InstallResult:
    """Run steps in order, stopping at the first failure."""
    progress = progress or _stderr
    (ctx.report_dir / "install").mkdir(parents=True, exist_ok=True)
    result = InstallResult(ok=True)
    for index, step in enumerate(steps, 1):
        if step.kind == "playbook":
            outcome = run_playbook(step, ctx, index, progress)
        else:
            outcome = run_command(step, ctx, progress)
        result.steps.append(outcome)
        if not outcome.ok:
            result.ok = False
            break
    return result
