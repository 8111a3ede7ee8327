"""The whole production preflight against 17 SSH test hosts with -n auto, next to Ansible's own fact
gathering (`ansible all -m setup`, ansible-core 2.16, 17 forks, pipelining on and off) on the same
hosts in the same run (issue 14, "Fleet speed").

    sudo .venv/bin/python benchmarks/bench_fleet_vs_ansible.py [--hosts 17] [--repeat 3]
    sudo .venv/bin/python benchmarks/bench_fleet_vs_ansible.py --hold /tmp/fleet-lab   # keep the lab up

The wirecheck figure is the end-to-end time of `pytest suites/preflight --profile production
--ansible-inventory hosts.ini -n auto` (process start, Ansible's inventory parser, SSH connections,
every check including the port probes of the Kubernetes and restund hosts, compliance.json), and
beside it the same with `-n 2` (two xdist workers; `-n auto` runs in one process, see
wirecheck.coordination.auto_workers).  The internet and public-IP checks ask a web server on the lab's gateway (no
traffic leaves the machine).  The Ansible figure is `ansible all -i hosts.ini -m setup -f 17`
with the same inventory, each run with a fresh ControlPath directory (no master kept from an
earlier run, as wirecheck starts its own), `ANSIBLE_PIPELINING` on and off.  The runs alternate
(wirecheck's, Ansible pipelined, Ansible not pipelined) so that load from elsewhere falls on all three;
the load average is printed beside each round.  The wirecheck runs leave PYTHONDONTWRITEBYTECODE out of
their environment (this build machine sets it; an operator's does not, and Ansible's own modules are
byte-compiled by pip when installed), so its bytecode is cached as after a first run.

The hosts are bench_fleet.py's: network-namespace test hosts with their own sshd, sized as the
production table asks, in wire-server-deploy's INI layout.  With --hold DIR the lab stays up with
DIR/hosts.ini written until SIGTERM/Ctrl-C (for profiling runs by hand).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_fleet import host_spec, write_inventory  # noqa: E402

from tests.lab import Lab  # noqa: E402
from tests.support.wc import QUIET_PLUGINS  # noqa: E402


def ansible_bin() -> str:
    """ansible from this interpreter's venv (ansible-core 2.16 is a dependency of wirecheck)."""
    here = Path(sys.executable).parent / "ansible"
    found = str(here) if here.exists() else shutil.which("ansible")
    if not found:
        sys.exit("no ansible found: pip install 'ansible-core==2.16.*'")
    return found


def ansible_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "?"


def wirecheck_cmd(inventory: Path, report: Path, url: str, parallel: str) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "suites/preflight", "-q", *QUIET_PLUGINS, "--profile", "production",
           "--ansible-inventory", str(inventory), "--report-dir", str(report), "--internet-url", url,
           "--public-ip-url", url + "ip"]
    if parallel:
        cmd += ["-n", parallel]
    return cmd


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_wirecheck(inventory: Path, report: Path, url: str, parallel: str) -> tuple[float, dict[str, int]]:
    start = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}   # as on an operator's machine
    proc = subprocess.run(wirecheck_cmd(inventory, report, url, parallel), cwd=REPO, capture_output=True,
                          text=True, timeout=900, env=env)
    elapsed = time.perf_counter() - start
    statuses: dict[str, int] = {}
    try:
        data = json.loads((report / "compliance.json").read_text())
        for r in data["requirements"]:
            for x in r["results"]:
                statuses[x["status"]] = statuses.get(x["status"], 0) + 1
    except (OSError, ValueError):
        statuses["no-report"] = 1
    if proc.returncode not in (0, 1):
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
    return elapsed, statuses


def run_ansible(binary: str, inventory: Path, forks: int, pipelining: bool) -> tuple[float, int, int]:
    """(seconds, hosts that answered, hosts that failed) of one `ansible all -m setup`."""
    with tempfile.TemporaryDirectory(prefix="bench-ans-") as cp:
        env = {**os.environ, "ANSIBLE_PIPELINING": "True" if pipelining else "False",
               "ANSIBLE_SSH_CONTROL_PATH_DIR": cp, "ANSIBLE_HOST_KEY_CHECKING": "False",
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": cp + "/tmp", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "0"}
        start = time.perf_counter()
        proc = subprocess.run([binary, "all", "-i", str(inventory), "-m", "setup", "-f", str(forks), "-o"],
                              capture_output=True, text=True, timeout=600, env=env, cwd=cp)
        elapsed = time.perf_counter() - start
        # let the masters of this run go before the next one (ControlPersist would keep them 60 s)
        for sock in Path(cp).glob("*"):
            if sock.is_socket():
                subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True,
                               check=False, timeout=10)
    ok = sum(1 for line in proc.stdout.splitlines() if "| SUCCESS" in line)
    bad = sum(1 for line in proc.stdout.splitlines() if "| FAILED" in line or "| UNREACHABLE" in line)
    if bad or proc.returncode not in (0,):
        print(proc.stdout[-1500:], proc.stderr[-1500:], file=sys.stderr)
    return elapsed, ok, bad


class _Web(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200 (the internet check) and /ip with the asking address (public IP)."""

    def do_GET(self) -> None:  # noqa: N802
        body = (self.client_address[0] if self.path.endswith("/ip") else "ok").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=17, help="number of hosts (default 17)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; median and min are printed")
    ap.add_argument("-n", dest="parallel", default="auto,2",
                    help="wirecheck's -n, comma-separated runs per round (default auto,2; '' for serial)")
    ap.add_argument("--hold", metavar="DIR", help="only start the lab, write DIR/hosts.ini and wait for SIGTERM")
    args = ap.parse_args()
    binary = ansible_bin()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))   # the lab is torn down on the way out
    with Lab() as lab:
        srv = http.server.ThreadingHTTPServer((lab.gateway, 0), _Web)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = f"http://{lab.gateway}:{srv.server_address[1]}/"
        start = time.perf_counter()
        hosts = lab.add_hosts([host_spec(i) for i in range(args.hosts)])
        print(f"lab: {len(hosts)} hosts up in {time.perf_counter() - start:.1f} s; {os.cpu_count()} CPUs; "
              f"{ansible_version(binary)}", flush=True)
        if args.hold:
            d = Path(args.hold)
            d.mkdir(parents=True, exist_ok=True)
            write_inventory(lab, hosts, d / "hosts.ini")
            (d / "url").write_text(url)
            (d / "wirecheck.cmd").write_text(" ".join(wirecheck_cmd(d / "hosts.ini", d / "report", url, "auto")))
            print(f"holding: {d}/hosts.ini, web {url}; SIGTERM to end", flush=True)
            while True:
                time.sleep(3600)
        with tempfile.TemporaryDirectory() as tmp:
            inv = Path(tmp) / "hosts.ini"
            write_inventory(lab, hosts, inv)
            modes = [m.strip() for m in args.parallel.split(",")]
            names = [f"wirecheck -n {m}" if m else "wirecheck serial" for m in modes]
            names += ["ansible pipelined", "ansible not pipelined"]
            rows: dict[str, list[float]] = {k: [] for k in names}
            cpu: dict[str, list[float]] = {k: [] for k in names}
            print("seconds of wall time; in brackets the CPU seconds of the runner and the processes it waited for "
                  "(xdist workers, Ansible's forks, ssh clients) on this machine", flush=True)
            print(f"{'round':>5}  " + " ".join(f"{k:<24}" for k in names) + f" {'load 1m':>7}  wirecheck statuses",
                  flush=True)

            def timed(fn):
                c0 = children_cpu()
                out = fn()
                return out, children_cpu() - c0

            for i in range(args.repeat):
                cells, shown, note = [], [], ""
                for m, name in zip(modes, names, strict=False):
                    (t, statuses), c = timed(lambda i=i, m=m: run_wirecheck(inv, Path(tmp) / f"r{i}{m}", url, m))
                    rows[name].append(t)
                    cpu[name].append(c)
                    cells.append(f"{t:6.2f} s [{c:.1f}]")
                    shown.append(" ".join(f"{k}={v}" for k, v in sorted(statuses.items())))
                for pipelining, name in ((True, names[-2]), (False, names[-1])):
                    (t, ok, bad), c = timed(lambda p=pipelining: run_ansible(binary, inv, args.hosts, p))
                    rows[name].append(t)
                    cpu[name].append(c)
                    cells.append(f"{t:6.2f} s [{c:.1f}]")
                    if ok != args.hosts:
                        note += f"  ({name}: {ok} answered, {bad} failed)"
                same = len(set(shown)) == 1
                print(f"{i + 1:>5}  " + " ".join(f"{c:<24}" for c in cells) + f" {os.getloadavg()[0]:>7.2f}  "
                      + (shown[0] if same else " | ".join(shown)) + note, flush=True)
            for k, v in rows.items():
                print(f"median {k:<22} {statistics.median(v):6.2f} s (min {min(v):.2f}); CPU "
                      f"{statistics.median(cpu[k]):.1f} s")

if __name__ == "__main__":
    main()
