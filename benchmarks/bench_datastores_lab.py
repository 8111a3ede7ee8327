"""Cost of the real Cassandra ring the datastore tests use (tests/lab/cassandra.py).

Run as root from the repository root:  python benchmarks/bench_datastores_lab.py [--fetch] [nodes]
Prints: the time tests/lab/build_cassandra.sh took to fetch cassandra-all and its dependencies from
Maven Central (what the cache recorded; --fetch fetches again into a fresh temporary cache and
times that), the size of the jars, then for a ring of `nodes` (default 2) lab hosts: host start,
time until every node sees every other UN (`nodetool status` over JMX), one `nodetool status`
over SSH as the check runs it, the resident memory of the JVMs, and the teardown.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.lab import Lab, lab_unavailable_reason  # noqa: E402
from tests.lab import cassandra as cz  # noqa: E402


def _fetch_fresh() -> tuple[float, str]:
    with tempfile.TemporaryDirectory(prefix="wc-cassandra-bench-") as cache:
        started = time.monotonic()
        proc = subprocess.run(["bash", str(cz.BUILD_SCRIPT)], capture_output=True, text=True,
                              env={**os.environ, "WIRECHECK_LAB_CACHE": cache})
        if proc.returncode != 0:
            sys.exit(f"fetch failed: {proc.stderr.strip()[-500:]}")
        return time.monotonic() - started, cache


def _rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (the JVM is a child of nsenter)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            todo += [int(c) for c in open(f"/proc/{p}/task/{p}/children").read().split()]
        except OSError:
            continue
    return total / 1024


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--fetch"]
    nodes = int(args[0]) if args else 2
    reason = lab_unavailable_reason()
    if reason:
        sys.exit(f"lab unavailable: {reason}")
    if "--fetch" in sys.argv:
        seconds, _ = _fetch_fresh()
        print(f"cassandra {cz.VERSION}: fresh fetch from Maven Central {seconds:.1f} s")
    lib = cz.lib_dir()
    size = sum(f.stat().st_size for f in Path(lib).glob("*.jar")) / 2**20
    print(f"cassandra {cz.VERSION}: jars cached in {lib} ({len(list(Path(lib).glob('*.jar')))} jars, "
          f"{size:.0f} MiB); first fetch took {cz.build_seconds()} s (recorded by build_cassandra.sh)")
    with Lab() as lab:
        first = lab._next_host
        addresses = [f"198.18.{lab.index}.{first + i}" for i in range(nodes)]
        t0 = time.monotonic()
        hosts = lab.add_hosts([{"name": f"cassandra{i + 1}", "files": cz.node_files(lib, a, addresses[:1]),
                                "tmpfs": {cz.DATA: "200m"}} for i, a in enumerate(addresses)])
        t_hosts = time.monotonic() - t0
        ring = cz.CassandraRing.on(hosts, lib)
        try:
            t_ring = ring.start_all(timeout=600)
            per_node = ", ".join(f"{n.host.name} {n.up_after_s:.1f} s" for n in ring.nodes if n.up_after_s)
            t1 = time.monotonic()
            res = hosts[0].ssh("nodetool status", timeout=120)
            t_status = time.monotonic() - t1
            rss = [_rss_mib(n.proc.pid) for n in ring.nodes if n.proc is not None]
            print(f"ring of {nodes}: hosts {t_hosts:.1f} s, all UN after {t_ring:.1f} s ({per_node}); "
                  f"`nodetool status` over SSH {t_status:.1f} s (exit {res.returncode}); "
                  f"JVM RSS {', '.join(f'{r:.0f}' for r in rss)} MiB (heap {ring.heap_mb} MiB each)")
            t2 = time.monotonic()
        finally:
            ring.close()
        print(f"teardown of the ring {time.monotonic() - t2:.1f} s")


if __name__ == "__main__":
    main()
