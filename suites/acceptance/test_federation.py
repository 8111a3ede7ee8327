"""Federation and chart configuration after install (configure-federation.md; helm-prod.md › How to
install wire-server itself, RabbitMQ, SMTP, Fake AWS).

The values are those of the deployed Helm releases, decoded from Helm's release Secrets through the
Kubernetes API (--kubeconfig); without a kubeconfig, the values directory (--values-dir) stands in
for FED-DOMAIN/FED-CA-TRUST/PROD-ACC-SMTP/PROD-ACC-SECRETS, which are checked from files before
install too. The judges live in wirecheck.probes.k8s_config. FED-RABBITMQ also measures an external
[rmq-cluster] on its hosts over SSH (rabbitmqctl; wirecheck.probes.clusters).
"""

from __future__ import annotations

import importlib

from wirecheck import cannot_measure, fail, not_applicable, not_evaluated, record, requirement
from wirecheck.probes import clusters, tls
from wirecheck.probes import k8s_config as kc
from wirecheck.probes.dns import DnsLookup

K = importlib.import_module("suites.acceptance.test_kubernetes")
C = importlib.import_module("suites.preflight.test_configuration")
P = importlib.import_module("suites.preflight.test_production")


def cluster_values(site, spec) -> kc.ValuesSource:
    """The deployed releases' values (needs --kubeconfig)."""
    kube = K._kube(site)
    src = K.measure(kc.release_values, kube, K._timeout(spec))
    if src.problems:
        record(values_problems=list(src.problems))
    return src


def values(site, spec) -> kc.ValuesSource:
    """Cluster values with --kubeconfig; else the values directory; else not_evaluated naming both."""
    if site.kubeconfig:
        return cluster_values(site, spec)
    if C.has_values_files(site):
        record(source_note="no --kubeconfig: judged from the values files, not from the deployed releases")
        return C.values_from_files(site)
    not_evaluated("no kubeconfig given for the cluster checks (or --values-dir for the files)",
                  option="--kubeconfig")
    raise AssertionError("unreachable")


@requirement("FED-DOMAIN")
def test_federation_domain(site, spec):
    C.check_federation_domain(site, values(site, spec))


@requirement("FED-CA-TRUST")
def test_federation_ca_trust(site, spec):
    if not C.federating(site) and not site.kubeconfig and not C.has_values_files(site):
        not_applicable("federation is not enabled (--federation or federation_enabled), and no values to say so")
    C.check_federation_ca_trust(site, values(site, spec))


@requirement("PROD-ACC-SMTP")
def test_smtp(site, spec):
    src = values(site, spec)
    cidrs: list[str] = []
    if site.kubeconfig:
        cidrs = K.measure(kc.node_pod_cidrs, K._kube(site), K._timeout(spec))
    record(not_measured="a TCP connect from a pod to the SMTP server (needs kubectl exec)")
    C.conclude(kc.judge_smtp(src, cidrs), "SMTP configuration")


@requirement("PROD-ACC-SECRETS")
def test_secrets(site, spec):
    src = values(site, spec)
    C.conclude(kc.judge_secrets(src, C.rabbitmq_used(site, src)), "wire-server secrets")


@requirement("PROD-ACC-EPHEMERAL-SCOPE")
def test_ephemeral_scope(site, spec):
    C.conclude(kc.judge_ephemeral_scope(cluster_values(site, spec)), "test charts in production")


@requirement("FED-RABBITMQ")
def test_federation_rabbitmq(site, spec):
    """RabbitMQ in the cluster (a StatefulSet, read through the Kubernetes API) or on the [rmq-cluster]
    hosts (`rabbitmqctl cluster_status` and a guest/guest login test on each, over SSH); the verdict
    names the path(s) used. The brokers' passwords come from the deployed chart values."""
    hosts = site.targets_with_role("rmq-cluster", "rabbitmq")
    min_nodes = int(spec.get("min_nodes", 3))
    paths = []
    if site.kubeconfig:
        src = cluster_values(site, spec)
        if not C.federating(site, src):
            not_applicable("federation is not enabled (--federation, federation_enabled, or the chart values)")
        kube = K._kube(site)
        workloads = K.measure(K.k8s.workload_facts, kube, K._timeout(spec), kinds=("statefulsets",))
        paths.append(("Kubernetes API", kc.judge_rabbitmq(src, workloads, [t.name for t in hosts], min_nodes,
                                                          hosts_measured=bool(hosts))))
    elif not C.federating(site):
        not_applicable("federation is not enabled (--federation or federation_enabled in the inventory)")
    elif not hosts:
        not_evaluated("no kubeconfig given for the cluster checks and no [rmq-cluster] hosts", option="--kubeconfig")
    else:
        record(not_measured="the RabbitMQ passwords in brig/background-worker secrets (need --kubeconfig)")
    if hosts:
        timeout = K._timeout(spec)
        measured = P.fan_out(hosts, lambda t: clusters.measure_rabbitmq_member(t, timeout))
        members = [clusters.member_or_unreached(t, measured[t.name]) for t in hosts]
        method = (f"on each [rmq-cluster] host over SSH: sudo {clusters.RMQ_STATUS}; sudo {clusters.RMQ_GUEST}")
        paths.append(("rabbitmqctl on the [rmq-cluster] hosts",
                      clusters.judge_rabbitmq_cluster(members, min_nodes, method)))
    C.conclude(clusters.combine(paths), "RabbitMQ for federation")


@requirement("FED-REACHABLE")
def test_federator_reachable(site, spec):
    """EXT: a TLS handshake with federator.<domain> on the ingress port, from the machine running pytest.

    A handshake the server ends for want of a client certificate still proves the endpoint is reachable.
    Outbound 443 from a pod to partners needs `kubectl exec` and is not measured (recorded as such)."""
    if not C.federating(site):
        not_applicable("federation is not enabled (--federation or federation_enabled in the inventory)")
    name = C.infra_domain(site)
    if not name:
        not_evaluated("the Wire domain is not known", option="--domain")
    port = int(site.option("tls_port") or 443)
    timeout = float(site.option("tls_timeout") or 5.0)
    lookup = DnsLookup(site.nameservers or None, timeout=float(site.option("dns_timeout") or 2.0),
                       tries=int(site.option("dns_tries") or 2))
    addresses = _resolve(lookup, str(name))
    record(federator=name, addresses=addresses, port=port,
           not_measured="outbound TCP 443 from a pod to partner federators (needs kubectl exec)")
    results: dict[str, str] = {}
    reached = []
    for addr in addresses:
        try:
            hs = tls.handshake(addr, port, str(name), timeout=timeout)
            results[addr] = f"TLS {hs.protocol} {hs.cipher}"
            reached.append(addr)
        except tls.TlsProbeError as exc:
            text = str(exc)
            if "TCP connect" in text or "within" in text:
                results[addr] = text
            else:   # the TLS server answered and then ended the handshake (client certificate wanted)
                results[addr] = f"TLS server answered, handshake ended: {text}"
                reached.append(addr)
    record(results=results)
    missing = [a for a in addresses if a not in reached]
    C.conclude(K.k8s.Judgement(
        ok=not missing, observed="; ".join(f"{a}:{port} {r}" for a, r in results.items()),
        expected=f"{name}:{port} accepts TLS on every address", method=f"DNS A {name}; TLS handshake with SNI {name}",
        message="; ".join(f"{a}:{port}: {results[a]}" for a in missing)), "federator endpoint")


def _resolve(lookup: DnsLookup, name: str) -> list[str]:
    ans = lookup(name, "A")
    record(dns=f"{name} A: {ans.status} {', '.join(ans.addresses)} via {ans.resolver or lookup.resolvers_text}")
    if ans.status in ("nxdomain", "nodata") or (ans.ok and not ans.addresses):
        fail(f"{name} has no A record, so partners cannot reach the federator", observed=ans.status,
             expected="an A record", method=f"DNS A {name}")
    if not ans.ok:
        cannot_measure(f"DNS A {name}: {ans.error or ans.status} (see DNS-FED-A)")
    return ans.addresses
