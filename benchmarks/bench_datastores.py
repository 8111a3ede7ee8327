"""Start-up cost of the real datastore clusters the self-tests use (tests/support/): PostgreSQL
(primary + 2 standbys), etcd (3 members with TLS) and RabbitMQ (2 nodes joined), each in lab hosts,
and the time of one cluster check run against each (a wirecheck pytest subprocess over SSH).

Run as root from the repository root:  python benchmarks/bench_datastores.py
Prints one line per datastore: hosts up, cluster built, one check run, teardown (seconds).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.lab import Lab, lab_unavailable_reason  # noqa: E402
from tests.support.etcdcluster import EtcdCluster  # noqa: E402
from tests.support.pgcluster import PgCluster  # noqa: E402
from tests.support.rabbitmq import RabbitCluster  # noqa: E402
from tests.support.wc import run_suite  # noqa: E402

CASES = {
    "postgresql": (PgCluster, ["pg1", "pg2", "pg3"], "postgresql", "suites/acceptance/test_datastores.py",
                   ["-k", "test_postgresql"], "PROD-ACC-POSTGRESQL"),
    "etcd": (EtcdCluster, ["kubenode1", "kubenode2", "kubenode3"], "etcd", "suites/acceptance/test_kubernetes.py",
             ["-k", "etcd_members_healthy"], "K8S-ETCD"),
    "rabbitmq": (RabbitCluster, ["rmq1", "rmq2"], "rmq-cluster", "suites/acceptance/test_federation.py",
                 ["-k", "test_federation_rabbitmq", "--federation", "--param", "FED-RABBITMQ.min_nodes=2"],
                 "FED-RABBITMQ"),
}


def bench(name: str, tmp: Path) -> str:
    cls, names, group, suite, args, rid = CASES[name]
    t0 = time.monotonic()
    with Lab() as lab:
        hosts = lab.add_hosts([{"name": n} for n in names])
        t1 = time.monotonic()
        cluster = cls(hosts)
        try:
            cluster.build()
            if isinstance(cluster, RabbitCluster):    # Debian's package creates guest/guest, which fails the check
                cluster.brokers[0].ctl("delete_user", "guest")
            t2 = time.monotonic()
            inv = lab.inventory_ini(tmp / f"{name}.ini", {group: hosts})
            run = run_suite(["--ansible-inventory", str(inv), "--profile", "production", *args], tmp / name,
                            suite=suite)
            t3 = time.monotonic()
            status = run.status(rid)
        finally:
            cluster.close()
        t4 = time.monotonic()
    t5 = time.monotonic()
    return (f"{name:<11} hosts {t1 - t0:5.1f} s   cluster {t2 - t1:5.1f} s   check run {t3 - t2:5.1f} s ({status})   "
            f"stop {t4 - t3:4.1f} s   lab teardown {t5 - t4:4.1f} s")


def main() -> None:
    reason = lab_unavailable_reason()
    if reason:
        sys.exit(f"lab unavailable: {reason}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in sys.argv[1:] or CASES:
            print(bench(name, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
