"""The whole port verdict of one host (TCP, UDP range, closed vs filtered) with a UDP DROP band and a
dropped TCP port, against a namespace test host; and the window size's cost.

Run as root from the repository root:  python benchmarks/bench_port_verdict.py [runs]

The host drops UDP 40000-40999 (iptables) and TCP 80 (iptables), rejects TCP 443. Per run: the total
(listener start to listener gone), the phases the probe reports (listener start, UDP rounds, TCP
connects, classification, which overlap), the most range ports held at once and the verdict. Then the
same probe with the listener holding the whole range at once (window 0, the old way) and with larger
windows, to show what the bound on held ports costs. The load average is printed beside the figures:
on a shared machine wall times grow with it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.lab import Lab, lab_unavailable_reason  # noqa: E402
from wirecheck.probes.ports import WINDOW, format_ranges, probe_ports  # noqa: E402

FIREWALL = [
    "iptables -A INPUT -p udp --dport 40000:40999 -j DROP",
    "iptables -A INPUT -p tcp --dport 80 -j DROP",
    "iptables -A INPUT -p tcp --dport 443 -j REJECT",
]
PIPES = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
RANGE = range(32768, 65536)


def one(host, window: int, tcp_timeout: float) -> tuple[float, object]:
    t0 = time.perf_counter()
    r = probe_ports(lambda argv: host.popen(argv, **PIPES), host.address, udp=RANGE, tcp=[22, 80, 443, 3478],
                    classify=True, window=window, tcp_timeout=tcp_timeout)
    return time.perf_counter() - t0, r


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    reason = lab_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}")
        return 1
    with Lab() as lab:
        h = lab.add_host("verdict", setup=FIREWALL)
        print(f"load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs")
        for window, tcp_timeout, label in ((WINDOW, 1.5, f"window {WINDOW} (default), TCP timeout 1.5 s"),
                                           (0, 1.5, "whole range at once (old), TCP timeout 1.5 s"),
                                           (8192, 1.5, "window 8192, TCP timeout 1.5 s"),
                                           (WINDOW, 3.0, f"window {WINDOW}, TCP timeout 3 s (old default)")):
            times = []
            for _ in range(runs):
                took, r = one(h, window, tcp_timeout)
                times.append(took)
            phases = ", ".join(f"{k} {v:.2f}" for k, v in r.timings.items() if k != "control_rtt")
            print(f"{label}: median {statistics.median(times):.2f} s (runs: "
                  + ", ".join(f"{t:.2f}" for t in times) + f"); held at most {r.udp_held_max or 32768:,} ports")
            print(f"    phases: {phases}")
            print(f"    UDP blocked {format_ranges(r.udp_blocked)}; {r.udp_classification}")
            print("    TCP " + "; ".join(f"{p} {t.state} {t.classification or ''}".strip() for p, t in sorted(r.tcp.items())))
        print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
