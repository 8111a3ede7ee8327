"""How the port agent starts on a target and names who holds a port, run on this machine (loopback only).

The agent is sent as source and as bytecode compiled here; a target whose Python has the same bytecode
magic number runs the bytecode (no compile: 10 ms of the target's CPU per probe), any other compiles
the source. The owner of a TCP port in use is its listening socket's process, read over sock_diag,
with /proc/net/tcp where sock_diag cannot answer.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys

import pytest

from tests.support.freeport import free_port
from wirecheck.probes import udp_listener as agent
from wirecheck.probes.ports import AGENT_ARGV, agent_program, agent_source

CONFIG = {"token": "ab", "udp": [], "tcp": [], "deadline": 5.0, "bind": "127.0.0.1"}


def _start(program: bytes) -> dict:
    """Run the bootstrap under this interpreter with `program` on stdin; the agent's first message."""
    proc = subprocess.run([sys.executable, *AGENT_ARGV[1:]], input=program + json.dumps(CONFIG).encode() + b"\n",
                          capture_output=True, timeout=30)
    lines = proc.stdout.splitlines()
    assert lines, proc.stderr.decode(errors="replace")[-600:]
    return json.loads(lines[0])


def _parts(program: bytes) -> tuple[list[bytes], bytes, bytes]:
    header, rest = program.split(b"\n", 1)
    fields = header.split()
    n, m = int(fields[0]), int(fields[2])
    return fields, rest[:n], rest[n:n + m]


def test_the_program_carries_source_and_bytecode_for_this_python() -> None:
    fields, source, code = _parts(agent_program("listen"))
    assert source == agent_source("listen")
    assert fields[1].decode() == importlib.util.MAGIC_NUMBER.hex()
    assert len(code) > 1000


def test_same_magic_runs_the_bytecode_not_the_source() -> None:
    fields, source, code = _parts(agent_program("listen"))
    broken_source = b"raise SystemExit(7)\n".ljust(len(source))
    program = b"%d %s %d\n" % (len(broken_source), fields[1], len(code)) + broken_source + code
    assert _start(program)["ev"] == "ready"


def test_other_magic_compiles_the_source() -> None:
    fields, source, code = _parts(agent_program("listen"))
    garbage = b"\x00" * len(code)           # would crash marshal.loads, were it used
    program = b"%d %s %d\n" % (len(source), b"00000000", len(garbage)) + source + garbage
    assert _start(program)["ev"] == "ready"
    # and the older header without bytecode still works
    assert _start(b"%d\n" % len(source) + source)["ev"] == "ready"


def _listener_with_a_child_holding_a_connection():
    """This process listens on a loopback port; a child process holds a connection accepted on it (the
    way sshd's session processes hold port 22 sockets)."""
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    port = lst.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = lst.accept()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                             pass_fds=[conn.fileno()])
    conn.close()
    return lst, client, child, port


@pytest.mark.parametrize("sock_diag", [True, False], ids=["sock_diag", "proc_net_tcp"])
def test_tcp_owner_is_the_listener(monkeypatch: pytest.MonkeyPatch, sock_diag: bool) -> None:
    lst, client, child, port = _listener_with_a_child_holding_a_connection()
    try:
        if sock_diag:
            assert set(agent.tcp_listeners([port]).values()) == {port}
        else:
            def refused(_ports):
                raise OSError("sock_diag refused (test)")
            monkeypatch.setattr(agent, "tcp_listeners", refused)
        comm = open(f"/proc/{os.getpid()}/comm").read().strip()
        # not the child holding the accepted connection (whatever the pids' order)
        assert agent.socket_owners([port], "tcp") == {port: f"pid {os.getpid()} ({comm})"}
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)
        client.close()
        lst.close()


def test_a_port_nothing_holds_has_no_owner() -> None:
    port = free_port("127.0.0.1")
    assert agent.tcp_listeners([port]) == {}
    assert agent.socket_owners([port], "tcp") == {port: "owner not readable"}


def _children(pid: int) -> list[str]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            out += fh.read().split()
    return out


@pytest.mark.parametrize("ports", [4, agent.THREAD_WORKER_MAX + 1])
def test_a_few_ports_are_held_by_a_thread_more_by_a_forked_worker(ports: int) -> None:
    from wirecheck.probes.ports import AgentProcess
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
        procs.append(subprocess.Popen([sys.executable, *argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE))
        return procs[-1]

    lo = 47100
    ag = AgentProcess(spawn, {"token": "ab", "udp": [[lo, lo + ports - 1]], "tcp": [], "deadline": 30,
                              "bind": "127.0.0.1"}, 10)
    try:
        assert ag.ready["ev"] == "ready" and ag.ready["workers"] == 1
        held = agent.from_ranges(ag.ready["bound_udp"]) + ag.ready["in_use_udp"]
        assert sorted(held) == list(range(lo, lo + ports))
        kids = _children(procs[0].pid)
        assert (kids == []) == (ports <= agent.THREAD_WORKER_MAX), kids
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:   # the ports are really bound
            with pytest.raises(OSError):
                probe.bind(("127.0.0.1", lo + ports - 1))
        assert procs[0].stdin is not None
        procs[0].stdin.write(b'{"cmd":"quit"}\n')
        procs[0].stdin.flush()
        assert procs[0].wait(timeout=10) == 0
    finally:
        ag.kill()
