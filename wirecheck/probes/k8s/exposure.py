"""Ingress and exposure: the ingress controller's NodePorts, NAT forwards read from iptables-save, and which
Services and hostNetwork/hostPort pods are reachable from outside.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .api import DEFAULT_TIMEOUT, JSON, KubeApi
from .judgement import Judgement, _meta, _names
from .nodes import NodeFacts, node_facts
from .pods import PodFacts, pod_facts
from .workloads import WorkloadFacts, workload_facts


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    node_port: int | None
    protocol: str


@dataclass(frozen=True)
class ServiceFacts:
    namespace: str
    name: str
    type: str
    ports: tuple[ServicePort, ...]
    lb_ingress: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def service_from_json(obj: JSON) -> ServiceFacts:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    ports = tuple(ServicePort(p.get("name", ""), int(p.get("port") or 0),
                              int(p["nodePort"]) if p.get("nodePort") else None, p.get("protocol", "TCP"))
                  for p in spec.get("ports") or [])
    lb = tuple(i.get("ip") or i.get("hostname") or "" for i in (status.get("loadBalancer") or {}).get("ingress") or [])
    return ServiceFacts(meta.get("namespace", ""), meta.get("name", "?"), spec.get("type", "ClusterIP"), ports, lb,
                        dict(meta.get("labels") or {}))


def service_facts(api: KubeApi, timeout: float = DEFAULT_TIMEOUT) -> list[ServiceFacts]:
    return sorted((service_from_json(o) for o in api.list("services", timeout=timeout)), key=lambda s: s.ref)


def _is_ingress_controller(labels: dict[str, str], name: str) -> bool:
    if labels.get("app.kubernetes.io/name") in ("ingress-nginx", "nginx-ingress") and \
            labels.get("app.kubernetes.io/component", "controller") == "controller":
        return True
    return name.startswith(("ingress-nginx-controller", "nginx-ingress-controller"))


@dataclass(frozen=True)
class IngressFacts:
    services: tuple[ServiceFacts, ...]
    workloads: tuple[WorkloadFacts, ...]
    pods: tuple[PodFacts, ...]
    nodes: tuple[NodeFacts, ...]


def ingress_facts(api: KubeApi, timeout: float = DEFAULT_TIMEOUT) -> IngressFacts:
    services = [s for s in service_facts(api, timeout)
                if _is_ingress_controller(s.labels, s.name) and s.type in ("NodePort", "LoadBalancer")]
    workloads = [w for w in workload_facts(api, timeout, kinds=("daemonsets", "deployments"))
                 if _is_ingress_controller(w.labels, w.name)]
    pods = [p for p in pod_facts(api, timeout) if _is_ingress_controller(p.labels, p.owner_name)]
    return IngressFacts(tuple(services), tuple(workloads), tuple(pods), tuple(node_facts(api, timeout)))


def judge_ingress_nodeport(facts: IngressFacts, https_node_port: int = 31773, http_node_port: int = 31772) -> Judgement:
    method = ("GET /api/v1/services, /apis/apps/v1/{daemonsets,deployments}, /api/v1/pods "
              "(ingress-nginx controller: type, nodePort, pods per node)")
    expected = (f"controller Service type NodePort with https nodePort {https_node_port} and http nodePort "
                f"{http_node_port}; controller DaemonSet with a ready pod on every worker")
    with_lb = [s for s in facts.services if s.type == "LoadBalancer" and s.lb_ingress]
    if with_lb:
        s = with_lb[0]
        return Judgement(True, f"{s.ref} is a LoadBalancer with address {', '.join(s.lb_ingress)}", expected, method,
                         message="the cluster has LoadBalancer support; NodePort forwarding does not apply",
                         applicable=False, evidence={"service": s.ref, "lb": list(s.lb_ingress)})
    problems: list[str] = []
    if not facts.services:
        problems.append("no ingress-nginx controller Service of type NodePort or LoadBalancer found")
    for s in facts.services:
        for want, port, name in ((https_node_port, 443, "https"), (http_node_port, 80, "http")):
            sp = next((p for p in s.ports if p.port == port or p.name == name), None)
            if sp is None:
                problems.append(f"{s.ref} has no {name} port")
            elif sp.node_port != want:
                problems.append(f"{s.ref} {name} nodePort is {sp.node_port}, expected {want}")
    daemonsets = [w for w in facts.workloads if w.kind == "DaemonSet"]
    if not daemonsets:
        kinds = _names(w.ref for w in facts.workloads)
        problems.append(f"the controller does not run as a DaemonSet (found: {kinds})")
    for d in daemonsets:
        if d.ready < d.desired:
            problems.append(f"{d.ref} has {d.ready}/{d.desired} pods ready")
    workers = sorted(n.name for n in facts.nodes if n.is_worker)
    covered = {p.node for p in facts.pods if p.ready}
    missing = [w for w in workers if w not in covered]
    if missing and daemonsets:
        problems.append(f"no ready controller pod on worker(s) {_names(missing)}")
    svc_desc = "; ".join(f"{s.ref} {s.type} " + ",".join(f"{p.name or p.port}:{p.port}->{p.node_port}" for p in s.ports)
                         for s in facts.services) or "no controller Service"
    observed = f"{svc_desc}; controller {_names(w.ref for w in facts.workloads)}; ready on {len(covered)} of " \
               f"{len(workers)} worker(s)"
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems),
                     evidence={"services": [s.ref for s in facts.services], "workers_without_controller": missing})


NAT_RULE = re.compile(r"^-A\s+(?P<chain>\S+)\s+(?P<rest>.*)$")


def nat_forwards(iptables_save: str) -> list[tuple[str, int, int]]:
    """(protocol, dport, to_port) for REDIRECT/DNAT rules in `iptables-save -t nat` output."""
    out = []
    for line in iptables_save.splitlines():
        m = NAT_RULE.match(line.strip())
        if not m:
            continue
        rest = m["rest"]
        proto = re.search(r"-p\s+(\w+)", rest)
        dport = re.search(r"--dport\s+(\d+)", rest)
        to = re.search(r"-j\s+REDIRECT\s+--to-ports\s+(\d+)", rest) or \
            re.search(r"-j\s+DNAT\s+--to-destination\s+\S*?:(\d+)\b", rest)
        if proto and dport and to:
            out.append((proto.group(1), int(dport.group(1)), int(to.group(1))))
    return out


@dataclass(frozen=True)
class ExposureItem:
    kind: str  # "service" | "pod"
    ref: str
    how: str
    identities: tuple[str, ...]
    namespace: str


def exposure_items(services: Sequence[ServiceFacts], pods: Sequence[PodFacts]) -> list[ExposureItem]:
    items = []
    for s in services:
        if s.type in ("NodePort", "LoadBalancer"):
            ports = ",".join(str(p.node_port or p.port) for p in s.ports)
            idents = (s.name, *(s.labels.get(k, "") for k in ("app", "app.kubernetes.io/name",
                                                                "app.kubernetes.io/instance", "release")))
            items.append(ExposureItem("service", s.ref, f"{s.type} {ports}" + (
                f" LB {','.join(s.lb_ingress)}" if s.lb_ingress else ""), tuple(i for i in idents if i), s.namespace))
    for p in pods:
        if p.terminating or p.phase in ("Succeeded", "Failed"):
            continue
        if p.host_network or p.host_ports:
            how = "hostNetwork" if p.host_network else "hostPort " + ",".join(map(str, p.host_ports))
            idents = (p.name, p.owner_name, *(p.labels.get(k, "") for k in (
                "app", "app.kubernetes.io/name", "app.kubernetes.io/instance", "release", "k8s-app")))
            items.append(ExposureItem("pod", p.ref, how, tuple(i for i in idents if i), p.namespace))
    return items


def _allowed(item: ExposureItem, allowed_names: Sequence[str], allowed_namespaces: Sequence[str]) -> bool:
    if item.namespace in allowed_namespaces:
        return True
    return any(i == a or i.startswith(a + "-") for i in item.identities for a in allowed_names)


PUBLIC_ALLOWED_NAMES = ("ingress-nginx-controller", "nginx-ingress-controller", "ingress-nginx", "sftd", "coturn")
PUBLIC_ALLOWED_NAMESPACES = ("kube-system",)


def judge_public_exposure(services: Sequence[ServiceFacts], pods: Sequence[PodFacts],
                          allowed_names: Sequence[str] = PUBLIC_ALLOWED_NAMES,
                          allowed_namespaces: Sequence[str] = PUBLIC_ALLOWED_NAMESPACES) -> Judgement:
    items = exposure_items(services, pods)
    flagged = [i for i in items if not _allowed(i, allowed_names, allowed_namespaces)]
    allowed = [i for i in items if i not in flagged]
    observed = (f"{len(flagged)} exposed outside the allow-list: "
                + _names(f"{i.kind} {i.ref} ({i.how})" for i in flagged)) if flagged else \
        f"only allow-listed workloads exposed ({len(allowed)}: {_names(sorted({i.ref for i in allowed}), 8)})"
    return Judgement(
        ok=not flagged, observed=observed,
        expected=f"no NodePort/LoadBalancer Service, hostNetwork or hostPort outside {', '.join(allowed_names)} "
                 f"(namespaces {', '.join(allowed_namespaces)} exempt)",
        method="GET /api/v1/services (type), GET /api/v1/pods (hostNetwork, hostPort)",
        message="; ".join(f"{i.kind} {i.ref} is exposed ({i.how})" for i in flagged),
        evidence={"flagged": [f"{i.kind} {i.ref} ({i.how})" for i in flagged],
                  "allowed": sorted({f"{i.kind} {i.ref}" for i in allowed})},
    )
