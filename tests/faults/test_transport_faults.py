"""The transport when the other end misbehaves or this end dies: every wait bounded, nothing left.

Real sshd in lab hosts (network namespaces); the runner side is a real OpenSSH client with its
ControlMaster.  What is asserted is what a user sees: an error within the timeout, and no ssh master,
control socket or remote command of ours once the run is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.faults.helpers import (
    SilentTcp,
    host_processes_matching,
    kill_ssh_service,
    our_ssh_processes,
    target_for,
    wait_until,
)
from wirecheck.transport import CommandTimeout, LocalTransport, Unreachable, bounded


@pytest.fixture(scope="module")
def good(lab_module):
    return lab_module.add_host("steady", user="wire", sudo=True)


def test_remote_command_is_ended_on_the_target_with_its_timeout(good):
    """The client gives up after the timeout, and the command on the target ends too (not only our
    client): a command left running would outlive the run."""
    t = target_for(good)
    try:
        start = time.monotonic()
        with pytest.raises(CommandTimeout, match="within 1 s"):
            t.run("sleep 41.5", timeout=1)
        assert time.monotonic() - start < 4
        assert wait_until(lambda: not host_processes_matching(good, "sleep 41.5"), 6), \
            host_processes_matching(good, "sleep 41.5")
        assert t.run("echo still-usable").stdout.strip() == "still-usable"   # the connection survived
    finally:
        t.close()


def test_bounded_passes_values_literally_and_keeps_the_exit_status(tmp_path):
    marker = tmp_path / "owned"
    hostile = f"a'b\"c $(touch {marker}) `touch {marker}`; touch {marker} \\n"
    import shlex
    res = LocalTransport().run(f"printf %s {shlex.quote(hostile)}; exit 3", timeout=5)
    assert res.stdout == hostile and res.rc == 3 and not marker.exists()
    assert "timeout -k 2 6 " in bounded("true", 5)


CHILD = textwrap.dedent("""
    import sys, threading, time
    sys.path.insert(0, {repo!r})
    from tests.faults.helpers import target_for
    from tests.lab.core import LabHost
    from wirecheck.targets import target_from_spec
    import shlex
    t = target_from_spec({spec!r}, ["x"], identity_file={key!r}, extra_args=shlex.split({extra!r}))
    t.run("true")
    # a command in flight when the process is killed: it ends on the target by its own timeout
    threading.Thread(target=lambda: t.run("sleep 42.5", timeout=3), daemon=True).start()
    time.sleep(0.5)
    print("READY", t.transport.control_path, flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_killed_process_leaves_no_master_socket_or_remote_command(good, how):
    """ControlPersist keeps a master 60 s after its last client; the reaper tells it to exit as soon
    as the process that started it is gone, however it went (SIGKILL included)."""
    from pathlib import Path
    repo = str(Path(__file__).resolve().parents[2])
    code = CHILD.format(repo=repo, spec=good.hostspec, key=good.key_path, extra=good.ssh_extra_args)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY"), proc.stderr.read()
        socket_dir = os.path.dirname(line.split()[1])
        assert os.path.isdir(socket_dir) and our_ssh_processes(good.address)
        assert host_processes_matching(good, "sleep 42.5")
        proc.send_signal(how)
        proc.wait(timeout=10)
        assert wait_until(lambda: not our_ssh_processes(good.address), 5), our_ssh_processes(good.address)
        assert wait_until(lambda: not os.path.exists(socket_dir), 5), os.listdir(socket_dir)
        assert wait_until(lambda: not host_processes_matching(good, "sleep 42.5"), 8)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_connection_dropped_mid_run_is_unreachable_quickly(lab):
    h = lab.add_host("flaky", user="wire", sudo=True)
    t = target_for(h, connect_timeout=2)
    try:
        assert t.run("echo up").stdout.strip() == "up"
        kill_ssh_service(h)                       # the host reboots: sshd and every session gone
        start = time.monotonic()
        with pytest.raises(Unreachable) as first:
            t.run("echo again")
        with pytest.raises(Unreachable, match="cannot connect") as second:
            t.run("echo once more")
        assert time.monotonic() - start < 10
        assert "connection lost" in str(first.value) or "cannot connect" in str(first.value)
        # the failure is remembered: later checks on the host do not each wait for a timeout again
        start = time.monotonic()
        with pytest.raises(Unreachable):
            t.run("true")
        assert time.monotonic() - start < 0.5
        assert str(second.value).startswith(f"ssh wire@{h.address}")
    finally:
        t.close()
    assert not our_ssh_processes(h.address)


def test_port_that_accepts_and_never_speaks_ssh(lab):
    """sshd hung before its banner (a plain socket listener on port 22): error within the connect timeout."""
    h = lab.add_host("mute", user="wire", sudo=True)
    h.stop_sshd()
    with SilentTcp(h.address, 22, host=h):
        t = target_for(h, connect_timeout=2)
        try:
            start = time.monotonic()
            with pytest.raises(Unreachable, match="cannot connect"):
                t.run("true")
            assert time.monotonic() - start < 2 * 2 + 5 + 1
        finally:
            t.close()
    assert not our_ssh_processes(h.address)


def test_huge_binary_and_non_utf8_output_is_data(good):
    t = target_for(good)
    try:
        res = t.run("head -c 8000000 /dev/urandom; printf '\\377\\376\\0end'", timeout=30)
        assert res.ok and res.stdout.endswith("\x00end") and "\ufffd" in res.stdout
        assert len(res.stdout) > 7_000_000
        res = t.run("printf 'caf\\351\\n'; printf '\\377' >&2; exit 7")
        assert res.rc == 7 and res.stdout == "caf\ufffd\n" and res.stderr == "\ufffd"
    finally:
        t.close()


@pytest.mark.parametrize("slots, one_connection", [(6, True), (64, False)])
def test_concurrent_commands_stay_within_the_servers_max_sessions(lab, monkeypatch, slots, one_connection):
    """sshd refuses sessions beyond MaxSessions on one connection, and OpenSSH then opens a new
    connection per refused command (a login each, "Session open refused" on stderr). wirecheck's
    workers and threads share one master per host, so they queue for one of SESSION_SLOTS places
    instead: one login for the lot. With the limit lifted (the control case) the same load logs in
    again and again."""
    from concurrent.futures import ThreadPoolExecutor

    from wirecheck import transport

    host = lab.add_host("narrow", user="wire", sudo=False, max_sessions=6)
    monkeypatch.setattr(transport, "SESSION_SLOTS", slots)
    t = target_for(host)
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda i: t.run(f"sleep 0.4; echo {i}", timeout=20), range(16)))
    finally:
        t.close()
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(16)]
    refused = [r.stderr for r in results if "refused" in r.stderr]
    if one_connection:
        assert host.logins() == 1 and not refused, (host.logins(), refused)
    else:
        assert host.logins() > 1 and refused


def test_master_asked_over_its_control_socket_as_ssh_O_asks_it(good, tmp_path, monkeypatch):
    """wirecheck.ssh_mux: the alive check names the master's pid (the one `ssh -O check` names), the
    exit request ends it (socket and process gone, as after `ssh -O exit`); a socket nothing listens on
    and a listener that does not speak the protocol answer None/False, so the ssh client is used."""
    import socket
    import threading

    from wirecheck import ssh_mux
    t = target_for(good)
    tr = t.transport
    try:
        assert t.run("echo up").stdout.strip() == "up"
        check = subprocess.run(tr.base_argv() + ["-O", "check", "--", tr.host], capture_output=True, text=True,
                               timeout=10)
        pid = ssh_mux.master_pid(tr.control_path)
        assert pid is not None and f"pid={pid}" in check.stderr, check.stderr
        import wirecheck.transport as transport_module
        started: list[list[str]] = []
        real_run = transport_module.subprocess.run
        monkeypatch.setattr(transport_module.subprocess, "run",
                            lambda argv, *a, **k: started.append(argv) or real_run(argv, *a, **k))
        tr.close()
        assert not [a for a in started if "-O" in a], started      # no ssh client was started for it
        assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 8)
        assert not os.path.exists(tr.control_path)
        assert ssh_mux.master_pid(tr.control_path) is None and not ssh_mux.terminate(tr.control_path)
    finally:
        tr.close()
    # a stale socket file, and something else listening: not a master
    stale = tmp_path / "stale"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    assert ssh_mux.master_pid(str(stale)) is None
    other = tmp_path / "other"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(other))
    srv.listen()

    def answer():
        c, _ = srv.accept()
        c.recv(100)
        c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        c.close()
    th = threading.Thread(target=answer)
    th.start()
    assert ssh_mux.master_pid(str(other), timeout=3) is None
    th.join(5)
    srv.close()
