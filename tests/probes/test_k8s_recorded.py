"""The probes against replayed API responses (tests/data/k8s/kubespray-offline, in kubectl's output
formats) served by the Kubernetes API emulator (FakeKubeApiServer)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.k8s_emulator import EmulatedCluster
from tests.k8s_emulator.fixtures import k8s_api_emulator  # noqa: F401 - fixture
from wirecheck.probes import k8s

RECORDING = Path(__file__).resolve().parents[1] / "data" / "k8s" / "kubespray-offline"
T = 5.0


def _api(start, cluster: EmulatedCluster) -> k8s.KubeApi:  # noqa: ANN001
    _, kubeconfig = start(cluster)
    return k8s.KubeApi.from_kubeconfig(str(kubeconfig))


def test_recorded_kubespray_cluster_passes_the_cluster_judges(k8s_api_emulator):  # noqa: F811
    api = _api(k8s_api_emulator, EmulatedCluster.from_recording(RECORDING))
    nodes = k8s.node_facts(api, T)
    assert [(n.name, n.cpu_capacity, n.is_worker) for n in nodes] == [
        ("kubenode1", 8.0, True), ("kubenode2", 8.0, True), ("kubenode3", 8.0, True)]
    assert k8s.judge_workers(nodes).ok
    assert k8s.judge_nodes_healthy(nodes).ok
    etcd = k8s.judge_etcd(k8s.etcd_facts(api, T))
    assert etcd.ok and "3 member(s) (kube-apiserver --etcd-servers" in etcd.observed
    assert k8s.judge_version(k8s.version_facts(api, T), "v1.29.10").ok
    pods = k8s.judge_pods(k8s.pod_facts(api, T))
    assert pods.ok and "Succeeded 1" in pods.observed
    releases = k8s.helm_releases(api, T)
    assert {r.name: r.revision for r in releases}["wire-server"] == 2
    assert k8s.judge_helm_releases(releases, k8s.expected_releases("production", {})).ok
    assert k8s.judge_ingress_nodeport(k8s.ingress_facts(api, T)).ok
    assert k8s.judge_sft_placement(k8s.sft_facts(api, T), 200).ok  # 8 cores = 6 + 200/100
    exposure = k8s.judge_public_exposure(k8s.service_facts(api, T), k8s.pod_facts(api, T))
    assert exposure.ok, exposure.message
    assert "pod kube-system/nodelocaldns-x7k21" in exposure.evidence["allowed"]  # hostPort 53, kube-system
    assert k8s.certificate_facts(api, T) is None  # no cert-manager in this recording


def test_recorded_nginz_log_is_judged_against_the_clock(k8s_api_emulator):  # noqa: F811
    api = _api(k8s_api_emulator, EmulatedCluster.from_recording(RECORDING))
    logs = k8s.nginz_log_facts(api, T)
    assert [lf.first_line_time for lf in logs] == [datetime(2026, 11, 26, 8, 0, 3, 412345, tzinfo=UTC)]
    assert not k8s.judge_log_retention(logs, datetime(2026, 11, 27, 8, 0, tzinfo=UTC)).applicable  # pod 24 h old
    j = k8s.judge_log_retention(logs, datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
    assert not j.ok and "keeps log lines 96.0 h old (first: 2026-11-26T08:00:03Z)" in j.message


def test_recording_with_a_node_removed_fails_naming_the_remaining_nodes(k8s_api_emulator):  # noqa: F811
    cluster = EmulatedCluster.from_recording(RECORDING)
    cluster.nodes = [n for n in cluster.nodes if n["metadata"]["name"] != "kubenode3"]
    j = k8s.judge_workers(k8s.node_facts(_api(k8s_api_emulator, cluster), T))
    assert not j.ok and j.observed == "2 schedulable worker node(s): kubenode1, kubenode2"
