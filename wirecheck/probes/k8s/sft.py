"""SFT placement: one sftd pod per node, replicas within the matching nodes, a public external IP and
enough cores for the expected concurrent users.
"""

from __future__ import annotations

import ipaddress
import math
from collections import defaultdict
from dataclasses import dataclass

from .api import DEFAULT_TIMEOUT, JSON, KubeApi
from .judgement import Judgement, _names
from .nodes import NodeFacts, node_facts
from .pods import PodFacts, pod_facts
from .workloads import WorkloadFacts, workload_facts


@dataclass(frozen=True)
class SftFacts:
    pods: tuple[PodFacts, ...]
    workloads: tuple[WorkloadFacts, ...]
    nodes: tuple[NodeFacts, ...]


def _is_sft(labels: dict[str, str], name: str) -> bool:
    return labels.get("app.kubernetes.io/name") == "sftd" or labels.get("app") == "sftd" or name == "sftd"


def sft_facts(api: KubeApi, timeout: float = DEFAULT_TIMEOUT) -> SftFacts:
    pods = [p for p in pod_facts(api, timeout) if _is_sft(p.labels, p.owner_name)]
    workloads = [w for w in workload_facts(api, timeout, kinds=("statefulsets",)) if _is_sft(w.labels, w.name)]
    return SftFacts(tuple(pods), tuple(workloads), tuple(node_facts(api, timeout)))


_NON_PUBLIC_NETS = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "0.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128")]


def _external_ip_problem(value: str) -> str | None:
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return f"{value!r} is not an IP address"
    if any(ip in net for net in _NON_PUBLIC_NETS):
        return f"{value} is not a public address"
    return None


def judge_sft_placement(facts: SftFacts, concurrent_users: int | None, *, base_cores: float = 6,
                        users_per_core: int = 100, external_ip_annotation: str = "wire.com/external-ip") -> Judgement:
    method = ("GET /api/v1/pods (app.kubernetes.io/name=sftd), /apis/apps/v1/statefulsets, /api/v1/nodes "
              "(labels, wire.com/external-ip annotation, .status.capacity.cpu)")
    if not facts.pods and not facts.workloads:
        return Judgement(True, "no sftd pods or StatefulSet", "SFT placement rules (when SFT is deployed)", method,
                         message="SFT is not deployed in this cluster", applicable=False)
    problems: list[str] = []
    per_node = defaultdict(list)
    for p in facts.pods:
        if p.node:
            per_node[p.node].append(p.ref)
    for node, refs in sorted(per_node.items()):
        if len(refs) > 1:
            problems.append(f"node {node} runs {len(refs)} SFT pods ({', '.join(refs)}); hostNetwork allows one")
    workers = [n for n in facts.nodes if n.is_worker]
    for w in facts.workloads:
        eligible = [n.name for n in workers if all(n.labels.get(k) == v for k, v in w.node_selector.items())]
        sel = ",".join(f"{k}={v}" for k, v in w.node_selector.items()) or "no nodeSelector"
        if w.desired > len(eligible):
            problems.append(f"{w.ref} wants {w.desired} replicas but only {len(eligible)} node(s) match ({sel}): "
                            f"{_names(eligible)}")
    sft_nodes = sorted(per_node)
    by_name = {n.name: n for n in facts.nodes}
    node_ev: JSON = {}
    for name in sft_nodes:
        n = by_name.get(name)
        if n is None:
            continue
        ext = n.annotations.get(external_ip_annotation)
        if ext is not None:
            bad = _external_ip_problem(ext)
            if bad:
                problems.append(f"node {name} annotation {external_ip_annotation}: {bad}")
        node_ev[name] = {"cpu": n.cpu_capacity, "external_ip": ext, "internal_ip": n.internal_ip,
                         "role_labels": {k: v for k, v in n.labels.items() if k.endswith("/role")}}
    need = None
    if concurrent_users is not None:
        need = base_cores + math.ceil(concurrent_users / users_per_core)
        small = [f"{n.name} ({n.cpu_capacity:g})" for n in workers if n.cpu_capacity < need]
        if small:
            problems.append(f"{len(small)} node(s) below {need:g} cores for {concurrent_users} concurrent users "
                            f"({base_cores:g} + 1 per {users_per_core}): {_names(small)}")
    observed = (f"{len(facts.pods)} sftd pod(s) on {len(sft_nodes)} node(s): {_names(sft_nodes)}; "
                + "; ".join(f"{w.ref} replicas {w.desired}" for w in facts.workloads))
    if need is not None:
        observed += f"; worker cores {_names(f'{n.name}={n.cpu_capacity:g}' for n in workers)}"
    else:
        observed += "; capacity not evaluated (concurrent users not given)"
    expected = "one SFT pod per node; replicas <= matching nodes; wire.com/external-ip a public IP"
    if need is not None:
        expected += f"; >= {need:g} cores per worker"
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems),
                     evidence={"sft_nodes": node_ev, "pods": [p.ref for p in facts.pods],
                               "concurrent_users": concurrent_users, "cores_needed": need})
