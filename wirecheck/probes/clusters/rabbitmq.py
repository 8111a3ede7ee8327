"""RabbitMQ ([rmq-cluster] hosts) as a cluster: the running nodes every member sees, and the guest user,
measured with rabbitmqctl on each member.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ..k8s.judgement import Judgement
from .members import (
    DOWN,
    HOST_FACTS,
    UNMEASURED,
    UP,
    Member,
    _absorb_host_tags,
    _aliases_text,
    _host_lines,
    _json_or_none,
    _tool_missing,
    base_member,
    decisive_line,
    distinct_machines,
)

RMQ_STATUS = "rabbitmqctl cluster_status --formatter json"
RMQ_GUEST = "rabbitmqctl authenticate_user guest guest"
RMQ_DECISIVE = (r"epmd reports:", r"unable to connect to epmd", r"Authentication failed", r"nodedown",
                r"^Error:", r"^sudo:")
#: the node on this host does not run (epmd knows no such node, or epmd itself is not there)
RMQ_DOWN = re.compile(r"not running at all|unable to connect to epmd \(port \d+\) on \S+: econnrefused|nodedown")
RMQ_CANNOT = re.compile(r"Authentication failed|nxdomain")


def measure_rabbitmq_member(target: Any, timeout: float) -> Member:
    """`rabbitmqctl cluster_status` (as root: Debian's wrapper runs it as the rabbitmq user, with the
    node's Erlang cookie) and whether the default guest/guest login is accepted."""
    m = base_member(target)
    m.command = RMQ_STATUS
    res = target.run(HOST_FACTS + RMQ_STATUS, timeout=timeout, sudo=True)
    tags, rest = _host_lines(res.stdout)
    _absorb_host_tags(m, tags)
    m.rc, m.stderr = res.rc, res.stderr
    if res.rc != 0:
        line = decisive_line(res.stderr, RMQ_DECISIVE) or f"rabbitmqctl exited {res.rc} without a message"
        m.reason = line
        if _tool_missing(res.rc, res.stderr, "rabbitmqctl"):
            m.reason = f"rabbitmqctl is not available on {target.name}: {line}"
        elif RMQ_DOWN.search(res.stderr) and not RMQ_CANNOT.search(res.stderr):
            m.state = DOWN
        return m
    doc = _json_or_none("\n".join(rest))
    if not isinstance(doc, dict) or "running_nodes" not in doc:
        m.reason = f"rabbitmqctl cluster_status printed something that is not the expected JSON: {res.stdout[:200]!r}"
        return m
    m.state = UP
    m.facts = {k: doc.get(k) for k in ("cluster_name", "running_nodes", "disk_nodes", "ram_nodes", "partitions",
                                       "alarms", "versions")}
    g = target.run(RMQ_GUEST, timeout=timeout, sudo=True)
    if g.rc == 0 and "Success" in g.stdout:
        m.facts["guest_login"] = "accepted"
    elif re.search(r"failed to authenticate|user_not_found|invalid credentials|not_allowed|refused",
                   g.stdout + g.stderr, re.I):
        m.facts["guest_login"] = "refused"
    else:
        m.facts["guest_login"] = f"not measured: {decisive_line(g.stderr, RMQ_DECISIVE) or g.rc}"
    return m


def _node_host(node: str) -> str:
    return str(node).split("@", 1)[-1]


def judge_rabbitmq_cluster(hosts: Sequence[Member], min_nodes: int = 3, method: str = "") -> Judgement:
    """One cluster across the [rmq-cluster] hosts: >= min_nodes running nodes, every member node running,
    no partition, no resource alarm, the default guest/guest login refused."""
    expected = (f">= {min_nodes} running nodes in one cluster, every node running, no partition or alarm, "
                "guest/guest refused")
    all_hosts = list(hosts)
    hosts, aliases = distinct_machines(all_hosts)
    up = [h for h in hosts if h.state == UP]
    down = [h for h in hosts if h.state == DOWN]
    unmeasured = [h for h in hosts if h.state == UNMEASURED]
    problems: list[str] = []
    for h in down:
        problems.append(f"{h.name}: RabbitMQ is not running ({h.reason})")
    views = {h.name: frozenset((h.facts.get("disk_nodes") or []) + (h.facts.get("ram_nodes") or [])) for h in up}
    if len(set(views.values())) > 1:
        problems.insert(0, "the [rmq-cluster] hosts do not form one cluster: " + "; ".join(
            f"{n} sees {', '.join(sorted(v))}" for n, v in views.items()))
    nodes = sorted(set().union(*views.values())) if views else []
    running = set().union(*[set(h.facts.get("running_nodes") or []) for h in up]) if up else set()
    down_names = {h.name for h in down} | {n for h in down for n in h.names}
    running -= {n for n in running if _node_host(n) in down_names}
    for node in nodes:
        if node not in running and _node_host(node) not in down_names:
            problems.append(f"cluster member {node} is not running (a disc/ram node of the cluster, not among the "
                            "running nodes)")
    for h in up:
        owner = [n for n in nodes if h.known_as(_node_host(n))]
        if nodes and not owner:
            problems.append(f"{h.name} is in [rmq-cluster] but none of the cluster's nodes runs on it")
    partitions = {n: p for h in up for n, p in (h.facts.get("partitions") or {}).items() if p}
    if partitions:
        problems.append("network partition: " + "; ".join(f"{n} cannot see {', '.join(p)}" for n, p in partitions.items()))
    alarms = sorted({json.dumps(a, sort_keys=True) if not isinstance(a, str) else a
                     for h in up for a in (h.facts.get("alarms") or [])})
    if alarms:
        problems.append(f"resource alarm(s) block publishers: {', '.join(alarms)}")
    if up and len(running) < min_nodes:
        problems.append(f"{len(running)} running node(s), need >= {min_nodes}")
    guest = {h.name: h.facts.get("guest_login") for h in up}
    if any(v == "accepted" for v in guest.values()):
        problems.append("the default guest/guest login is accepted (rabbitmqctl authenticate_user guest guest): "
                        "delete the guest user or give it a strong password")
    observed = (f"{len(nodes)} node(s) ({', '.join(nodes) or 'none read'}), running: {', '.join(sorted(running)) or 'none'}"
                + (f"; not running on: {', '.join(h.name for h in down)}" if down else "")
                + ("; guest/guest " + ("accepted" if "accepted" in guest.values() else
                                       "refused" if guest and all(v == "refused" for v in guest.values())
                                       else "not measured") if up else "")
                + _aliases_text(aliases))
    unknown_guest = [f"{n}: {v}" for n, v in guest.items() if v not in ("accepted", "refused")]
    evidence = {"hosts": {h.name: h.evidence() for h in all_hosts}, "same_machine": aliases, "nodes": nodes,
                "running": sorted(running)}
    if unmeasured and problems:
        problems.append("not measured: " + "; ".join(f"{h.name}: {h.reason}" for h in unmeasured))
    if not problems and (unmeasured or not up or (unknown_guest and len(unknown_guest) == len(guest))):
        why = "; ".join([f"{h.name}: {h.reason}" for h in unmeasured] + [f"guest login {g}" for g in unknown_guest])
        return Judgement(ok=False, observed=observed, expected=expected, method=method, measurable=False,
                         message=f"could not measure {why or 'any [rmq-cluster] host'}", evidence=evidence)
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems), evidence=evidence)
