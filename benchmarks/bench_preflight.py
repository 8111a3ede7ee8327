"""Wall time of the whole demo preflight against 1 and 17 SSH test hosts, serial and with -n auto.

    sudo .venv/bin/python benchmarks/bench_preflight.py [--hosts 1,17] [--repeat 3]

Each figure is the end-to-end time of `pytest suites/preflight` (process start, inventory, SSH
connections, every check, compliance.json) against lab hosts (network namespaces with their own
sshd). Goals: one host under 2 s (issue 14), 17 hosts under 10 s. The load average (1 min) before
each run is printed beside the figures: on a shared machine wall times grow with it.

The runs see the environment an operator's machine has: PYTHONDONTWRITEBYTECODE (which this build
machine sets) is left out, and one run that is not counted comes first, so Python's bytecode and
pytest's rewritten suites are cached as after a first run (scripts/install.sh also writes them).
"""

from __future__ import annotations

import argparse
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.lab import Lab  # noqa: E402
from tests.support.wc import QUIET_PLUGINS  # noqa: E402


def run(inventory: Path, report: Path, parallel: bool, url: str, without_ports: bool) -> tuple[float, int, int]:
    cmd = [sys.executable, "-m", "pytest", "suites/preflight", "-q", *QUIET_PLUGINS,
           "--ansible-inventory", str(inventory), "--report-dir", str(report), "--internet-url", url,
           # wire_ip is empty: the node's question for its public address stays on this machine
           "--public-ip-url", "http://127.0.0.1:9/"]
    if without_ports:
        cmd += ["-k", "not test_ports and not firewall"]      # DEMO-NET-FIREWALL reads the probe too
    if parallel:
        cmd += ["-n", "auto"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    elapsed = time.perf_counter() - start
    import json
    data = json.loads((report / "compliance.json").read_text())
    results = sum(len(r["results"]) for r in data["requirements"])
    errors = sum(1 for r in data["requirements"] for x in r["results"] if x["status"] == "error")
    if proc.returncode not in (0, 1):
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
    return elapsed, results, errors


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="1,17", help="comma-separated host counts (default 1,17)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is printed")
    ap.add_argument("--modes", default="full,without-ports",
                    help="full (every check, including the probe of all 32,768 UDP ports per host) and/or "
                         "without-ports (-k 'not test_ports and not firewall')")
    args = ap.parse_args()
    counts = [int(x) for x in args.hosts.split(",")]
    print(f"{'hosts':>5}  {'checks':<14} {'mode':<9} {'median s':>9} {'min s':>7} {'per host s':>10} "
          f"{'results':>8} {'errors':>6} {'load':>9}")
    with Lab() as lab:
        srv = http.server.ThreadingHTTPServer((lab.gateway, 0), _Quiet)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = f"http://{lab.gateway}:{srv.server_address[1]}/"
        hosts = lab.add_hosts([{"name": f"n{i}", "user": "wire", "sudo": True} for i in range(max(counts))])
        for n in counts:
            with tempfile.TemporaryDirectory() as tmp:
                inv = Path(tmp) / "hosts.yml"
                _write_inventory(inv, hosts[:n])
                run(inv, Path(tmp) / "warm-up", False, url, False)     # not counted: caches bytecode
                for mode in args.modes.split(","):
                    for parallel in (False, True):
                        times, res, errs, loads = [], 0, 0, []
                        for i in range(args.repeat):
                            loads.append(os.getloadavg()[0])
                            t, res, errs = run(inv, Path(tmp) / f"r{i}", parallel, url, mode == "without-ports")
                            times.append(t)
                        med = statistics.median(times)
                        print(f"{n:>5}  {mode:<14} {'-n auto' if parallel else 'serial':<9} {med:>9.2f} "
                              f"{min(times):>7.2f} {med / n:>10.2f} {res:>8} {errs:>6} "
                              f"{min(loads):>4.1f}-{max(loads):<4.1f}", flush=True)
        srv.shutdown()
        srv.server_close()


def _write_inventory(path: Path, hosts) -> None:
    lines = ["wiab:", "  hosts:"]
    for h in hosts:
        lines += [f"    {h.name}:", f"      ansible_host: {h.address}", f"      ansible_user: {h.user}",
                  f"      ansible_ssh_private_key_file: {h.key_path}",
                  f"      ansible_ssh_common_args: '{h.ssh_extra_args}'"]
    lines += ["  children:", "    deploy_node:", "      hosts:"] + [f"        {h.name}:" for h in hosts]
    lines += ["  vars:", "    target_domain: wire.example.test"]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
