"""Python that several checks run on one host, in one interpreter there.

Every ``python3 -c`` a check starts on a host costs an interpreter start (about 12 ms of the host's
CPU) and its imports again: ``import apt`` (HOST-PYTHON3) loads http.client, email, ssl and
logging, the very modules ``urllib.request`` (the offline-source HEAD requests of
PROD-NET-ASSETHOST) loads too.  A check describes its Python as a ``PyJob``; the run puts the jobs
of a host's selected checks into one program (``program``), asked in the host's one batch of
prefetched commands (coordination.prefetch_commands), where each job runs in a thread of its own
with its own stdout, stderr and exit status.  ``run_job`` gives a check its job's result as if the
job had run alone; when the host's program did not run or did not say anything for the job
(interpreter missing, crashed, timed out, not prefetched), the job runs alone, exactly as it would
without this module: every verdict comes from the job's own output either way.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .transport import CommandResult


@dataclass(frozen=True)
class PyJob:
    """``code`` defines ``main(argv, out, err)``: it writes its answer to the file objects out and
    err and may raise SystemExit(rc), as a script would.  ``interpreter`` None: any Python 3 on the
    host (``python3`` from PATH when alone); a path: that interpreter only.  ``prelude``: shell run
    before the interpreter when the job runs alone (e.g. ``test -x … || exit 3; echo @@executable``);
    ``preamble``: what the prelude prints when it passes, written first to the job's stdout when
    the job runs in the host's program (that program running under the same interpreter proves
    what the prelude tests)."""

    name: str
    code: str
    argv: tuple[str, ...] = ()
    timeout: float = 30.0
    interpreter: str | None = None
    prelude: str = ""
    preamble: str = ""

    def command(self) -> str:
        """The job alone: its prelude, then its interpreter on its code."""
        script = self.code + "\nimport sys\nmain(sys.argv[1:], sys.stdout, sys.stderr)\n"
        return self.prelude + shlex.join([self.interpreter or "python3", "-c", script, *self.argv])


#: runs the jobs (JSON in argv[1]) side by side, each in a thread with its own output, then prints
#: one line: the marker and {name: [rc, stdout, stderr]}.  A job's thread that never ends holds the
#: program until the batch's time limit (then each job runs alone); the jobs are bounded themselves
RUNNER = r"""
import sys
if sys.version_info[0] < 3: sys.exit(97)  # not a Python 3: each job runs alone, under its own interpreter
import io, json, threading, traceback
jobs = json.loads(sys.argv[1]); res = {}
def run(j):
    out, err, rc = io.StringIO(), io.StringIO(), 0
    out.write(j["preamble"])
    try:
        g = {"__name__": "__wirecheck_job__"}
        exec(compile(j["code"], j["name"], "exec"), g)
        g["main"](j["argv"], out, err)
    except SystemExit as e:
        if isinstance(e.code, int) or e.code is None: rc = e.code or 0
        else: err.write(str(e.code) + "\n"); rc = 1
    except BaseException:
        traceback.print_exc(file=err); rc = 1
    res[j["name"]] = [rc, out.getvalue(), err.getvalue()]
th = [threading.Thread(target=run, args=(j,)) for j in jobs]
[t.start() for t in th]; [t.join() for t in th]
sys.stdout.write("@@wc-jobs " + json.dumps(res) + "\n")
"""
MARK = "@@wc-jobs "

#: requirement ID -> functions (target, spec) -> PyJob or None (host checks)
HOST_JOBS: dict[str, list[Callable[[Any, Any], PyJob | None]]] = {}
#: requirement ID -> functions (site, spec) -> {target name: PyJob} (fleet checks: a job on each host)
FLEET_JOBS: dict[str, list[Callable[[Any, Any], dict[str, PyJob]]]] = {}


def register_job(requirement_id: str, job: Callable[[Any, Any], PyJob | None]) -> None:
    """A host check's Python (built by the same function the check builds it with)."""
    HOST_JOBS.setdefault(requirement_id, []).append(job)


def register_fleet_jobs(requirement_id: str, jobs: Callable[[Any, Any], dict[str, PyJob]]) -> None:
    """A fleet check's Python on each of its hosts."""
    FLEET_JOBS.setdefault(requirement_id, []).append(jobs)


@dataclass(frozen=True)
class Program:
    command: str
    jobs: tuple[PyJob, ...]
    timeout: float


def program(jobs: list[PyJob]) -> Program | None:
    """One command running ``jobs`` in one interpreter: the first job's own interpreter if it names
    one (the others that name another are left out: they run alone), else python3.  None for fewer
    than two jobs (nothing to share)."""
    named = [j.interpreter for j in jobs if j.interpreter]
    interp = named[0] if named else None
    chosen = tuple(sorted({j.name: j for j in jobs if j.interpreter in (None, interp)}.values(), key=lambda j: j.name))
    if len(chosen) < 2:
        return None
    data = json.dumps([{"name": j.name, "code": j.code, "argv": list(j.argv), "preamble": j.preamble} for j in chosen])
    prelude = f"test -x {shlex.quote(interp)} || exit 3; " if interp else ""
    command = prelude + shlex.join([interp or "python3", "-c", RUNNER, data])
    return Program(command, chosen, max(j.timeout for j in chosen) + 5.0)


#: target name -> the program its prefetched batch asks (set before the batch starts)
PROGRAMS: dict[str, Program] = {}
_LOCK = threading.Lock()
_RESULTS: dict[str, dict[str, tuple[int, str, str]] | None] = {}
_KEY_LOCKS: dict[str, threading.Lock] = {}


def plan(target: Any, jobs: list[PyJob]) -> list[tuple[str, bool, float | None]]:
    """The host's prefetched Python: its program, and any job that does not fit in it on its own."""
    prog = program(jobs)
    alone = [j for j in jobs if prog is None or j not in prog.jobs]
    if prog is not None:
        with _LOCK:
            PROGRAMS[target.name] = prog
    return ([(prog.command, False, prog.timeout)] if prog is not None else []) + \
        [(j.command(), False, j.timeout) for j in alone]


def parse(text: str) -> dict[str, tuple[int, str, str]] | None:
    for line in reversed(text.splitlines()):
        if line.startswith(MARK):
            try:
                data = json.loads(line[len(MARK):])
                return {name: (int(v[0]), str(v[1]), str(v[2])) for name, v in data.items()}
            except (ValueError, TypeError, IndexError, KeyError):
                return None
    return None


def _program_results(target: Any, prog: Program) -> dict[str, tuple[int, str, str]] | None:
    """The program's answer from the host's batch: taken once, kept for the other jobs."""
    key = f"{id(target)}:{target.name}:" + hashlib.sha256(prog.command.encode()).hexdigest()[:16]
    with _LOCK:
        lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with lock:         # a job that asks while another takes the answer waits for it
        if key not in _RESULTS:
            taken = getattr(target, "prefetched", None)
            res = taken(prog.command) if taken is not None else None
            _RESULTS[key] = parse(res.stdout) if res is not None and res.rc == 0 else None
        return _RESULTS[key]


def run_job(target: Any, job: PyJob) -> CommandResult:
    """The job's result: from the host's program when it ran the same job, else the job run alone."""
    prog = PROGRAMS.get(target.name)
    if prog is not None and job in prog.jobs:
        got = _program_results(target, prog)
        with _LOCK:       # used once, as a prefetched command is: asked again, the job measures again
            answer = got.pop(job.name, None) if got is not None else None
        if answer is not None:
            rc, out, err = answer
            return CommandResult(job.command(), rc, out, err, 0.0)
    return target.run(job.command(), timeout=job.timeout)


def reset() -> None:
    """Forget the programs of a run (tests that start several runs in one process)."""
    with _LOCK:
        PROGRAMS.clear()
        _RESULTS.clear()
        _KEY_LOCKS.clear()
