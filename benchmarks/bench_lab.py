"""Time to start and tear down lab hosts (tests/lab): 1, 17 and 50 hosts.

Run as root from the repository root:  python benchmarks/bench_lab.py [counts...]
Prints one line per count: lab creation, parallel start of all hosts (add_hosts), time until every
host answered a real SSH login, and teardown. Also the sequential variant (one add_host per host).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.lab import Lab, lab_unavailable_reason  # noqa: E402


def _leftovers(index: int) -> str:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return " ".join(n for n in (netns + links).split() if n.startswith(f"wcl{index}h") or
                    n.rstrip(":").startswith(f"wcl{index}br"))


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time of this process, its reaped children and the given live processes (with theirs)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15]) / tick
    return total


def bench(count: int, parallel: bool) -> None:
    cpu0 = _cpu_seconds([])
    t0 = time.perf_counter()
    lab = Lab()
    t1 = time.perf_counter()
    try:
        specs = [{"name": f"node{i}", "cpus": 1, "sysctls": {"net.ipv4.ip_forward": "0"}} for i in range(count)]
        if parallel:
            hosts = lab.add_hosts(specs)
        else:
            hosts = [lab.add_host(**spec) for spec in specs]
        t2 = time.perf_counter()
        # CPU spent on starting (runner + holders + sshd): independent of how busy the machine is
        start_cpu = _cpu_seconds([p.pid for h in hosts for p in (h.holder, h.sshd) if p is not None]) - cpu0
        # one real login per host proves each is usable (run in parallel, like xdist would)
        procs = [subprocess.Popen(h.ssh_argv("true"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for h in hosts]
        failed = [h.name for h, p in zip(hosts, procs, strict=True) if p.wait(timeout=60) != 0]
        t3 = time.perf_counter()
    finally:
        index = lab.index
        t_close = time.perf_counter()
        lab.close()
        t4 = time.perf_counter()
    left = _leftovers(index)
    mode = "parallel  " if parallel else "sequential"
    print(f"{count:3d} hosts {mode}: lab {t1 - t0:6.3f}s  start {t2 - t1:6.3f}s  "
          f"({(t2 - t1) / count * 1000:5.1f} ms/host)  all ssh logins {t3 - t2:6.3f}s  "
          f"teardown {t4 - t_close:6.3f}s  start cpu {start_cpu:6.3f}s  failed logins {len(failed)}  "
          f"leftovers {left or 'none'}",
          flush=True)


def main() -> int:
    reason = lab_unavailable_reason()
    if reason:
        print(f"lab unavailable: {reason}")
        return 1
    counts = [int(a) for a in sys.argv[1:]] or [1, 17, 50]
    with open("/proc/loadavg") as fh:
        print(f"load average {fh.read().split()[0]} on {os.cpu_count()} CPUs (wall times grow with load; "
              "'start cpu' does not)")
    for count in counts:
        bench(count, parallel=True)
        bench(count, parallel=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
