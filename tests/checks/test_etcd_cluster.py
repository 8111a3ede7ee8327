"""K8S-ETCD against a real three-member etcd cluster (Debian's etcd-server) in lab hosts, laid out as
kubespray lays it out (TLS from one CA in /etc/ssl/etcd/ssl, admin-<host>.pem for etcdctl), checked
over SSH with etcdctl on the [etcd] hosts as on a site. One cluster, taken through the cases in order:
healthy, one member down (quorum kept, still a failure: the requirement is three healthy members; the
Kubernetes API's view, read beside it, does not see it), quorum lost. One test function: under `pytest -n 2` a module's tests may go to both workers.
"""

from __future__ import annotations

import shutil
import time

import pytest

from tests.k8s_emulator import FakeKubeApiServer
from tests.k8s_emulator.scenarios import production_cluster
from tests.lab.fixtures import skip_or_fail
from tests.support.etcdcluster import EtcdCluster
from tests.support.wc import run_suite

RID = "K8S-ETCD"
PATH = "etcdctl on the [etcd] hosts"


@pytest.fixture(scope="module")
def etcd(lab_module):
    if not (shutil.which("etcd") and shutil.which("etcdctl")):
        skip_or_fail("etcd-server and etcd-client not installed (scripts/install.sh --test installs it)")
    hosts = lab_module.add_hosts([{"name": f"kubenode{i}"} for i in (1, 2, 3)])
    cluster = EtcdCluster(hosts)
    try:
        yield cluster.build()
    finally:
        cluster.close()


def _check(lab, tmp_path, name: str, *extra: str):
    inv = lab.inventory_ini(tmp_path / f"{name}.ini", {"etcd": lab.hosts, "kube-node": lab.hosts})
    run = run_suite(["--ansible-inventory", str(inv), "--profile", "production", "-k", "etcd_members_healthy",
                     *extra], tmp_path / name, suite="suites/acceptance/test_kubernetes.py")
    return run.result(RID)


def test_etcd_cluster_judged_from_every_member(etcd, lab_module, tmp_path):
    lab = lab_module
    addr = {m.name: m.host.address for m in etcd.members}

    r = _check(lab, tmp_path, "healthy")
    assert r["status"] == "pass", r
    assert r["observed"].startswith(f"{PATH}: 3 member(s), 3 healthy; leader etcd-kubenode"), r["observed"]
    assert r["evidence"]["paths"] == [PATH]
    assert sorted(r["evidence"][PATH]["healthy"]) == ["etcd-kubenode1", "etcd-kubenode2", "etcd-kubenode3"]
    assert "/etc/ssl/etcd/ssl/admin-{host}.pem" in r["method"]

    # one member down: quorum is kept by two, but the requirement is three healthy members. The API
    # server's view (/readyz/etcd answers ok while a quorum serves it; the emulator stands in for a
    # kubespray cluster's API server here) passes alone: only the hosts see the member down
    etcd.member("kubenode3").stop()
    server = FakeKubeApiServer(production_cluster()).start()
    try:
        r = _check(lab, tmp_path, "one-down", "--kubeconfig", str(server.write_kubeconfig(tmp_path / "kubeconfig")))
    finally:
        server.stop()
    assert r["evidence"]["paths"] == [PATH, "Kubernetes API"], r["evidence"]
    assert r["observed"].endswith("; Kubernetes API: /readyz/etcd: 200 'ok'; 3 member(s) (kube-apiserver "
                                  "--etcd-servers (kube-system)): 172.16.0.11:2379, 172.16.0.12:2379, "
                                  "172.16.0.13:2379"), r["observed"]
    assert r["message"].startswith(f"K8S-ETCD on site: {PATH}: etcd member etcd-kubenode3"), r["message"]
    assert "Kubernetes API: GET /readyz/etcd" in r["method"]
    assert r["status"] == "fail", r
    assert (f"etcd member etcd-kubenode3 (https://{addr['kubenode3']}:2379, host kubenode3) is not healthy: "
            f"on kubenode3, its member does not answer on {addr['kubenode3']}:2379") in r["message"], r["message"]
    assert "health check from kubenode1, kubenode2: context deadline exceeded" in r["message"]
    assert "quorum still held by 2 of 3, but one more failure stops the cluster" in r["message"]
    assert "quorum lost" not in r["message"]
    assert "etcd-kubenode1" not in r["message"] and "etcd-kubenode2" not in r["message"]
    assert r["evidence"][PATH]["hosts"]["kubenode3"]["state"] == "down"

    # quorum lost: one member of three left; it answers but has no leader
    etcd.member("kubenode2").stop()
    deadline = time.monotonic() + 20    # the last member notices the lost quorum within an election timeout
    while "no leader" not in etcd.etcdctl("kubenode1", "endpoint", "status", "-w", "json").stdout:
        assert time.monotonic() < deadline, "kubenode1 still reports a leader"
        time.sleep(0.2)
    r = _check(lab, tmp_path, "quorum-lost")
    assert r["status"] == "fail", r
    assert f"{PATH}: quorum lost: 0 of 3 etcd member(s) healthy, a quorum needs 2" in r["message"], r["message"]
    assert "etcd member etcd-kubenode2" in r["message"] and "etcd member etcd-kubenode3" in r["message"]
    # the last member answers, but not healthily (etcdctl's error text varies with timing)
    assert f"etcd-kubenode1 (https://{addr['kubenode1']}:2379, host kubenode1) is not healthy: health check from " \
           "kubenode1: " in r["message"], r["message"]
    assert "no leader" in r["observed"], r["observed"]
