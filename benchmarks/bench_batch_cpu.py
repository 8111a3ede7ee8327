"""Target-side CPU of wirecheck's command transport and of the host snapshot, against a namespace
test host: what the host spends, not how long the runner waits.

Run as root from the repository root:  python benchmarks/bench_batch_cpu.py [runs]

Measured: the CPU time of every process a workload starts on the host (sshd's sessions, shells,
the batch runner, the commands): the host's sshd is moved into a cgroup of its own (cgroup v1
cpuacct.usage, or v2 cpu.stat usage_usec), which everything it starts inherits, so the figure is
robust to other work on the machine.  A connect-and-close with nothing run is measured too and
taken off.
Workloads: 12 trivial commands as one batch (the Python runner; the sh branch, as on a host without
python3) and one by one with run(); a batch of commands like a host's real one (sudo, a Python
import, files, the firewall snapshot); the host snapshot (Facts.host_snapshot, the first command on
every host).  The load average is printed beside the figures.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.faults.helpers import target_for  # noqa: E402
from tests.lab import Lab, lab_unavailable_reason  # noqa: E402
from wirecheck import batch  # noqa: E402
from wirecheck.facts import Facts, firewall_snapshot_command  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
TRIVIAL = [(f"echo {i}", False, 10.0) for i in range(12)]
REALISH = [("id -un", False, 15.0), ("id -u", True, 15.0), ("/usr/bin/python3 -c 'import json; print(1)'", False, 15.0),
           ("ip -j -4 route show default", False, 15.0), ("cat -- /etc/resolv.conf", False, 15.0),
           ("getent hosts localhost", False, 15.0), (firewall_snapshot_command(), True, 20.0),
           ("ls /etc/sysctl.d", False, 15.0), ("cat /proc/locks", True, 15.0), ("uname -a", False, 15.0)]


@contextlib.contextmanager
def cpu_account(pid: int):
    """A cgroup holding pid (and what it starts); yields a function reading its CPU seconds so far."""
    root = Path("/sys/fs/cgroup")
    name = f"wirecheck-bench-{uuid.uuid4().hex[:8]}"
    if (root / "cgroup.controllers").is_file():                  # v2
        group, read = root / name, lambda g: int(dict(
            ln.split() for ln in (g / "cpu.stat").read_text().splitlines())["usage_usec"]) / 1e6
        home = root
    else:                                                       # v1: cpuacct, alone or with cpu
        base = next(p for p in (root / "cpuacct", root / "cpu,cpuacct") if (p / "cpuacct.usage").is_file())
        group, read, home = base / name, lambda g: int((g / "cpuacct.usage").read_text()) / 1e9, base
    group.mkdir()
    try:
        (group / "cgroup.procs").write_text(str(pid))
        yield lambda: read(group)
    finally:
        for p in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (home / "cgroup.procs").write_text(p)
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def measure(host, usage, work, runs: int) -> float:
    """CPU seconds on the host per run of work(target), the connection's own cost taken off."""
    def session(fn) -> float:
        t = target_for(host)
        before = usage()
        t.transport.connect()
        fn(t)
        t.close()
        time.sleep(0.3)                  # the connection's sshd ends a moment after the master
        return usage() - before
    empty = session(lambda t: None)
    return (session(lambda t: [work(t) for _ in range(runs)]) - empty) / runs


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    why = lab_unavailable_reason()
    if why:
        sys.exit(f"cannot run: {why}")
    with Lab() as lab:
        host = lab.add_host("cpu", user="wire", sudo=True)
        assert host.sshd is not None
        python_branch = batch.PYTHONS

        def sh_branch(fn):
            def run(t):
                batch.PYTHONS = ("/nonexistent/wirecheck/python3",)
                try:
                    return fn(t)
                finally:
                    batch.PYTHONS = python_branch
            return run

        rows = [
            ("12 trivial commands, one batch (Python runner)", lambda t: t.transport.run_batch(TRIVIAL)),
            ("12 trivial commands, one batch (sh branch)", sh_branch(lambda t: t.transport.run_batch(TRIVIAL))),
            ("12 trivial commands, one run() each", lambda t: [t.transport.run(c, to) for c, _s, to in TRIVIAL]),
            (f"{len(REALISH)} commands like a host's batch (Python runner)", lambda t: t.transport.run_batch(REALISH)),
            (f"{len(REALISH)} commands like a host's batch (sh branch)",
             sh_branch(lambda t: t.transport.run_batch(REALISH))),
            (f"{len(REALISH)} commands like a host's batch, one run() each",
             lambda t: [t.transport.run(c, to, sudo=s) for c, s, to in REALISH]),
            ("host snapshot (Facts.host_snapshot)", lambda t: Facts(t).host_snapshot(("/var/lib/cassandra", "/"))),
        ]
        print(f"target CPU per run, {runs} runs each (load {os.getloadavg()[0]:.1f})")
        with cpu_account(host.sshd.pid) as usage:
            for name, work in rows:
                print(f"  {name:58s} {measure(host, usage, work, runs) * 1000:7.1f} ms", flush=True)
        print(f"(load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
