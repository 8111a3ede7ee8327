"""Cluster-internal DNS (DNS-K8S-INTERNAL): CoreDNS pods and the *-external Services with their endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..k8s import (
    DEFAULT_TIMEOUT,
    Judgement,
    KubeApi,
    PodFacts,
    ServiceFacts,
)
from ..k8s.judgement import _meta, _names

# ====================================================================== DNS-K8S-INTERNAL

EXTERNAL_SERVICES = ("cassandra-external", "elasticsearch-external", "minio-external")


@dataclass(frozen=True)
class InternalDnsFacts:
    dns_pods: tuple[PodFacts, ...]
    services: tuple[ServiceFacts, ...]
    headless: dict[str, bool]           # service ref -> clusterIP None
    endpoints: dict[str, int]           # service ref -> ready endpoint addresses (-1: not readable)


def internal_dns_facts(api: KubeApi, timeout: float = DEFAULT_TIMEOUT,
                       names: Sequence[str] = EXTERNAL_SERVICES) -> InternalDnsFacts:
    from ..k8s import pod_facts, service_from_json

    pods = pod_facts(api, timeout, namespace="kube-system", label_selector="k8s-app=kube-dns")
    raw = [o for o in api.list("services", timeout=timeout) if _meta(o).get("name") in names]
    services = tuple(service_from_json(o) for o in raw)
    headless = {f"{_meta(o).get('namespace')}/{_meta(o).get('name')}":
                (o.get("spec") or {}).get("clusterIP") == "None" for o in raw}
    endpoints: dict[str, int] = {}
    for ref, is_headless in headless.items():
        if is_headless:
            endpoints[ref] = _endpoint_count(api, *ref.split("/", 1), timeout=timeout)
    return InternalDnsFacts(tuple(pods), services, headless, endpoints)


def _endpoint_count(api: KubeApi, namespace: str, name: str, timeout: float) -> int:
    from ..k8s.api import KubeApiError, _loads

    core = api._api("core")
    try:
        data = api._call(f"get endpoints {namespace}/{name}",
                         lambda **k: core.read_namespaced_endpoints(name, namespace, **k), timeout)
    except KubeApiError as exc:
        if exc.status == 404:
            return 0
        return -1
    doc = _loads(data, "endpoints")
    return sum(len(s.get("addresses") or []) for s in doc.get("subsets") or [])


def judge_internal_dns(facts: InternalDnsFacts, names: Sequence[str] = EXTERNAL_SERVICES) -> Judgement:
    method = ("GET /api/v1/namespaces/kube-system/pods?labelSelector=k8s-app=kube-dns (Ready), GET /api/v1/services "
              "(the *-external names; headless ones: their Endpoints). CoreDNS answers for every Service, so a "
              "ready CoreDNS plus the Service (and, when headless, endpoint addresses) means the name resolves; "
              "an nslookup from inside a pod is not run (read-only access)")
    expected = f"CoreDNS pods Ready; Services {', '.join(names)} exist (headless: with endpoint addresses)"
    problems = []
    ready = [p for p in facts.dns_pods if p.ready]
    if not facts.dns_pods:
        problems.append("no CoreDNS pods (k8s-app=kube-dns) in kube-system")
    elif not ready:
        problems.append("no CoreDNS pod is Ready: " + _names(p.ref for p in facts.dns_pods))
    present = {s.name: s for s in facts.services}
    seen = []
    for n in names:
        s = present.get(n)
        if s is None:
            problems.append(f"Service {n} does not exist (install the {n} chart)")
            continue
        if facts.headless.get(s.ref):
            count = facts.endpoints.get(s.ref, 0)
            if count < 0:
                problems.append(f"the Endpoints of headless {s.ref} could not be read")
            elif count == 0:
                problems.append(f"headless {s.ref} has no endpoint addresses, so its name does not resolve")
            seen.append(f"{s.ref} headless, {count} address(es)")
        else:
            seen.append(f"{s.ref} {s.type}")
    observed = f"CoreDNS {len(ready)}/{len(facts.dns_pods)} ready; " + ("; ".join(seen) or "no *-external services")
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems))
