"""Kubernetes acceptance: the cluster as the API shows it (planning.md, helm-prod.md, docs_ubuntu_22.04.md).

Everything is read through the Kubernetes API with the kubeconfig given by --kubeconfig (read
only: list/get and pod logs). Without a kubeconfig these checks are not_evaluated. The measuring
and judging code lives in wirecheck.probes.k8s; a check picks the thresholds from the catalog
and turns the probe's judgement into the verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from suites.preflight.test_kubernetes import conclude
from wirecheck import cannot_measure, not_evaluated, record, requirement
from wirecheck.probes import clusters, k8s

T = TypeVar("T")


def _kube(site) -> k8s.KubeApi:
    """A Kubernetes API reader from --kubeconfig, or not_evaluated naming the option.

    Called in the check's body (not a fixture) so that profile/phase applicability, which the
    engine decides when the check runs, wins over a missing kubeconfig.
    """
    if not site.kubeconfig:
        not_evaluated("no kubeconfig given for the cluster checks", option="--kubeconfig")
    problem = None
    try:
        return _api(site.kubeconfig, site.option("kube_context"))
    except k8s.KubeApiError as exc:
        problem = str(exc)
    cannot_measure(problem)
    raise AssertionError("unreachable: cannot_measure raises")


_APIS: dict[tuple[str, str | None], k8s.KubeApi] = {}


def _api(kubeconfig: str, context: str | None) -> k8s.KubeApi:
    key = (kubeconfig, context)
    if key not in _APIS:
        _APIS[key] = k8s.KubeApi.from_kubeconfig(kubeconfig, context)
    return _APIS[key]


def _timeout(spec) -> float:
    return float(spec.get("timeout_s", 15))


def measure(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a probe; an API that cannot be asked is `error` (could not measure), never pass or fail.

    The verdict is raised after the `except` block on purpose: an exception chained to the
    client's errors makes pytest format tracebacks through the client's huge generated
    modules, seconds per check, for a report that does not use them.
    """
    try:
        return fn(*args, **kwargs)
    except k8s.KubeApiError as exc:
        problem = f"Kubernetes API: {exc}"
    cannot_measure(problem)
    raise AssertionError("unreachable: cannot_measure raises")


# ---------------------------------------------------------------------------- cluster shape


@requirement("K8S-WORKERS")
def test_worker_nodes(site, spec):
    kube = _kube(site)
    nodes = measure(k8s.node_facts, kube, _timeout(spec))
    conclude(k8s.judge_workers(nodes, int(spec.get("min_workers", 3))), "schedulable worker nodes")


@requirement("K8S-ETCD")
def test_etcd_members_healthy(site, spec):
    """kubespray runs etcd as a host service on the [etcd] hosts: etcdctl there, with that host's admin
    certificate, sees every member. With --kubeconfig the API server's view (/readyz/etcd, etcd pods or
    --etcd-servers) is judged too; the verdict names the path(s) used."""
    hosts = site.targets_with_role("etcd")
    if not hosts and not site.kubeconfig:
        not_evaluated("no [etcd] hosts to run etcdctl on and no kubeconfig for the cluster checks",
                      option="--kubeconfig (or --ansible-inventory with an [etcd] group)")
    minimum = int(spec.get("min_members", 3))
    paths = []
    if hosts:
        paths.append(("etcdctl on the [etcd] hosts", _etcd_over_ssh(hosts, spec, minimum)))
    if site.kubeconfig:
        try:
            facts = k8s.etcd_facts(_kube(site), _timeout(spec))
            j = k8s.judge_etcd(facts, minimum)
        except k8s.KubeApiError as exc:
            j = k8s.Judgement(ok=False, observed="not read", expected="", method="GET /readyz/etcd",
                              message=f"Kubernetes API: {exc}", measurable=False)
        paths.append(("Kubernetes API", j))
    conclude(clusters.combine(paths), "etcd health and membership")


def _etcd_over_ssh(hosts, spec, minimum: int) -> k8s.Judgement:
    from suites.preflight.test_production import fan_out

    access = clusters.EtcdAccess(
        cert_dir=str(spec.get("cert_dir", clusters.ETCD_CERT_DIR)), cert=str(spec.get("cert", "admin-{host}.pem")),
        key=str(spec.get("key", "admin-{host}-key.pem")), cacert=str(spec.get("cacert", "ca.pem")),
        client_port=int(spec.get("client_port", 2379)), command_timeout_s=float(spec.get("etcdctl_timeout_s", 3)))
    measured = fan_out(hosts, lambda t: clusters.measure_etcd_member(t, access, _timeout(spec)))
    members = [clusters.member_or_unreached(t, measured[t.name]) for t in hosts]
    method = (f"sudo etcdctl on each [etcd] host with {access.cert_dir}/{access.cert} (kubespray's layout), endpoint "
              f"https://<ip>:{access.client_port}: member list; endpoint health --cluster; endpoint status --cluster")
    return clusters.judge_etcd_cluster(members, minimum, method)


def _pin(site, spec) -> str | None:
    """The Kubernetes version the installer pins: inventory first, then the catalog's figure."""
    for key in ("kube_version", "kubernetes_version"):
        if site.vars.get(key):
            return str(site.vars[key])
    return spec.get(f"{site.profile}_version") or k8s.DEFAULT_VERSION_PINS.get(site.profile)


@requirement("K8S-VERSION")
def test_kubernetes_version(site, spec):
    kube = _kube(site)
    facts = measure(k8s.version_facts, kube, _timeout(spec))
    conclude(k8s.judge_version(facts, _pin(site, spec), int(spec.get("min_minor", 27)),
                               int(spec.get("recommended_minor", 29))), "Kubernetes version")


@requirement("K8S-NODES-HEALTHY")
def test_nodes_ready_without_pressure(site, spec):
    kube = _kube(site)
    nodes = measure(k8s.node_facts, kube, _timeout(spec))
    conclude(k8s.judge_nodes_healthy(nodes), "node conditions")


# ---------------------------------------------------------------------------- installed state


@requirement("HELM-RELEASES")
def test_helm_releases_deployed(site, spec):
    kube = _kube(site)
    expected = k8s.expected_releases(
        site.profile, site.vars,
        demo_default=spec.get("demo_releases") or k8s.DEMO_RELEASES_DEFAULT,
        production_default=spec.get("production_releases") or k8s.PRODUCTION_RELEASES_DEFAULT)
    extra = site.option("helm_release") or []
    expected += [k8s.ExpectedRelease.parse(s) for s in extra]
    releases = measure(k8s.helm_releases, kube, _timeout(spec))
    conclude(k8s.judge_helm_releases(releases, expected), "Helm releases")


@requirement("K8S-PODS-HEALTHY")
def test_pods_running_or_completed(site, spec):
    kube = _kube(site)
    pods = measure(k8s.pod_facts, kube, _timeout(spec))
    conclude(k8s.judge_pods(pods, int(spec.get("max_restarts", 10))), "pods")


@requirement("TLS-CERTS-READY")
def test_cert_manager_certificates_ready(site, spec):
    kube = _kube(site)
    certs = measure(k8s.certificate_facts, kube, _timeout(spec))
    conclude(k8s.judge_certificates(certs, k8s.truthy(site.vars.get("use_cert_manager"))),
             "cert-manager Certificates")


@requirement("DEMO-ACC-DATASTORES")
def test_demo_datastores_ready(site, spec):
    kube = _kube(site)
    releases = spec.get("releases") or k8s.DEMO_DATASTORE_RELEASES
    workloads = measure(k8s.workload_facts, kube, _timeout(spec))
    conclude(k8s.judge_datastores(workloads, releases), "datastore workloads")


# ---------------------------------------------------------------------------- calling, ingress, exposure


def _concurrent_users(site) -> int | None:
    value = site.option("sft_concurrent_users")
    if value in (None, ""):
        value = site.vars.get("sft_concurrent_users")
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        not_evaluated(f"concurrent SFT users {value!r} is not a number", option="--sft-concurrent-users")
        raise


@requirement("CALL-SFT-PLACEMENT")
def test_sft_placement(site, spec):
    kube = _kube(site)
    users = _concurrent_users(site)
    facts = measure(k8s.sft_facts, kube, _timeout(spec))
    conclude(k8s.judge_sft_placement(facts, users, base_cores=float(spec.get("base_cores", 6)),
                                     users_per_core=int(spec.get("users_per_core", 100))), "SFT placement")


@requirement("K8S-INGRESS-NODEPORT")
def test_ingress_nodeports(site, spec):
    kube = _kube(site)
    facts = measure(k8s.ingress_facts, kube, _timeout(spec))
    https_port, http_port = int(spec.get("https_node_port", 31773)), int(spec.get("http_node_port", 31772))
    j = k8s.judge_ingress_nodeport(facts, https_port, http_port)
    if j.applicable:
        _record_node_forwarding(site, https_port, http_port)
    conclude(j, "ingress controller NodePorts")


def _record_node_forwarding(site, https_port: int, http_port: int) -> None:
    """Evidence only: 443/80 may equally be forwarded by a load balancer or firewall we cannot see."""
    nodes = site.targets_with_role("kube-node", "kube_node")
    if not nodes:
        return
    seen: dict[str, str] = {}
    for t in nodes:
        try:
            res = t.run("iptables-save -t nat", timeout=15, sudo=True)
        except Exception as exc:  # noqa: BLE001 - a node we cannot read is reported, not fatal here
            seen[t.name] = f"not read: {exc}"
            continue
        if res.rc != 0:
            seen[t.name] = f"iptables-save failed: {res.stderr.strip()[:120]}"
            continue
        fw = {(d, to) for _, d, to in k8s.nat_forwards(res.stdout)}
        seen[t.name] = ", ".join(f"{d}->{to} {'present' if (d, to) in fw else 'absent'}"
                                 for d, to in ((443, https_port), (80, http_port)))
    record(node_forwarding=seen)


@requirement("K8S-PUBLIC-EXPOSURE")
def test_nothing_public_but_ingress_and_calling(site, spec):
    kube = _kube(site)
    services = measure(k8s.service_facts, kube, _timeout(spec))
    pods = measure(k8s.pod_facts, kube, _timeout(spec))
    conclude(k8s.judge_public_exposure(
        services, pods, allowed_names=spec.get("allowed_names") or k8s.PUBLIC_ALLOWED_NAMES,
        allowed_namespaces=spec.get("allowed_namespaces") or k8s.PUBLIC_ALLOWED_NAMESPACES), "public exposure")


@requirement("LOG-RETENTION-72H")
def test_nginz_log_retention(site, spec):
    kube = _kube(site)
    logs = measure(k8s.nginz_log_facts, kube, _timeout(spec))
    conclude(k8s.judge_log_retention(logs, datetime.now(UTC), timedelta(hours=float(spec.get("max_age_h", 72)))),
             "nginz log retention")
