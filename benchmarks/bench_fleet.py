"""Wall time of the production host and fleet checks against 1, 4, 17 and 50 SSH test hosts, serial
and with -n auto (issue 5: production topology at scale).

    sudo /tmp/venv/bin/python benchmarks/bench_fleet.py [--hosts 1,4,17,50] [--repeat 3]
                                                       [--suite suites/preflight/test_production.py]

Each figure is the end-to-end time of `pytest <suite> --profile production --ansible-inventory
hosts.ini` (process start, Ansible's inventory parser, xdist workers, one SSH connection per host,
every check, compliance.json). The hosts are network-namespace test hosts with their own sshd,
sized as the production table asks, with roles dealt out in the order of a real inventory (kube
nodes, cassandra, elasticsearch, minio, restund, postgresql, assethost, admin), written in
wire-server-deploy's INI layout. Goals: 17 hosts under 10 s with -n auto; the time per host flat
or falling as hosts grow. The machine's load average is printed: other work on it inflates the
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.lab import Lab  # noqa: E402
from tests.support.wc import QUIET_PLUGINS  # noqa: E402

GIB_KIB = 1024 * 1024
JAMMY = 'NAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\nID=ubuntu\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'
# the order of a real inventory: (group, cores, GiB, data path, disk)
KINDS = [("kube-node", 6, 8, "/var/lib/containerd", "40G")] * 3 + \
        [("cassandra", 2, 4, "/var/lib/cassandra", "80G")] * 3 + \
        [("elasticsearch", 1, 2, "/var/lib/elasticsearch", "60G")] * 3 + \
        [("minio", 1, 2, "/var/lib/minio", "400G")] * 3 + \
        [("restund", 1, 2, None, None)] * 2 + \
        [("postgresql", 1, 2, "/var/lib/postgresql", "50G"), ("assethost", 1, 4, "/opt/assets", "100G"),
         ("admin", 1, 4, None, None)]


def host_spec(i: int) -> dict:
    group, cores, gib, path, disk = KINDS[i % len(KINDS)]
    spec = {"name": f"{group.replace('-', '')}{i}", "user": "wire", "sudo": True, "fake_cpus": cores,
            "meminfo_kib": int(gib * GIB_KIB * 0.96), "sysctls": {"net.ipv4.ip_forward": "1"},
            "files": {"/etc/os-release": JAMMY, "/etc/machine-id": f"{i + 1:032x}\n"}}
    if path:
        spec["tmpfs"] = {path: disk}
    if group == "cassandra":
        spec["sysctls"]["vm.max_map_count"] = "1048575"
    if group == "elasticsearch":
        spec["sysctls"]["vm.max_map_count"] = "262144"
    return spec


def write_inventory(lab: Lab, hosts, path: Path) -> None:
    groups: dict[str, list] = {}
    for i, h in enumerate(hosts):
        group = KINDS[i % len(KINDS)][0]
        groups.setdefault(group, []).append(h)
        if group == "kube-node":
            groups.setdefault("kube-master", []).append(h)
            groups.setdefault("etcd", []).append(h)
    lab.inventory_ini(path, groups, vars={"target_domain": "wire.example.test"}, hosts=hosts,
                      group_vars={g: {f"{g}_network_interface": "eth0"} for g in ("cassandra", "elasticsearch", "minio")
                                  if g in groups})
    text = path.read_text()
    if "[kube-node]" in text:
        text = text.replace("[kube-node]", "[k8s-cluster:children]\nkube-master\nkube-node\n\n[kube-node]", 1)
    path.write_text(text)


def run(suite: str, inventory: Path, report: Path, parallel: bool) -> tuple[float, int, dict[str, int]]:
    cmd = [sys.executable, "-m", "pytest", suite, "-q", *QUIET_PLUGINS, "--profile", "production",
           "--ansible-inventory", str(inventory), "--report-dir", str(report)]
    if parallel:
        cmd += ["-n", "auto"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - start
    data = json.loads((report / "compliance.json").read_text())
    statuses: dict[str, int] = {}
    for r in data["requirements"]:
        for x in r["results"]:
            statuses[x["status"]] = statuses.get(x["status"], 0) + 1
    if proc.returncode not in (0, 1):
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
    return elapsed, sum(statuses.values()), statuses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="1,4,17,50", help="comma-separated host counts (default 1,4,17,50)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is printed")
    ap.add_argument("--suite", default="suites/preflight/test_production.py",
                    help="what to run (default: the production host and fleet checks; suites/preflight for all)")
    args = ap.parse_args()
    counts = [int(x) for x in args.hosts.split(",")]
    with Lab() as lab:
        start = time.perf_counter()
        hosts = lab.add_hosts([host_spec(i) for i in range(max(counts))])
        print(f"lab: {len(hosts)} hosts up in {time.perf_counter() - start:.1f} s; suite {args.suite}; "
              f"{os.cpu_count()} CPUs", flush=True)
        print(f"{'hosts':>5}  {'mode':<8} {'median s':>9} {'min s':>7} {'s/host':>7} {'results':>8}  "
              f"{'load':>5}  statuses", flush=True)
        for n in counts:
            with tempfile.TemporaryDirectory() as tmp:
                inv = Path(tmp) / "hosts.ini"
                write_inventory(lab, hosts[:n], inv)
                for parallel in (False, True):
                    times, total, statuses = [], 0, {}
                    for i in range(args.repeat):
                        t, total, statuses = run(args.suite, inv, Path(tmp) / f"r{i}", parallel)
                        times.append(t)
                    med = statistics.median(times)
                    load = os.getloadavg()[0]
                    shown = " ".join(f"{k}={v}" for k, v in sorted(statuses.items()))
                    print(f"{n:>5}  {'-n auto' if parallel else 'serial':<8} {med:>9.2f} {min(times):>7.2f} "
                          f"{med / n:>7.2f} {total:>8}  {load:>5.1f}  {shown}", flush=True)


if __name__ == "__main__":
    main()
