"""Several checks' Python in one interpreter per host (wirecheck.pyjobs): each job's answer from the
host's program is exactly what the job alone answers (output, errors, exit status), the program runs
once for all its jobs, and when it did not run (crashed, interpreter missing, not prefetched) each job
runs alone."""

from __future__ import annotations

import sys

import pytest

from wirecheck import pyjobs
from wirecheck.pyjobs import PyJob, plan, run_job
from wirecheck.targets import Target
from wirecheck.transport import LocalTransport

PRINTS = PyJob("A-PRINTS", 'def main(argv, out, err):\n    out.write("|".join(argv) + "\\n"); err.write("note\\n")\n',
               ("x y", "é"))
RAISES = PyJob("B-RAISES", "def main(argv, out, err):\n    out.write('before\\n')\n    import wc_no_such_module\n")
EXITS = PyJob("C-EXITS", "def main(argv, out, err):\n    out.write('three\\n')\n    raise SystemExit(3)\n")
SAYS = PyJob("D-SAYS", "def main(argv, out, err):\n    raise SystemExit('a message')\n")
JOBS = [PRINTS, RAISES, EXITS, SAYS]


@pytest.fixture(autouse=True)
def _clean():
    pyjobs.reset()
    yield
    pyjobs.reset()


def local(name: str = "here") -> Target:
    return Target(name=name, address="127.0.0.1", roles=[], transport=LocalTransport(), local=True)


def alone(job: PyJob) -> tuple[int, str, str]:
    res = local().run(job.command(), timeout=30)
    return res.rc, res.stdout, res.stderr


def test_each_job_answers_from_the_program_what_it_answers_alone(tmp_path) -> None:
    t = local()
    commands = plan(t, JOBS)
    assert len(commands) == 1             # the four jobs: one interpreter
    t.prefetch(commands)
    for job in JOBS:
        res = run_job(t, job)
        rc, out, err = alone(job)
        assert (res.rc, res.stdout) == (rc, out), job.name
        assert (res.stderr.strip().splitlines() or [""])[-1] == (err.strip().splitlines() or [""])[-1], job.name
    assert run_job(t, RAISES).stderr.strip().endswith("ModuleNotFoundError: No module named 'wc_no_such_module'")
    assert (run_job(t, EXITS).rc, run_job(t, SAYS).rc, run_job(t, SAYS).stderr) == (3, 1, "a message\n")


def test_the_program_runs_once_for_all_its_jobs(tmp_path) -> None:
    log = tmp_path / "ran"
    count = PyJob("E-COUNTS", f"def main(argv, out, err):\n    open({str(log)!r}, 'a').write('x')\n    out.write('ok\\n')\n")
    t = local()
    t.prefetch(plan(t, [count, PRINTS]))
    assert log.read_text() == "x"
    assert run_job(t, count).stdout == "ok\n" and run_job(t, PRINTS).stdout == "x y|é\n"
    assert log.read_text() == "x"         # answered from the batch: not run again
    assert run_job(t, count).stdout == "ok\n"
    assert log.read_text() == "xx"        # asked again: measured again (alone), as a prefetched command is


def test_a_program_that_crashed_leaves_each_job_to_run_alone(tmp_path) -> None:
    """A job that kills the interpreter (a broken C extension would) takes the program down: no job
    is answered from it, each runs alone and says for itself what happened."""
    crash = PyJob("F-CRASH", "def main(argv, out, err):\n    import os, signal\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    t = local()
    t.prefetch(plan(t, [crash, PRINTS]))
    assert run_job(t, PRINTS).stdout == "x y|é\n"
    assert run_job(t, crash).rc == -9 or run_job(t, crash).rc in (137, 9)


def test_a_named_interpreter_that_is_missing_leaves_each_job_to_run_alone() -> None:
    """The program runs under the interpreter a job names (HOST-PYTHON3's); missing: exit 3, and the
    job alone says so through its own prelude."""
    gone = PyJob("G-GONE", "def main(argv, out, err):\n    out.write('never\\n')\n", interpreter="/nonexistent/python3",
                 prelude="test -x /nonexistent/python3 || exit 3; echo @@executable; ", preamble="@@executable\n")
    t = local()
    t.prefetch(plan(t, [gone, PRINTS]))
    res = run_job(t, gone)
    assert (res.rc, res.stdout) == (3, "")
    assert run_job(t, PRINTS).stdout == "x y|é\n"


def test_the_preamble_stands_for_the_prelude_and_other_interpreters_run_alone() -> None:
    here = PyJob("H-HERE", "def main(argv, out, err):\n    import sys\n    out.write(sys.executable + '\\n')\n",
                 interpreter=sys.executable, prelude="echo @@executable; ", preamble="@@executable\n")
    other = PyJob("I-OTHER", "def main(argv, out, err):\n    out.write('other\\n')\n", interpreter="/usr/bin/env")
    t = local()
    commands = plan(t, [here, PRINTS, other])
    assert len(commands) == 2 and commands[1][0] == other.command()
    t.prefetch(commands[:1])
    assert run_job(t, here).stdout == alone(here)[1] == f"@@executable\n{sys.executable}\n"


def test_without_a_program_each_job_runs_alone() -> None:
    t = local()
    assert plan(t, [PRINTS]) == [(PRINTS.command(), False, PRINTS.timeout)]
    assert run_job(t, PRINTS).stdout == "x y|é\n"


def test_the_run_asks_a_fleet_checks_python_with_each_hosts_own(monkeypatch) -> None:
    """A selected fleet check's job goes to every host's batch; where a host check's job is selected
    too, both run in one interpreter; a host with the fleet job alone runs it as its own command.
    A fleet check's plain commands go to the hosts it names only."""
    from concurrent.futures import wait

    from wirecheck import coordination

    class Item:
        def __init__(self, target, rid):
            self.callspec = type("C", (), {"params": {"target": target} if target else {}})()
            self._rid = rid

        def get_closest_marker(self, name):
            return type("M", (), {"args": (self._rid,)})()
    a, b = local("a"), local("b")
    seen: dict[str, list] = {}
    monkeypatch.setattr(coordination, "COMMANDS", {})
    monkeypatch.setattr(coordination, "FLEET_COMMANDS", {"CTRL-DOCKER": [lambda site, spec: {"b": [("docker version", False, 20)]}]})
    monkeypatch.setattr(coordination, "PREFETCHES", {})
    monkeypatch.setattr(pyjobs, "HOST_JOBS", {"HOST-PYTHON3": [lambda t, spec: PRINTS]})
    monkeypatch.setattr(pyjobs, "FLEET_JOBS", {"PROD-NET-ASSETHOST": [lambda site, spec: {"a": EXITS, "b": EXITS}]})
    monkeypatch.setattr(Target, "prefetch", lambda self, cmds, batch=None: seen.setdefault(self.name, []).extend(cmds))
    site = type("S", (), {"overrides": {}, "targets": [a, b]})()
    pf = coordination.Prefetcher()
    pf.start(site, [Item(a, "HOST-PYTHON3"), Item(None, "PROD-NET-ASSETHOST"), Item(None, "CTRL-DOCKER")])
    wait(pf.futures, timeout=30)
    pf.stop()
    assert seen["b"] == [("docker version", False, 20), (EXITS.command(), False, EXITS.timeout)]
    assert len(seen["a"]) == 1 and seen["a"][0][0] == pyjobs.PROGRAMS["a"].command
    assert pyjobs.PROGRAMS["a"].jobs == (PRINTS, EXITS)


def test_a_named_interpreter_that_is_not_python3_leaves_each_job_to_run_alone(tmp_path) -> None:
    """An interpreter that runs but is no Python 3 (here: one that says it is 2.7) answers nothing for
    the program; the jobs that ask for any Python 3 run alone under python3."""
    fake = tmp_path / "python"      # python -c CODE ARGS... as an interpreter that says it is 2.7
    fake.write_text(f'#!/bin/sh\nshift\ncode=$1\nshift\nexec {sys.executable} -c "import sys; sys.version_info = (2, 7, 18)\n$code" "$@"\n')
    fake.chmod(0o755)
    old = PyJob("J-OLD", "def main(argv, out, err):\n    out.write('ran\\n')\n", interpreter=str(fake))
    t = local()
    prog = pyjobs.program([old, PRINTS])
    assert prog is not None
    res = t.run(prog.command, timeout=30)
    assert res.rc == 97 and pyjobs.parse(res.stdout) is None
    t.prefetch(plan(t, [old, PRINTS]))
    assert run_job(t, PRINTS).stdout == "x y|é\n"
