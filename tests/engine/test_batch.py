"""The batch script both ways (wirecheck.batch): under the Python runner where the target has python3,
under the POSIX sh branch where it has none.  Each way a batch answers exactly what run() answers
(binary and odd bytes, outputs of megabytes, exit statuses), leaves out a command that reached its
time limit and ends it, and leaves nothing behind; a batch that is killed ends what it started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.helpers import host_processes_matching, target_for, wait_until
from wirecheck import batch
from wirecheck.transport import LocalTransport, bounded

PYTHON = next((p for p in batch.PYTHONS if os.access(p, os.X_OK)), None)


@pytest.fixture(params=["python", "sh"])
def branch(request, monkeypatch) -> str:
    """Which branch the batch script takes: "sh" is a target without python3 (none of the paths
    the script looks for exists)."""
    if request.param == "sh":
        monkeypatch.setattr(batch, "PYTHONS", ("/nonexistent/wirecheck/python3",))
    elif PYTHON is None:
        pytest.fail(f"none of {batch.PYTHONS} on this machine: the runner's branch cannot be tested")
    return request.param


#: what the command's parent is: the runner itself, or coreutils' timeout under the sh branch
PARENT = {"python": Path(PYTHON or "python3").name, "sh": "timeout"}

ODD = [
    "printf 'nul\\000byte \\377\\376 \\303\\251 \\r\\n@@wc-batch-end\\n@@wc-batch 0 0 1 2\\n@@wc-batch-stderr\\n'",
    "printf 'no newline at the end'; printf '\\001\\002' >&2",
    "seq 1 400000",                                              # 2.7 MB on stdout
    "seq 1 150000; seq 1 300000 >&2; seq 1 150000",               # both pipes full at once
    "head -c 300000 /dev/zero | tr '\\0' '\\377'",                # not UTF-8 at all
    "echo out; echo err >&2; exit 3",
    "no-such-command-wirecheck",                                  # 127, the shell's message
    "sh -c 'kill -TERM $$'; echo \"inner $?\"",                   # a child ended by a signal: 143
    "cat; echo stdin-was-empty",
    "x='a b'; printf '%s|' $x \"$x\" \"$PATH\" \"$LC_ALL\" \"${LC_CTYPE-unset}\"",
    "id -u",
]


def test_a_batch_answers_exactly_what_run_answers(branch) -> None:
    t = LocalTransport()
    commands = [(c, False, 20.0) for c in ODD] + [("cat /proc/$PPID/comm", False, 20.0)]
    got = t.run_batch(commands)
    assert got[("cat /proc/$PPID/comm", False)].stdout.strip() == PARENT[branch]      # the branch taken
    assert set(got) == {(c, s) for c, s, _t in commands}
    for command in ODD:
        live = t.run(command, timeout=20)
        b = got[(command, False)]
        assert (b.rc, b.stdout, b.stderr) == (live.rc, live.stdout, live.stderr), command
        assert b.duration < 20
    assert len(got[("seq 1 400000", False)].stdout) == 2_688_895
    assert got[("echo out; echo err >&2; exit 3", False)].rc == 3
    assert got[("no-such-command-wirecheck", False)].rc == 127
    assert got[("sh -c 'kill -TERM $$'; echo \"inner $?\"", False)].stdout == "inner 143\n"


def test_a_command_past_its_time_limit_is_left_out_and_ended(branch, tmp_path) -> None:
    """The hanging command and what it started in the background are gone when the batch answers;
    the quick one is answered; the batch does not wait much past the limit."""
    pids = tmp_path / "pids"
    hang = f"sleep 61 & echo $! >> {pids}; echo $$ >> {pids}; sleep 62"
    start = time.monotonic()
    got = LocalTransport().run_batch([(hang, False, 1.0), ("echo quick", False, 5.0)])
    took = time.monotonic() - start
    assert (hang, False) not in got
    assert got[("echo quick", False)].stdout == "quick\n"
    assert took < (2.5 if branch == "python" else 5.0)          # sh: coreutils' whole seconds, plus one
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2
    assert wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in started), 3), started


def test_a_batch_leaves_nothing_behind(branch, tmp_path, monkeypatch) -> None:
    """Normal and failing commands: no temporary directory (the sh branch's), no process."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    mark = f"wc-leftover-{os.getpid()}-{branch}"
    got = LocalTransport().run_batch([(f"echo {mark}", False, 5.0), (f"echo {mark} >&2; exit 1", False, 5.0),
                                      (f": {mark}; sleep 0.2 & exit 0", False, 5.0)])
    assert len(got) == 3
    assert list(tmp_path.iterdir()) == []
    assert wait_until(lambda: not _processes(mark), 2), _processes(mark)


def test_a_batch_that_cannot_start_answers_nothing(monkeypatch) -> None:
    monkeypatch.setattr(batch, "PYTHONS", ("/nonexistent/wirecheck/python3",))
    monkeypatch.setenv("TMPDIR", "/nonexistent/wirecheck")       # sh branch: mktemp fails, exit 97
    assert LocalTransport().run_batch([("echo a", False, 5.0)]) == {}


def _processes(needle: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                line = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if needle in line:
                found.append(line)
    return found


@pytest.mark.parametrize("how", ["reader-gone", "sigterm"])
def test_a_killed_batch_ends_every_command(how, tmp_path) -> None:
    """The runner's reader goes away (the SSH client was killed, the connection dropped) or the
    runner is told to stop (SIGTERM from the batch's own time limit): every command it started,
    with what they started, is gone within a second or two, long before their time limits."""
    if PYTHON is None:
        pytest.fail(f"none of {batch.PYTHONS} on this machine")
    mark = f"wc-killed-{os.getpid()}-{how}"
    t = LocalTransport()
    pids = tmp_path / "pids"
    commands = [(t.wrap(f": {mark}; sleep 63 & echo $! >> {pids}; echo $$ >> {pids}; sleep 64", False), 30.0, False),
                (t.wrap(f": {mark}; echo $$ >> {pids}; exec sleep 65", False), 30.0, False)]
    proc = subprocess.Popen(t.argv_for(bounded(batch.batch_script(commands), 40)), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 3, 10)
        started = [int(p) for p in pids.read_text().split()]
        assert len(_processes(mark)) >= 2 and all(Path(f"/proc/{p}").exists() for p in started)
        if how == "reader-gone":
            assert proc.stdout is not None
            proc.stdout.close()
        else:
            proc.send_signal(signal.SIGTERM)             # `timeout` passes it on to the runner
        assert wait_until(lambda: not _processes(mark), 4), _processes(mark)
        assert wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in started), 2), started
        assert proc.wait(timeout=5) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def test_the_runner_without_posix_spawn_answers_the_same() -> None:
    """Pythons before 3.8 have no os.posix_spawn: the runner forks and execs instead."""
    if PYTHON is None:
        pytest.fail(f"none of {batch.PYTHONS} on this machine")
    t = LocalTransport()
    commands = [(c, 10.0) for c in ODD[:6]]
    args = [x for c, to in commands for x in (t.wrap(c, False), repr(to), str(batch.limit_seconds(to)), "0")]
    boot = "import os, sys; del os.posix_spawn; exec(compile(sys.argv.pop(1), 'runner', 'exec'))"
    out = subprocess.run([PYTHON, "-I", "-S", "-c", boot, batch.RUNNER, "", *args], stdin=subprocess.DEVNULL,
                         capture_output=True, timeout=30, check=True).stdout.decode()
    got = batch.parse_batch(out, len(commands))
    for i, (c, _to) in enumerate(commands):
        live = t.run(c, timeout=10)
        assert got[i][:3] == (live.rc, live.stdout, live.stderr), c


def test_parse_batch_trusts_nothing_without_the_end_and_leaves_out_what_does_not_parse() -> None:
    one = "@@wc-batch 0 3 100 2000000100\nYQo=\n@@wc-batch-stderr\nYgo=\n"
    assert batch.parse_batch(one + "@@wc-batch-end\n", 1) == {0: (3, "a\n", "b\n", 2.0)}
    assert batch.parse_batch(one, 1) == {}                                       # no end mark
    wrapped = "@@wc-batch 0 0 1 2\nYWJj\nZGVm\n\n@@wc-batch-stderr\n\n@@wc-batch-end\n"  # base64 over lines
    assert batch.parse_batch(wrapped, 1) == {0: (0, "abcdef", "", 1e-9)}
    bad = "@@wc-batch 0 0 1 2\nnot base64!\n@@wc-batch-stderr\n\n@@wc-batch-end\n"
    assert batch.parse_batch(bad, 1) == {}
    no_stderr = "@@wc-batch 0 0 1 2\nYQo=\n@@wc-batch 1 0 1 2\nYQo=\n@@wc-batch-stderr\n\n@@wc-batch-end\n"
    assert set(batch.parse_batch(no_stderr, 2)) == {1}
    assert batch.parse_batch(one + "@@wc-batch-end\n", 0) == {}                 # an index not asked for


@pytest.fixture(scope="module")
def ssh_target(lab_module):
    """A real sshd, a non-root login with sudo."""
    h = lab_module.add_host("batchy", user="wire", sudo=True)
    t = target_for(h)
    yield h, t
    t.close()


SSH_COMMANDS = [(c, False) for c in ODD[:4] + ODD[8:9]] + [
    ("id -u", True), ("cat /etc/shadow >/dev/null && echo readable", True),
    ("cat /etc/shadow >/dev/null && echo readable", False)]


@pytest.mark.parametrize("way", ["python", "sh"])
def test_a_batch_over_ssh_answers_what_run_answers(ssh_target, way, monkeypatch) -> None:
    """Over a real sshd as a non-root user with sudo, under the runner and under the sh branch: the
    same results as run(), and nothing left in /tmp."""
    h, t = ssh_target
    if way == "sh":
        monkeypatch.setattr(batch, "PYTHONS", ("/nonexistent/wirecheck/python3",))
    before = t.run("ls -a /tmp").stdout
    got = t.transport.run_batch([(c, sudo, 15.0) for c, sudo in SSH_COMMANDS] + [("cat /proc/$PPID/comm", False, 15.0)])
    assert got[("cat /proc/$PPID/comm", False)].stdout.strip() == PARENT[way]
    for command, sudo in SSH_COMMANDS:
        live = t.run(command, timeout=15, sudo=sudo)
        b = got[(command, sudo)]
        assert (b.rc, b.stdout, b.stderr) == (live.rc, live.stdout, live.stderr), (way, command)
    assert got[("id -u", True)].stdout == "0\n"
    assert got[("cat /etc/shadow >/dev/null && echo readable", True)].stdout == "readable\n"
    assert got[("cat /etc/shadow >/dev/null && echo readable", False)].rc != 0
    assert t.run("ls -a /tmp").stdout == before


def test_a_sudo_command_past_its_limit_is_ended_with_what_it_started_as_root(ssh_target) -> None:
    """sudo passes the runner's signal on to its child only; what that started as root (a `sleep`
    under `sh -c`), the login user may not signal: the runner ends it through sudo."""
    h, t = ssh_target
    hang = "sleep 68; echo late"
    got = t.transport.run_batch([(hang, True, 1.0), ("echo quick", False, 5.0)])
    assert (hang, True) not in got and got[("echo quick", False)].stdout == "quick\n"
    assert wait_until(lambda: not host_processes_matching(h, "sleep 68"), 4), host_processes_matching(h, "sleep 68")


def test_a_batch_whose_ssh_client_is_killed_leaves_nothing_on_the_target(ssh_target) -> None:
    """The SSH client of a running batch is killed (wirecheck's own limit, or wirecheck itself died):
    on the target the runner sees its output's reader gone and ends every command, the one under
    sudo too, long before their time limits."""
    h, t = ssh_target
    tr = t.transport
    mark = f"wc-sshkill-{os.getpid()}"
    tr.connect()
    script = batch.batch_script([(tr.wrap(f"sleep 66; : {mark}", False), 30.0, False),
                                 (tr.wrap(f"sleep 67; : {mark}", True), 30.0, True)])
    proc = subprocess.Popen(tr.argv_for(bounded(script, 40)), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert wait_until(lambda: len(host_processes_matching(h, "sleep 6")) >= 4, 10)   # sh -c and sleep
        assert len(host_processes_matching(h, mark)) >= 3
        proc.kill()
        proc.communicate(timeout=10)
        assert wait_until(lambda: not host_processes_matching(h, "sleep 6"), 4), host_processes_matching(h, "sleep 6")
        assert host_processes_matching(h, mark) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
