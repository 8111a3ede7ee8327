"""The whole port verdict of one host (TCP, UDP range, closed vs filtered) with a UDP DROP band and a
dropped TCP port, against a namespace test host, in raw mode (as root) and windowed; the window size's
cost; and how often TCP loss reads as a blocked port.

Run as root from the repository root:  python benchmarks/bench_port_verdict.py [runs]

The host drops UDP 40000-40999 (iptables) and TCP 80 (iptables), rejects TCP 443. Per run: the total
(listener start to listener gone; goal: under 2 s), the phases the probe reports (listener start, TCP
connects, UDP rounds, closed-vs-filtered probes; they overlap: TCP and the closed-vs-filtered probes
run beside the UDP rounds), the most range ports held at once and the verdict. Then the same probe
with the listener holding the whole range at once (window 0) and with larger windows, to show what
the bound on held ports costs, and with the old 3 s TCP timeout.

Last, TCP under 10 % random loss each way (iptables statistic on a second host, 200 listening
ports): how many of 1,000 port probes time out although the port is open, with one connection
attempt (as before) and with the staggered attempts from other source ports, at 1.5 and 3 s.
The load average is printed beside the figures: on a shared machine wall times grow with it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.lab import Lab, lab_unavailable_reason  # noqa: E402
from wirecheck.probes import udp_sender as send_agent  # noqa: E402
from wirecheck.probes.ports import TCP_ATTEMPTS, WINDOW, format_ranges, probe_ports, tcp_stagger  # noqa: E402

FIREWALL = [
    "iptables -A INPUT -p udp --dport 40000:40999 -j DROP",
    "iptables -A INPUT -p tcp --dport 80 -j DROP",
    "iptables -A INPUT -p tcp --dport 443 -j REJECT",
]
LOSSY = [
    "iptables -A INPUT -p tcp --dport 20000:20199 -m statistic --mode random --probability 0.1 -j DROP",
    "iptables -A OUTPUT -p tcp --sport 20000:20199 -m statistic --mode random --probability 0.1 -j DROP",
]
HOLD_TCP = ("import socket,sys\n"
            "h=[socket.socket() for _ in range(200)]\n"
            "[s.bind(('0.0.0.0',20000+i)) or s.listen(64) for i,s in enumerate(h)]\n"
            "print('ok',flush=True)\n"
            "sys.stdin.read()\n")
PIPES = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
RANGE = range(32768, 65536)


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def one(host, window: int, tcp_timeout: float, raw: bool) -> tuple[float, object]:
    t0 = time.perf_counter()
    r = probe_ports(lambda argv: host.popen(argv, **PIPES), host.address, udp=RANGE, tcp=[22, 80, 443, 3478],
                    classify=True, window=window, tcp_timeout=tcp_timeout, raw=raw)
    return time.perf_counter() - t0, r


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    reason = lab_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}")
        return 1
    with Lab() as lab:
        h, lossy = lab.add_hosts([{"name": "verdict", "setup": FIREWALL}, {"name": "tcploss", "setup": LOSSY}])
        print(f"{load()}; {os.cpu_count()} CPUs")
        for window, tcp_timeout, raw, label in (
                (WINDOW, 1.5, True, "raw mode (default as root: nothing bound), TCP timeout 1.5 s (default)"),
                (WINDOW, 1.5, False, f"window {WINDOW} (the fallback without root), TCP timeout 1.5 s"),
                (0, 1.5, False, "whole range at once (old), TCP timeout 1.5 s"),
                (8192, 1.5, False, "window 8192, TCP timeout 1.5 s"),
                (WINDOW, 3.0, False, f"window {WINDOW}, TCP timeout 3 s (old default)")):
            times, loads = [], []
            for _ in range(runs):
                took, r = one(h, window, tcp_timeout, raw)
                times.append(took)
                loads.append(os.getloadavg()[0])
            phases = ", ".join(f"{k} {v:.2f}" for k, v in r.timings.items() if k != "control_rtt")
            print(f"{label}: median {statistics.median(times):.2f} s (runs: "
                  + ", ".join(f"{t:.2f}" for t in times) + f"; load {min(loads):.1f}-{max(loads):.1f}); "
                  f"held at most {r.udp_held_max if r.udp_mode == 'raw' else r.udp_held_max or 32768:,} ports", flush=True)
            print(f"    phases of the last run: {phases}; rounds: "
                  + ", ".join(f"{x['seconds']:.2f}" for x in r.rounds))
            print(f"    UDP blocked {format_ranges(r.udp_blocked)}; {r.udp_classification}")
            print("    TCP " + "; ".join(f"{p} {t.state} {t.classification or ''}".strip() for p, t in sorted(r.tcp.items())))

        holder = lossy.popen(["python3", "-c", HOLD_TCP], **PIPES)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"
            ports = list(range(20000, 20200))
            print(f"TCP, 10 % loss each way, {5 * len(ports):,} probes of open ports per row ({load()}):")
            for attempts, timeout in ((1, 1.5), (TCP_ATTEMPTS, 1.5), (1, 3.0), (TCP_ATTEMPTS, 3.0)):
                timed_out, t0 = 0, time.perf_counter()
                for _ in range(5):
                    res = send_agent.connect_tcp(lossy.address, ports, b"bench", timeout, quiet=ports, banner_wait=0.05,
                                            attempts=attempts, stagger=tcp_stagger(timeout))
                    timed_out += sum(1 for v in res.values() if v[0] == "timed out")
                print(f"    {attempts} attempt{'s' if attempts > 1 else ''}, timeout {timeout} s: {timed_out} "
                      f"timed out although open ({(time.perf_counter() - t0) / 5:.2f} s per run; {load()})", flush=True)
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=10)
        print(load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
