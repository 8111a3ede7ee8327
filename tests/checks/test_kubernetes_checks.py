"""The Kubernetes checks end to end: `pytest suites/... -k kubernetes` in a subprocess, as a user runs
it, asserting what lands in compliance.json.

The cluster checks pass and fail against a real kube-apiserver in test_kubernetes_real.py. Here:
what needs no cluster (no kubeconfig, an unreachable API, the inventory preflight), and, on the
Kubernetes API emulator (FakeKubeApiServer), the node-forwarding evidence read from real lab hosts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tests.k8s_emulator import EmulatedCluster, FakeKubeApiServer
from tests.k8s_emulator.scenarios import production_cluster
from tests.support.wc import Run, run_suite

K8S_ACCEPTANCE = ["K8S-WORKERS", "K8S-ETCD", "K8S-VERSION", "K8S-NODES-HEALTHY", "HELM-RELEASES",
                  "K8S-PODS-HEALTHY", "TLS-CERTS-READY", "CALL-SFT-PLACEMENT", "K8S-INGRESS-NODEPORT",
                  "K8S-PUBLIC-EXPOSURE", "LOG-RETENTION-72H"]


def _emulate(cluster: EmulatedCluster, tmp: Path) -> Iterator[Path]:
    """Serve `cluster` for the body of a `for kubeconfig in _emulate(...)` loop, then stop."""
    tmp.mkdir(parents=True, exist_ok=True)
    server = FakeKubeApiServer(cluster).start()
    try:
        yield server.write_kubeconfig(tmp / "kubeconfig")
    finally:
        server.stop()


def _acceptance(kubeconfig: Path | None, tmp: Path, profile: str = "production", extra: list[str] | None = None) -> Run:
    args = ["-k", "kubernetes", "--profile", profile, *(["--kubeconfig", str(kubeconfig)] if kubeconfig else []),
            *(extra or [])]
    return run_suite(args, tmp / "report", suite="suites/acceptance")


def test_without_kubeconfig_every_check_is_not_evaluated_naming_the_option(tmp_path):
    run = _acceptance(None, tmp_path)
    for rid in K8S_ACCEPTANCE:
        assert run.status(rid) == "not_evaluated", rid
        assert "--kubeconfig" in run.result(rid)["message"], rid


def test_unreachable_api_is_an_error_not_a_verdict(tmp_path):
    server = FakeKubeApiServer(production_cluster()).start()
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    server.stop()
    run = _acceptance(kubeconfig, tmp_path)
    for rid in ("K8S-WORKERS", "HELM-RELEASES", "K8S-PODS-HEALTHY"):
        assert run.status(rid) == "error", rid
        assert "Kubernetes API" in run.result(rid)["message"] and "cannot connect" in run.result(rid)["message"]


# ---------------------------------------------------------------------------- preflight (inventory)

INVENTORY = """
[kube-master]
{masters}
[etcd]
{etcd}
[kube-node]
{workers}
[k8s-cluster:children]
kube-master
kube-node
[all:vars]
kube_version = {version}
"""


def _inventory(tmp: Path, workers: int, etcd: int, version: str) -> Path:
    def hosts(prefix: str, n: int) -> str:
        # never contacted: the inventory checks only count group members
        return "\n".join(f"{prefix}{i} ansible_host=127.0.0.{10 + i}" for i in range(1, n + 1))

    path = tmp / "hosts.ini"
    path.write_text(INVENTORY.format(masters=hosts("kubenode", min(3, workers)), etcd=hosts("kubenode", etcd),
                                     workers=hosts("kubenode", workers), version=version))
    return path


def test_preflight_inventory_counts_pass_and_fail(tmp_path):
    good = run_suite(["-k", "kubernetes", "--ansible-inventory", str(_inventory(tmp_path, 3, 3, "v1.29.10"))],
                     tmp_path / "good")
    assert good.status("K8S-WORKERS") == "pass", good.stdout[-2000:] + good.stderr[-2000:]
    assert good.status("K8S-ETCD") == "pass"
    assert good.status("K8S-VERSION") == "pass"
    assert good.result("K8S-WORKERS")["observed"] == "[kube-node] has 3 host(s): kubenode1, kubenode2, kubenode3"

    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = run_suite(["-k", "kubernetes", "--ansible-inventory", str(_inventory(bad_dir, 2, 4, "v1.26.5"))],
                    bad_dir / "report")
    assert bad.status("K8S-WORKERS") == "fail"
    assert bad.result("K8S-WORKERS")["observed"] == "[kube-node] has 2 host(s): kubenode1, kubenode2"
    assert bad.status("K8S-ETCD") == "fail"
    assert "4 is an even number" in bad.result("K8S-ETCD")["message"]
    assert bad.status("K8S-VERSION") == "warn"
    assert "v1.26.5 is below 1.27" in bad.result("K8S-VERSION")["message"]


def test_preflight_without_inventory_is_not_evaluated(tmp_path):
    run = run_suite(["-k", "kubernetes", "--profile", "production"], tmp_path)
    for rid in ("K8S-WORKERS", "K8S-ETCD"):
        assert run.status(rid) == "not_evaluated"
        assert "--ansible-inventory" in run.result(rid)["message"]
    assert run.status("K8S-VERSION") == "not_evaluated"
    assert "--kubeconfig" in run.result("K8S-VERSION")["message"]


# ---------------------------------------------------------------------------- node forwarding (real hosts)


def test_ingress_node_forwarding_evidence_from_real_iptables(lab, tmp_path):
    """443/80 forwarding on the nodes is read with iptables-save over SSH from real lab hosts.

    It is evidence, not a verdict: the docs allow the forwarding on a load balancer or firewall
    instead, which the API cannot show."""
    fwd = lab.add_host("kn-fwd", setup=[
        "iptables -t nat -A PREROUTING -p tcp --dport 443 -j REDIRECT --to-ports 31773",
        "iptables -t nat -A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 31772"])
    bare = lab.add_host("kn-bare")
    for kubeconfig in _emulate(production_cluster(), tmp_path / "emu"):
        run = _acceptance(kubeconfig, tmp_path, extra=[
            "--hosts", f"{fwd.hostspec},{bare.hostspec}", "--ssh-identity-file", fwd.key_path,
            f"--ssh-extra-args={fwd.ssh_extra_args}", "--roles", "kube-node"])
    r = run.result("K8S-INGRESS-NODEPORT")
    assert r["status"] == "pass", run.stdout[-2000:]
    seen = r["evidence"]["node_forwarding"]
    by_address = {next(a for a in (fwd.address, bare.address) if a in name): v for name, v in seen.items()}
    assert by_address == {fwd.address: "443->31773 present, 80->31772 present",
                          bare.address: "443->31773 absent, 80->31772 absent"}
