"""Calling and cluster configuration after install (sft.md, coturn.md, helm-prod.md, wiab demo values,
troubleshooting.md › Testing internal domain resolution, infrastructure.md › Security).

Chart values come from the deployed Helm releases (decoded release Secrets, --kubeconfig); nodes,
pods and Services from the Kubernetes API. K8S-API-NOT-PUBLIC is an external probe: a TCP connect
from the machine running pytest to the API server address(es).
"""

from __future__ import annotations

import importlib

from wirecheck import not_applicable, not_evaluated, record, requirement
from wirecheck.probes import k8s_config as kc
from wirecheck.turn import turn_addresses

K = importlib.import_module("suites.acceptance.test_kubernetes")
C = importlib.import_module("suites.preflight.test_configuration")
F = importlib.import_module("suites.acceptance.test_federation")


def _domain(site) -> str:
    if not site.domain:
        not_evaluated("the Wire domain is not known", option="--domain (or target_domain in the inventory)")
    return str(site.domain)


@requirement("CALL-SFT-CONFIG")
def test_sft_config(site, spec):
    src = F.cluster_values(site, spec)
    if site.profile != "demo" and not kc.sft_used(src):
        not_applicable("SFT is not deployed (no sftd release, wire-server tags.sftd not true)")
    C.conclude(kc.judge_sft_config(src, _domain(site)), "SFT configuration")


def _turn_ips(site) -> list[str]:
    """The TURN addresses clients must be given (wirecheck.turn: --turn-ip, turn_servers, restund_public_ip,
    ansible_host; the demo's wire_ip), recorded with the reason for each."""
    chosen = turn_addresses(site)
    if chosen:
        record(turn_addresses=[entry.evidence() for entry in chosen])
    return [entry.address for entry in chosen]


@requirement("CALL-TURN-URIS")
def test_turn_uris(site, spec):
    src = F.cluster_values(site, spec)
    ips = _turn_ips(site)
    if not ips:
        record(not_compared="no TURN server IPs known (--turn-ip, wire_ip, or [restund]/[coturn] hosts): "
                            "only the URI syntax and the secret are judged")
    C.conclude(kc.judge_turn_uris(src, ips, int(spec.get("min_hosts", 2))), "TURN URIs")


@requirement("CALL-COTURN-PLACEMENT")
def test_coturn_placement(site, spec):
    src = F.cluster_values(site, spec)
    kube = K._kube(site)
    nodes = K.measure(K.k8s.node_facts, kube, K._timeout(spec))
    pods = K.measure(K.k8s.pod_facts, kube, K._timeout(spec))
    C.conclude(kc.judge_coturn_placement(src, nodes, pods), "coturn placement")


@requirement("DEMO-ACC-CALLING-VALUES")
def test_demo_calling_values(site, spec):
    if not site.wire_ip:
        not_evaluated("wire_ip is not known", option="--wire-ip (or wire_ip in the inventory)")
    src = F.cluster_values(site, spec)
    kube = K._kube(site)
    node_name = str(spec.get("node_name", "k8s-wire"))
    nodes = K.measure(K.k8s.node_facts, kube, K._timeout(spec))
    node = next((n for n in nodes if n.name == node_name), None)
    C.conclude(kc.judge_demo_calling_values(src, node, site.wire_ip, _domain(site), site.use_cert_manager,
                                            node_name), "demo calling values")


@requirement("DNS-K8S-INTERNAL")
def test_internal_dns(site, spec):
    kube = K._kube(site)
    names = tuple(spec.get("services") or kc.EXTERNAL_SERVICES)
    facts = K.measure(kc.internal_dns_facts, kube, K._timeout(spec), names)
    C.conclude(kc.judge_internal_dns(facts, names), "in-cluster DNS for the *-external services")


@requirement("K8S-API-NOT-PUBLIC")
def test_api_not_public(site, spec):
    """EXT: connects from the machine running pytest; run it from outside the site's networks."""
    server = None
    if site.kubeconfig:
        try:
            server = K._api(site.kubeconfig, site.option("kube_context")).api_client.configuration.host
        except K.k8s.KubeApiError as exc:
            record(kubeconfig_problem=str(exc))
    port = int(spec.get("api_port", 6443))
    nodes = [t.address for t in site.targets_with_role("kube-master", "kube_control_plane", "kube-node",
                                                         "kube_node")]
    endpoints = kc.api_endpoints(server, nodes, port)
    if not endpoints:
        not_evaluated("no API server address is known", option="--kubeconfig (or an inventory with [kube-master])")
    timeout = float(spec.get("timeout_s", 3))
    reaches = [kc.tcp_reach(h, p, timeout) for h, p in endpoints]
    record(vantage="the machine running wirecheck: the result means 'not public' only when it is outside the "
                   "site's admin networks")
    C.conclude(kc.judge_api_not_public(reaches, "the machine running wirecheck"), "API server reachability")
