"""Kubernetes probes against the Kubernetes API emulator (FakeKubeApiServer): no real API server
can run on these machines, so the official client talks HTTPS to an emulator that serves
API-shaped JSON for emulated clusters."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.k8s_emulator.cluster import (
    NOW,
    container_status,
    make_node,
    make_pod,
    make_service,
    make_workload,
)
from tests.k8s_emulator.fixtures import k8s_api_emulator  # noqa: F401 - fixture
from tests.k8s_emulator.scenarios import crashloop, demo_cluster, fail_release, production_cluster
from wirecheck.probes import k8s

T = 5.0


def api_for(start, cluster):  # noqa: ANN001
    server, kubeconfig = start(cluster)
    return server, k8s.KubeApi.from_kubeconfig(str(kubeconfig))


# ------------------------------------------------------------------ access, errors, timeouts


def test_lists_follow_continue_pages(k8s_api_emulator, monkeypatch):  # noqa: F811
    monkeypatch.setattr(k8s.api, "PAGE_SIZE", 2)  # read where KubeApi.list reads it
    server, api = api_for(k8s_api_emulator, production_cluster(workers=5))
    nodes = k8s.node_facts(api, T)
    assert [n.name for n in nodes] == [f"kubenode{i}" for i in range(1, 6)]
    node_requests = [r for r in server.requests if r.path == "/api/v1/nodes"]
    assert len(node_requests) == 3
    assert [r.query.get("continue") for r in node_requests] == [None, ["2"], ["4"]]
    assert all(r.authorized for r in server.requests)


def test_wrong_token_is_an_error_naming_401(k8s_api_emulator, tmp_path):  # noqa: F811
    server, _ = k8s_api_emulator(production_cluster())
    kc = server.write_kubeconfig(tmp_path / "bad", token="not-the-token")
    api = k8s.KubeApi.from_kubeconfig(str(kc))
    with pytest.raises(k8s.KubeApiError) as err:
        k8s.node_facts(api, T)
    assert err.value.status == 401
    assert "list nodes: HTTP 401" in str(err.value)


def test_stalled_api_times_out_within_the_timeout(k8s_api_emulator):  # noqa: F811
    server, api = api_for(k8s_api_emulator, production_cluster())
    server.stall["/api/v1/nodes"] = 30
    t0 = time.monotonic()
    with pytest.raises(k8s.KubeApiError) as err:
        k8s.node_facts(api, 0.5)
    assert time.monotonic() - t0 < 3
    assert "timeout 0.5s" in str(err.value)


def test_unreachable_api_is_an_error(k8s_api_emulator, tmp_path):  # noqa: F811
    server, kc = k8s_api_emulator(production_cluster())
    url = server.url
    server.stop()  # nothing listens on the port any more
    api = k8s.KubeApi.from_kubeconfig(str(kc))
    with pytest.raises(k8s.KubeApiError) as err:
        api.version(2)
    assert "GET /version" in str(err.value) and url.rsplit(":", 1)[1] in str(err.value)


def test_bad_kubeconfig_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(k8s.KubeApiError, match="cannot load kubeconfig"):
        k8s.KubeApi.from_kubeconfig(str(bad))
    with pytest.raises(k8s.KubeApiError, match="cannot load kubeconfig"):
        k8s.KubeApi.from_kubeconfig(str(tmp_path / "missing"))


# ------------------------------------------------------------------ K8S-WORKERS / K8S-NODES-HEALTHY


def test_three_workers_pass(k8s_api_emulator):  # noqa: F811
    _, api = api_for(k8s_api_emulator, production_cluster(workers=3))
    j = k8s.judge_workers(k8s.node_facts(api, T), minimum=3)
    assert j.ok, j
    assert j.observed.startswith("3 schedulable worker node(s): kubenode1, kubenode2, kubenode3")


def test_two_workers_fail_naming_the_nodes(k8s_api_emulator):  # noqa: F811
    _, api = api_for(k8s_api_emulator, production_cluster(workers=2, sft_nodes=2))
    j = k8s.judge_workers(k8s.node_facts(api, T), minimum=3)
    assert not j.ok
    assert j.observed == "2 schedulable worker node(s): kubenode1, kubenode2"
    assert j.expected == ">= 3 schedulable worker nodes"
    assert "add 1 more" in j.message


def test_tainted_control_plane_and_cordoned_nodes_are_not_workers(k8s_api_emulator):  # noqa: F811
    c = production_cluster(workers=3)
    c.nodes.append(make_node("master1", control_plane=True))
    c.nodes.append(make_node("kubenode9", unschedulable=True))
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_workers(k8s.node_facts(api, T), minimum=4)
    assert not j.ok
    assert "not counted: kubenode9 (cordoned), master1 (control-plane taint)" in j.observed
    assert j.evidence["workers"] == ["kubenode1", "kubenode2", "kubenode3"]


def test_inventory_groups():
    assert k8s.judge_inventory_group("kube-node", ["n1", "n2", "n3"]).ok
    j = k8s.judge_inventory_group("kube-node", ["n2", "n1"])
    assert not j.ok and j.observed == "[kube-node] has 2 host(s): n1, n2"
    j = k8s.judge_inventory_group("etcd", ["e1", "e2", "e3", "e4"], odd=True)
    assert not j.ok and "even number" in j.message
    assert k8s.judge_inventory_group("etcd", ["e1", "e2", "e3", "e4", "e5"], odd=True).ok


def test_nodes_healthy_pass_and_notready_with_pressure_fail(k8s_api_emulator):  # noqa: F811
    _, api = api_for(k8s_api_emulator, production_cluster())
    assert k8s.judge_nodes_healthy(k8s.node_facts(api, T)).ok
    c = production_cluster()
    c.nodes[1] = make_node("kubenode2", ready=False)
    c.nodes[2] = make_node("kubenode3", pressures=("DiskPressure",))
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_nodes_healthy(k8s.node_facts(api, T))
    assert not j.ok
    assert "kubenode2 Ready=Unknown (NodeStatusUnknown: Kubelet stopped posting node status.)" in j.message
    assert "kubenode3 DiskPressure=True" in j.message
    assert "kubenode1" not in j.message


# ------------------------------------------------------------------ K8S-ETCD


def test_etcd_three_members_healthy(k8s_api_emulator):  # noqa: F811
    _, api = api_for(k8s_api_emulator, production_cluster(etcd_members=3))
    facts = k8s.etcd_facts(api, T)
    assert facts.members == ("172.16.0.11:2379", "172.16.0.12:2379", "172.16.0.13:2379")
    assert facts.member_source.startswith("kube-apiserver --etcd-servers")
    j = k8s.judge_etcd(facts)
    assert j.ok and j.measurable, j


def test_etcd_two_members_fail_as_too_few_and_even(k8s_api_emulator):  # noqa: F811
    _, api = api_for(k8s_api_emulator, production_cluster(etcd_members=2))
    j = k8s.judge_etcd(k8s.etcd_facts(api, T))
    assert not j.ok
    assert "2 etcd member(s), need at least 3" in j.message and "even number" in j.message
    assert "172.16.0.11:2379, 172.16.0.12:2379" in j.observed


def test_etcd_unhealthy_readyz_fails_with_the_body(k8s_api_emulator):  # noqa: F811
    c = production_cluster()
    c.etcd_readyz = (500, "[-]etcd failed: reason withheld\nreadyz check failed")
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_etcd(k8s.etcd_facts(api, T))
    assert not j.ok and j.measurable
    assert "/readyz/etcd answered 500: [-]etcd failed" in j.message


def test_etcd_static_pod_counts_members_and_invisible_membership_is_not_measurable(k8s_api_emulator):  # noqa: F811
    _, api = api_for(k8s_api_emulator, demo_cluster())
    facts = k8s.etcd_facts(api, T)
    assert facts.members == ("k8s-wire",) and "component=etcd" in facts.member_source
    assert not k8s.judge_etcd(facts).ok
    c = production_cluster()
    c.pods = [p for p in c.pods if p["metadata"]["namespace"] != "kube-system"]
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_etcd(k8s.etcd_facts(api, T))
    assert not j.measurable and "membership not visible" in j.observed


# ------------------------------------------------------------------ K8S-VERSION


def test_version_matching_pin_passes(k8s_api_emulator):  # noqa: F811
    _, api = api_for(k8s_api_emulator, production_cluster(version="v1.29.10"))
    j = k8s.judge_version(k8s.version_facts(api, T), pin="v1.29.10")
    assert j.ok, j
    assert j.observed == "server v1.29.10; kubelets v1.29.10 x3"


def test_old_version_and_kubelet_skew_are_reported(k8s_api_emulator):  # noqa: F811
    c = production_cluster(version="v1.26.5")
    c.nodes[2]["status"]["nodeInfo"]["kubeletVersion"] = "v1.25.9"
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_version(k8s.version_facts(api, T), pin="v1.29.10")
    assert not j.ok
    assert "server v1.26.5 differs from the pinned v1.29.10" in j.message
    assert "1.26 is below 1.27 (Wire's linter: unhealthy)" in j.message
    assert "kubelet version differs on kubenode3 v1.25.9" in j.message
    j = k8s.judge_version(k8s.VersionFacts("v1.28.2", {"k8s-wire": "v1.28.2"}), pin="v1.28.2")
    assert not j.ok and "older than 1.29" in j.message


# ------------------------------------------------------------------ K8S-PODS-HEALTHY


def test_healthy_pods_pass_including_completed_jobs(k8s_api_emulator):  # noqa: F811
    _, api = api_for(k8s_api_emulator, production_cluster())
    pods = k8s.pod_facts(api, T)
    j = k8s.judge_pods(pods)
    assert j.ok, j.message
    assert "Succeeded 1" in j.observed


def test_crashloop_pending_and_evicted_pods_fail_with_reasons(k8s_api_emulator):  # noqa: F811
    c = production_cluster()
    crashloop(c, "brig-6d9f8b7c5-00abc", restarts=14)
    c.pods.append(make_pod("cannon-0", "default", node=None, phase="Pending",
                           containers=[container_status("cannon", ready=False, waiting="ContainerCreating")],
                           conditions=[{"type": "PodScheduled", "status": "False",
                                        "message": "0/3 nodes are available: 3 Insufficient cpu."}]))
    c.pods.append(make_pod("webapp-old", "default", phase="Failed", reason="Evicted",
                           message="The node was low on resource: memory.",
                           containers=[container_status("webapp", ready=False, terminated=("Error", 137))]))
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_pods(k8s.pod_facts(api, T))
    assert not j.ok
    assert "3 of" in j.observed
    assert ("default/brig-6d9f8b7c5-00abc: Running but not ready - container brig CrashLoopBackOff (14 restarts)"
            in j.message)
    assert "default/cannon-0: Pending - container cannon ContainerCreating; unschedulable: 0/3 nodes" in j.message
    assert "default/webapp-old: Failed - Evicted The node was low on resource: memory." in j.message
    assert "default/brig-6d9f8b7c5-00abc (14)" in j.observed  # restarts above the linter's 10


# ------------------------------------------------------------------ HELM-RELEASES


def test_helm_release_payload_decodes():
    from tests.k8s_emulator.cluster import helm_release_secret

    r = k8s.release_from_secret(helm_release_secret("wire-server", "wire", revision=4, status="failed",
                                                    chart_version="5.10.0", description="timed out waiting"))
    assert (r.name, r.namespace, r.revision, r.status) == ("wire-server", "wire", 4, "failed")
    assert (r.chart, r.chart_version, r.description) == ("wire-server", "5.10.0", "timed out waiting")
    broken = helm_release_secret("x", "default")
    broken["data"]["release"] = "!!!notbase64"
    r = k8s.release_from_secret(broken)
    assert r.decode_error and r.status == "deployed"  # label fallback


def test_helm_releases_deployed_pass(k8s_api_emulator):  # noqa: F811
    _, api = api_for(k8s_api_emulator, production_cluster())
    releases = k8s.helm_releases(api, T)
    assert {r.revision for r in releases} == {2}  # latest revision only; superseded ones skipped
    expected = k8s.expected_releases("production", {"use_cert_manager": True})
    j = k8s.judge_helm_releases(releases, expected)
    assert j.ok, j.message
    assert "default/wire-server" in j.observed


def test_helm_failed_and_missing_releases_fail(k8s_api_emulator):  # noqa: F811
    c = production_cluster()
    fail_release(c, "wire-server", "Upgrade \"wire-server\" failed: context deadline exceeded")
    c.secrets = [s for s in c.secrets if s["metadata"].get("labels", {}).get("name") != "webapp"]
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_helm_releases(k8s.helm_releases(api, T), k8s.expected_releases("production", {}))
    assert not j.ok
    assert ('default/wire-server revision 3: failed (Upgrade "wire-server" failed: context deadline exceeded)'
            in j.message)
    assert "webapp: missing" in j.message


def test_expected_demo_releases_follow_the_inventory():
    exp = k8s.expected_releases("demo", {"charts_to_deploy": ["wire-server", "sftd"], "use_cert_manager": "true"})
    assert [e.label() for e in exp] == ["wire-server in default", "sftd in default",
                                        "cert-manager in cert-manager-ns", "nginx-ingress-services in default"]
    assert len(k8s.expected_releases("demo", {})) == len(k8s.DEMO_RELEASES_DEFAULT)


# ------------------------------------------------------------------ TLS-CERTS-READY


def test_certificates_ready_and_not_ready(k8s_api_emulator):  # noqa: F811
    c = production_cluster()
    _, api = api_for(k8s_api_emulator, c)
    assert k8s.judge_certificates(k8s.certificate_facts(api, T), True).ok
    c.certificates[1]["status"]["conditions"][0].update(
        status="False", reason="DoesNotExist", message="Issuing certificate as Secret does not exist")
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_certificates(k8s.certificate_facts(api, T), True)
    assert not j.ok
    assert j.message == "default/sftd Ready=False (DoesNotExist: Issuing certificate as Secret does not exist)"


def test_certificates_without_cert_manager(k8s_api_emulator):  # noqa: F811
    c = production_cluster()
    c.certificates = None
    _, api = api_for(k8s_api_emulator, c)
    facts = k8s.certificate_facts(api, T)
    assert facts is None
    assert not k8s.judge_certificates(facts, None).applicable
    j = k8s.judge_certificates(facts, True)
    assert not j.ok and "not installed although use_cert_manager is true" in j.message


# ------------------------------------------------------------------ CALL-SFT-PLACEMENT


def test_sft_placement_passes_and_capacity_is_judged(k8s_api_emulator):  # noqa: F811
    _, api = api_for(k8s_api_emulator, production_cluster(sft_replicas=2, sft_nodes=2, node_cpu="8"))
    facts = k8s.sft_facts(api, T)
    j = k8s.judge_sft_placement(facts, None)
    assert j.ok, j.message
    assert "2 sftd pod(s) on 2 node(s): kubenode1, kubenode2" in j.observed
    assert "capacity not evaluated" in j.observed
    assert j.evidence["sft_nodes"]["kubenode1"]["external_ip"] == "203.0.113.11"
    assert k8s.judge_sft_placement(facts, 200).ok  # 6 + 2 = 8 cores
    j = k8s.judge_sft_placement(facts, 250)  # 6 + 3 = 9 cores
    assert not j.ok
    assert "3 node(s) below 9 cores for 250 concurrent users (6 + 1 per 100): kubenode1 (8)" in j.message


def test_sft_replicas_beyond_labelled_nodes_and_private_external_ip_fail(k8s_api_emulator):  # noqa: F811
    c = production_cluster(sft_replicas=3, sft_nodes=2)
    c.node("kubenode2")["metadata"]["annotations"]["wire.com/external-ip"] = "10.0.0.5"
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_sft_placement(k8s.sft_facts(api, T), None)
    assert not j.ok
    assert ("StatefulSet default/sftd wants 3 replicas but only 2 node(s) match (wire.com/role=sftd): "
            "kubenode1, kubenode2") in j.message
    assert "node kubenode1 runs 2 SFT pods (default/sftd-0, default/sftd-2)" in j.message
    assert "node kubenode2 annotation wire.com/external-ip: 10.0.0.5 is not a public address" in j.message


def test_sft_not_deployed_is_not_applicable(k8s_api_emulator):  # noqa: F811
    c = production_cluster(sft_replicas=0)
    c.statefulsets = [w for w in c.statefulsets if w["metadata"]["name"] != "sftd"]
    _, api = api_for(k8s_api_emulator, c)
    assert not k8s.judge_sft_placement(k8s.sft_facts(api, T), 100).applicable


# ------------------------------------------------------------------ K8S-INGRESS-NODEPORT


def test_ingress_nodeport_daemonset_passes(k8s_api_emulator):  # noqa: F811
    _, api = api_for(k8s_api_emulator, production_cluster())
    j = k8s.judge_ingress_nodeport(k8s.ingress_facts(api, T))
    assert j.ok, j.message
    assert "http:80->31772" in j.observed and "https:443->31773" in j.observed


def test_ingress_wrong_nodeport_deployment_and_missing_node_fail(k8s_api_emulator):  # noqa: F811
    c = production_cluster(workers=4)
    c.services[0]["spec"]["ports"][1]["nodePort"] = 30443
    c.daemonsets = []
    c.deployments.append(make_workload("Deployment", "ingress-nginx-controller-controller", "default", replicas=3,
                                       release="ingress-nginx-controller"))
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_ingress_nodeport(k8s.ingress_facts(api, T))
    assert not j.ok
    assert "https nodePort is 30443, expected 31773" in j.message
    assert "does not run as a DaemonSet (found: Deployment default/ingress-nginx-controller-controller)" in j.message


def test_ingress_loadbalancer_is_not_applicable(k8s_api_emulator):  # noqa: F811
    c = production_cluster()
    c.services[0]["spec"]["type"] = "LoadBalancer"
    c.services[0]["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_ingress_nodeport(k8s.ingress_facts(api, T))
    assert not j.applicable and "198.51.100.7" in j.observed


def test_nat_forwards_parse_iptables_save():
    text = """*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -p tcp -m tcp --dport 443 -j REDIRECT --to-ports 31773
-A PREROUTING -d 203.0.113.5/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.11:31772
-A POSTROUTING -s 10.233.0.0/16 -j MASQUERADE
COMMIT
"""
    assert k8s.nat_forwards(text) == [("tcp", 443, 31773), ("tcp", 80, 31772)]


# ------------------------------------------------------------------ K8S-PUBLIC-EXPOSURE


def test_public_exposure_allow_list_passes_and_extra_exposure_is_flagged(k8s_api_emulator):  # noqa: F811
    c = production_cluster()
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_public_exposure(k8s.service_facts(api, T), k8s.pod_facts(api, T))
    assert j.ok, j.message
    assert "service default/ingress-nginx-controller-controller" in j.evidence["allowed"]
    assert "pod default/sftd-0" in j.evidence["allowed"]
    c.services.append(make_service("minio-external", "default", type_="NodePort",
                                   ports=[{"name": "s3", "port": 9000, "nodePort": 30900}]))
    c.pods.append(make_pod("debug-shell", "default", host_network=True, containers=[container_status("shell")]))
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_public_exposure(k8s.service_facts(api, T), k8s.pod_facts(api, T))
    assert not j.ok
    assert j.observed.startswith("2 exposed outside the allow-list")
    assert "service default/minio-external is exposed (NodePort 30900)" in j.message
    assert "pod default/debug-shell is exposed (hostNetwork)" in j.message


# ------------------------------------------------------------------ LOG-RETENTION-72H


def test_log_retention_within_72h_passes_and_older_fails(k8s_api_emulator):  # noqa: F811
    _, api = api_for(k8s_api_emulator, production_cluster(nginz_log_age=timedelta(hours=70)))
    j = k8s.judge_log_retention(k8s.nginz_log_facts(api, T), NOW)
    assert j.ok, j
    assert "first line 70.0 h old" in j.observed
    _, api = api_for(k8s_api_emulator, production_cluster(nginz_log_age=timedelta(hours=100)))
    j = k8s.judge_log_retention(k8s.nginz_log_facts(api, T), NOW)
    assert not j.ok
    assert "default/nginz-5c8d7f6b4-xk2lm keeps log lines 100.0 h old" in j.message


def test_log_retention_young_pods_not_applicable(k8s_api_emulator):  # noqa: F811
    c = production_cluster()
    c.pod("nginz-5c8d7f6b4-xk2lm")["status"]["startTime"] = (NOW - timedelta(hours=5)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_log_retention(k8s.nginz_log_facts(api, T), NOW)
    assert not j.applicable and "younger than 72 h" in j.observed


# ------------------------------------------------------------------ DEMO-ACC-DATASTORES


def test_demo_datastores_ready_and_not_ready(k8s_api_emulator):  # noqa: F811
    c = demo_cluster()
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_datastores(k8s.workload_facts(api, T))
    assert j.ok, j.message
    assert "postgresql: StatefulSet default/postgresql 1/1" in j.observed
    for w in c.statefulsets:
        if w["metadata"]["name"] == "rabbitmq":
            w["status"]["readyReplicas"] = 0
    c.deployments = [d for d in c.deployments if not d["metadata"]["name"].startswith("fake-aws")]
    _, api = api_for(k8s_api_emulator, c)
    j = k8s.judge_datastores(k8s.workload_facts(api, T))
    assert not j.ok
    assert "rabbitmq: StatefulSet default/rabbitmq 0/1 ready" in j.message
    assert "fake-aws: no workloads of this release" in j.message


def test_parse_helpers():
    assert k8s.parse_cpu("7800m") == 7.8 and k8s.parse_cpu("16") == 16
    t = k8s.parse_k8s_time("2026-11-24T14:00:00.123456789Z")
    assert t is not None and t.microsecond == 123456
    assert k8s.parse_version("v1.29.10-gke.1") == (1, 29, 10)
