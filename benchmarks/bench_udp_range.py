"""Full UDP range (32768-65535) through a firewall, end to end, against a namespace test host.

Run as root from the repository root:  python benchmarks/bench_udp_range.py [runs]

The host (tests/lab) drops UDP 40000-40999 with iptables and 60000-60010 with nftables. Prints, per
run, for raw mode (as root: one raw socket, nothing bound) and for the windowed fallback: total
time (listener start included, listener gone at the end), the phases, the re-probe
rounds, the CPU time spent by prober and listener together (user + system, including the kernel's
work of delivering the datagrams into the namespace; on an otherwise idle machine the wall time
approaches CPU time / number of CPUs), the listener's peak memory on the target (VmHWM of the
listener and its workers, summed) and the verdict. The machine's load average is printed with the
figures: on a shared machine the wall times grow with it, the CPU times do not. Then `nmap -sU` over a 1,024-port slice of the same host and firewall, beside
wirecheck's probe of the same slice: both times, both verdicts.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.lab import Lab, lab_unavailable_reason  # noqa: E402
from wirecheck.probes.ports import format_ranges, probe_ports  # noqa: E402

FIREWALL = [
    "iptables -A INPUT -p udp --dport 40000:40999 -j DROP",
    "nft add table inet bench",
    "nft add chain inet bench input '{ type filter hook input priority 0; }'",
    "nft add rule inet bench input udp dport 60000-60010 drop",
]
SLICE = range(40000, 41024)  # 1,024 ports: the 1,000 dropped ones and 24 open ones
PIPES = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}


def nmap_slice(address: str) -> tuple[float, dict[str, int]]:
    t0 = time.perf_counter()
    out = subprocess.run(["nmap", "-sU", "-n", "-Pn", "-p", f"{SLICE.start}-{SLICE.stop - 1}", "-oX", "-", address],
                         capture_output=True, text=True, timeout=1800).stdout
    took = time.perf_counter() - t0
    states: dict[str, int] = {}
    root = ET.fromstring(out)
    for port in root.iter("port"):
        state = port.find("state")
        if state is not None:
            states[state.get("state", "?")] = states.get(state.get("state", "?"), 0) + 1
    for extra in root.iter("extraports"):  # ports nmap folds into "Not shown: N closed ports"
        states[extra.get("state", "?")] = states.get(extra.get("state", "?"), 0) + int(extra.get("count", 0))
    return took, states


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    reason = lab_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}")
        return 2
    with Lab() as lab:
        host = lab.add_host("target", setup=FIREWALL)

        def spawn(argv: list[str]) -> subprocess.Popen:
            return host.popen(argv, **PIPES)

        print(f"target {host.address} (network namespace, iptables DROP 40000-40999, nft drop 60000-60010)")
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
        print()
        for raw in (True, False):
            full_range(spawn, host, runs, raw)
        print()
        print(f"1,024-port slice UDP {SLICE.start}-{SLICE.stop - 1}, same host, same firewall:")
        t0 = time.perf_counter()
        ours = probe_ports(spawn, host.address, udp=SLICE)
        ours_took = time.perf_counter() - t0
        nmap_took, nmap_states = nmap_slice(host.address)
        print(f"  {'tool':<10} {'time':>8}  verdict")
        print(f"  {'wirecheck':<10} {ours_took:7.2f}s  {len(ours.udp_passed)} passed (reached the listener), "
              f"{len(ours.udp_blocked)} blocked: {format_ranges(ours.udp_blocked)}")
        print(f"  {'nmap -sU':<10} {nmap_took:7.2f}s  " + ", ".join(f"{n} {s}" for s, n in sorted(nmap_states.items()))
              + "  (open|filtered: cannot tell a dropped port from an open one)")
    return 0


def full_range(spawn, host, runs: int, raw: bool) -> None:
    mode = "raw mode (one raw socket, nothing bound)" if raw else "windowed (the fallback without root)"
    print(f"full range UDP 32768-65535 (32,768 ports), {mode}, listener start included:")
    totals, cpus, peaks = [], [], []
    for i in range(runs):
        load = os.getloadavg()[0]
        u0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        r = probe_ports(spawn, host.address, udp=range(32768, 65536), raw=raw)
        total = time.perf_counter() - t0
        u1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (u1.ru_utime - u0.ru_utime + u1.ru_stime - u0.ru_stime
               + c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime)
        totals.append(total)
        cpus.append(cpu)
        assert r.udp_mode == ("raw" if raw else "windowed"), r.raw_fallback
        peaks.append(r.listener_peak_rss_kib / 1024)
        rounds = " + ".join(f"{x['sent']}" for x in r.rounds)
        close = total - r.timings["listener_start"] - r.timings["udp"]
        print(f"  run {i + 1}: {total:5.2f} s wall, {cpu:4.2f} s CPU, load {load:4.1f}  (listener start "
              f"{r.timings['listener_start']:.2f} s, UDP rounds {r.timings['udp']:.2f} s, listener stop "
              f"{close:.2f} s; datagrams {rounds}; {r.listener_workers} listener processes, peak "
              f"{r.listener_peak_rss_kib / 1024:.1f} MiB on the target)  -> {r.udp_blocked_summary()}")
    print(f"  wall: median {statistics.median(totals):.2f} s, best {min(totals):.2f} s, worst {max(totals):.2f} s"
          f"  (goal < 2 s)")
    print(f"  CPU:  median {statistics.median(cpus):.2f} s on {os.cpu_count()} CPUs (prober and listener); "
          f"listener peak memory {max(peaks):.1f} MiB (goal < 100 MB); load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
