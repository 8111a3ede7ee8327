"""Nodes (workers, control-plane taints, readiness and pressure) and the API server's version."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from .api import DEFAULT_TIMEOUT, JSON, KubeApi
from .judgement import Judgement, _meta, _names, parse_cpu

CONTROL_PLANE_TAINTS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure")


@dataclass(frozen=True)
class NodeFacts:
    name: str
    roles: tuple[str, ...]
    ready: str  # "True" | "False" | "Unknown" | "missing"
    ready_reason: str
    ready_message: str
    pressures: tuple[str, ...]
    unschedulable: bool
    taints: tuple[str, ...]
    kubelet_version: str
    cpu_capacity: float
    internal_ip: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def control_plane_tainted(self) -> bool:
        return any(t.split("=")[0].split(":")[0] in CONTROL_PLANE_TAINTS and
                   (t.endswith(":NoSchedule") or t.endswith(":NoExecute")) for t in self.taints)

    @property
    def is_worker(self) -> bool:
        """Schedulable for workloads: not cordoned and not a tainted control-plane node."""
        return not self.unschedulable and not self.control_plane_tainted

    def describe(self) -> str:
        role = ",".join(self.roles) or "<none>"
        return f"{self.name} (roles {role}, Ready={self.ready})"


def node_from_json(obj: JSON) -> NodeFacts:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    labels = dict(meta.get("labels") or {})
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    if labels.get("kubernetes.io/role"):
        roles.append(labels["kubernetes.io/role"])
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conds.get("Ready") or {}
    taints = tuple(f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
                   for t in spec.get("taints") or [])
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    return NodeFacts(
        name=meta.get("name", "?"),
        roles=tuple(sorted(set(roles))),
        ready=ready.get("status", "missing"),
        ready_reason=ready.get("reason", ""),
        ready_message=ready.get("message", ""),
        pressures=tuple(t for t in PRESSURE_CONDITIONS if (conds.get(t) or {}).get("status") == "True"),
        unschedulable=bool(spec.get("unschedulable")),
        taints=taints,
        kubelet_version=(status.get("nodeInfo") or {}).get("kubeletVersion", ""),
        cpu_capacity=parse_cpu((status.get("capacity") or {}).get("cpu")),
        internal_ip=addresses.get("InternalIP") or "",
        labels=labels,
        annotations=dict(meta.get("annotations") or {}),
    )


def node_facts(api: KubeApi, timeout: float = DEFAULT_TIMEOUT) -> list[NodeFacts]:
    return sorted((node_from_json(o) for o in api.list("nodes", timeout=timeout)), key=lambda n: n.name)


NODES_METHOD = "GET /api/v1/nodes"


def judge_workers(nodes: Sequence[NodeFacts], minimum: int = 3) -> Judgement:
    workers = [n for n in nodes if n.is_worker]
    others = [f"{n.name} ({'cordoned' if n.unschedulable else 'control-plane taint'})"
              for n in nodes if not n.is_worker]
    observed = f"{len(workers)} schedulable worker node(s): {_names(n.name for n in workers)}"
    if others:
        observed += f"; not counted: {_names(others)}"
    ok = len(workers) >= minimum
    return Judgement(
        ok=ok, observed=observed, expected=f">= {minimum} schedulable worker nodes",
        method=f"{NODES_METHOD} (worker = not cordoned, no control-plane NoSchedule/NoExecute taint)",
        message="" if ok else f"only {len(workers)} worker node(s) ({_names(n.name for n in workers)}); "
                              f"add {minimum - len(workers)} more",
        evidence={"workers": [n.name for n in workers], "nodes": [n.describe() for n in nodes]},
    )


def judge_inventory_group(group: str, hosts: Sequence[str], minimum: int = 3, odd: bool = False) -> Judgement:
    n = len(hosts)
    problems = []
    if n < minimum:
        problems.append(f"{n} host(s), need at least {minimum}")
    if odd and n % 2 == 0:
        problems.append(f"{n} is an even number; etcd needs an odd number of members for quorum")
    expected = f">= {minimum} hosts in [{group}]" + (", an odd number" if odd else "")
    return Judgement(
        ok=not problems, observed=f"[{group}] has {n} host(s): {_names(sorted(hosts))}", expected=expected,
        method=f"inventory group [{group}]", message="; ".join(problems),
        evidence={"group": group, "hosts": sorted(hosts)},
    )


def judge_nodes_healthy(nodes: Sequence[NodeFacts]) -> Judgement:
    problems = []
    for n in nodes:
        if n.ready != "True":
            detail = f"{n.ready_reason}: {n.ready_message}".strip(": ")
            problems.append(f"{n.name} Ready={n.ready}" + (f" ({detail})" if detail else ""))
        for p in n.pressures:
            problems.append(f"{n.name} {p}=True")
    if not nodes:
        problems.append("the API lists no nodes")
    observed = (f"all {len(nodes)} node(s) Ready without pressure: {_names(n.name for n in nodes)}"
                if not problems else f"{len(problems)} problem(s): {_names(problems)}")
    return Judgement(
        ok=not problems, observed=observed,
        expected="every node Ready=True; MemoryPressure, DiskPressure, PIDPressure all False",
        method=f"{NODES_METHOD} (.status.conditions)", message="; ".join(problems),
        evidence={"nodes": {n.name: {"ready": n.ready, "reason": n.ready_reason, "pressures": list(n.pressures)}
                            for n in nodes}},
    )


# ====================================================================== version


@dataclass(frozen=True)
class VersionFacts:
    server: str
    kubelets: dict[str, str]


def version_facts(api: KubeApi, timeout: float = DEFAULT_TIMEOUT,
                  nodes: Sequence[NodeFacts] | None = None) -> VersionFacts:
    server = str(api.version(timeout).get("gitVersion", ""))
    nodes = node_facts(api, timeout) if nodes is None else nodes
    return VersionFacts(server=server, kubelets={n.name: n.kubelet_version for n in nodes})


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", (text or "").strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def judge_version(facts: VersionFacts, pin: str | None, min_minor: int = 27,
                  recommended_minor: int = 29) -> Judgement:
    problems = []
    v = parse_version(facts.server)
    if v is None:
        problems.append(f"server version {facts.server!r} not understood")
    else:
        if pin and parse_version(pin) != v:
            problems.append(f"server {facts.server} differs from the pinned {pin}")
        if v[0] == 1 and v[1] < min_minor:
            problems.append(f"1.{v[1]} is below 1.{min_minor} (Wire's linter: unhealthy)")
        elif v[0] == 1 and v[1] < recommended_minor:
            problems.append(f"1.{v[1]} is older than 1.{recommended_minor} (Wire's linter: warning)")
    skew = {n: kv for n, kv in facts.kubelets.items() if parse_version(kv) != v}
    if skew:
        problems.append("kubelet version differs on " + _names(f"{n} {kv}" for n, kv in sorted(skew.items())))
    expected = (f"{pin} (pinned); " if pin else "") + f">= 1.{recommended_minor}; kubelets equal to the server"
    kubelets = Counter(facts.kubelets.values())
    observed = f"server {facts.server}; kubelets " + (
        ", ".join(f"{k} x{c}" for k, c in sorted(kubelets.items())) or "none")
    return Judgement(ok=not problems, observed=observed, expected=expected,
                     method="GET /version (.gitVersion), GET /api/v1/nodes (.status.nodeInfo.kubeletVersion)",
                     message="; ".join(problems),
                     evidence={"server": facts.server, "kubelets": dict(facts.kubelets), "pin": pin})


def judge_version_pin(pin: str | None, source: str, min_minor: int = 27, recommended_minor: int = 29) -> Judgement:
    """Before install: the version the inventory will install, against Wire's linter bands."""
    method = f"inventory variable {source}"
    expected = f">= 1.{recommended_minor} (Wire's linter: < 1.{min_minor} unhealthy, < 1.{recommended_minor} warning)"
    v = parse_version(pin)
    if v is None:
        return Judgement(False, f"{source} = {pin!r}", expected, method, message=f"{source} {pin!r} is not a version",
                         measurable=False)
    problems = []
    if v[0] == 1 and v[1] < min_minor:
        problems.append(f"{pin} is below 1.{min_minor} (Wire's linter: unhealthy)")
    elif v[0] == 1 and v[1] < recommended_minor:
        problems.append(f"{pin} is older than 1.{recommended_minor} (Wire's linter: warning)")
    return Judgement(not problems, f"{source} = {pin}", expected, method, message="; ".join(problems),
                     evidence={"pin": pin, "source": source})


DEFAULT_VERSION_PINS = {"demo": "v1.28.2", "production": "v1.29.10"}
