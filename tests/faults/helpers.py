"""What the fault tests look at: processes in a lab host and on the runner, our temporary files,
and servers that misbehave on purpose (a TCP port that accepts and never speaks)."""

from __future__ import annotations

import glob
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

from wirecheck.targets import Target, target_from_spec

# A TCP listener that accepts every connection and never sends a byte (an sshd that hangs before its
# banner, a TLS server that never answers the ClientHello). Runs in the foreground until killed.
SILENT_TCP = (
    "import socket, sys\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)\n"
    "print('LISTENING', flush=True)\n"
    "held = []\n"
    "while True:\n"
    "    held.append(s.accept()[0])\n"
)


def wait_until(predicate: Callable[[], Any], timeout: float, step: float = 0.1) -> Any:
    """predicate()'s first truthy value within timeout, else its last (falsy) value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def host_processes(host) -> dict[int, str]:
    """pid -> command line of every process inside a lab host's network namespace."""
    out = subprocess.run(["ip", "netns", "pids", host.netns], capture_output=True, text=True, timeout=10).stdout
    procs = {int(p): cmdline(int(p)) for p in out.split() if p.isdigit()}
    return {p: c for p, c in procs.items() if c}


def host_processes_matching(host, needle: str) -> list[str]:
    return [c for c in host_processes(host).values() if needle in c]


def runner_processes_matching(needle: str) -> list[tuple[int, str]]:
    """Processes on the runner (outside the lab hosts too) whose command line contains needle."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            line = cmdline(int(entry))
            if needle in line:
                found.append((int(entry), line))
    return found


def our_ssh_processes(address: str) -> list[tuple[int, str]]:
    """wirecheck's ssh clients and masters for one address (their ControlPath is under wc-ssh-)."""
    return [(p, c) for p, c in runner_processes_matching(address)
            if "wc-ssh-" in c and (c.startswith("ssh ") or c.startswith("sshpass "))]


def wc_socket_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "wc-ssh-*")))


def target_for(host, connect_timeout: int = 3) -> Target:
    import shlex
    return target_from_spec(host.hostspec, ["deploy_node"], identity_file=host.key_path,
                            extra_args=shlex.split(host.ssh_extra_args), connect_timeout=connect_timeout)


def kill_ssh_service(host) -> None:
    """What a reboot or a crashed sshd looks like from outside: the listener and every session gone."""
    host.stop_sshd()
    for pid, line in host_processes(host).items():
        if "sshd" in line.split(" ", 1)[0]:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
    wait_until(lambda: not host_processes_matching(host, "sshd"), 5)


class SilentTcp:
    """SILENT_TCP inside a lab host (host given) or on the runner (host None); stopped and reaped on exit."""

    def __init__(self, address: str, port: int, host=None) -> None:
        import sys
        argv = ["python3" if host is not None else sys.executable, "-c", SILENT_TCP, address, str(port)]
        kwargs: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "stdin": subprocess.DEVNULL}
        self.proc = host.popen(argv, **kwargs) if host is not None else subprocess.Popen(argv, **kwargs)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if b"LISTENING" not in line:
            self.stop()
            raise RuntimeError(f"silent listener did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()

    def __enter__(self) -> SilentTcp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def socket_dirs_of(pid: int) -> set[str]:
    """The control-socket directories of one running wirecheck process (named by its reapers)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        line = cmdline(int(entry))
        if ppid == pid and "wirecheck-reaper" in line:
            found.add(line.rsplit(" ", 1)[1])
    return found
