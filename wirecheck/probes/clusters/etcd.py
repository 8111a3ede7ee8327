"""etcd (kubespray: a host service on [etcd]) as a cluster: quorum, one leader and agreeing membership,
measured with etcdctl on each member with that host's admin certificate.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
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

#: kubespray's layout (roles/etcd, etcd_cert_dir /etc/ssl/etcd/ssl): etcdctl on an etcd host uses that
#: host's admin certificate; the client endpoint is https://<etcd_access_address>:2379
ETCD_CERT_DIR = "/etc/ssl/etcd/ssl"
ETCD_DECISIVE = (r"^Error:", r"connection refused", r"x509:|tls:|certificate", r"no such file or directory",
                 r"^sudo:", r"Failed to get")
#: etcdctl on the member's own host got no answer from that member: a measured state
ETCD_DOWN = re.compile(r"connection refused|context deadline exceeded|all SubConns are in TransientFailure|"
                       r"connection reset|EOF")
ETCD_CANNOT = re.compile(r"x509:|tls:|certificate|no such file or directory|permission denied|^sudo:", re.I | re.M)


@dataclass(frozen=True)
class EtcdAccess:
    cert_dir: str = ETCD_CERT_DIR
    cert: str = "admin-{host}.pem"
    key: str = "admin-{host}-key.pem"
    cacert: str = "ca.pem"
    client_port: int = 2379
    dial_timeout_s: float = 2.0
    command_timeout_s: float = 3.0


def etcd_endpoint_host(target: Any) -> str:
    """kubespray's etcd_access_address: access_ip, else ip, else the SSH address."""
    for key in ("etcd_access_address", "access_ip", "ip"):
        if target.vars.get(key):
            return str(target.vars[key])
    return str(target.address)


def etcdctl_command(target: Any, access: EtcdAccess, args: str) -> str:
    cert_dir = str(target.vars.get("etcd_cert_dir") or access.cert_dir).rstrip("/")
    host = etcd_endpoint_host(target)
    url = f"https://{'[' + host + ']' if ':' in host else host}:{int(access.client_port)}"

    def f(name: str) -> str:
        return shlex.quote(f"{cert_dir}/{name.format(host=target.name)}")
    return (f"ETCDCTL_API=3 etcdctl --cacert={f(access.cacert)} --cert={f(access.cert)} --key={f(access.key)} "
            f"--endpoints={shlex.quote(url)} --dial-timeout={access.dial_timeout_s:g}s "
            f"--command-timeout={access.command_timeout_s:g}s {args}")


def measure_etcd_member(target: Any, access: EtcdAccess, timeout: float) -> Member:
    """On one [etcd] host: `member list`, `endpoint health --cluster`, `endpoint status --cluster` through
    its own endpoint (as root: kubespray's certificates are root's). When its own member does not answer
    the list, the host's member is down and the cluster-wide views are not asked from here."""
    m = base_member(target)
    m.addresses.add(etcd_endpoint_host(target))
    m.inventory_addresses.add(etcd_endpoint_host(target))
    m.command = etcdctl_command(target, access, "member list -w json")
    res = target.run(HOST_FACTS + m.command, timeout=timeout, sudo=True)
    tags, rest = _host_lines(res.stdout)
    _absorb_host_tags(m, tags)
    m.rc, m.stderr = res.rc, res.stderr
    if res.rc != 0:
        line = decisive_line(res.stderr, ETCD_DECISIVE) or f"etcdctl exited {res.rc} without a message"
        m.reason = line
        if _tool_missing(res.rc, res.stderr, "etcdctl"):
            m.reason = f"etcdctl is not available on {target.name}: {line}"
        elif ETCD_DOWN.search(res.stderr) and not ETCD_CANNOT.search(res.stderr):
            m.state = DOWN
            m.reason = f"its member does not answer on {etcd_endpoint_host(target)}:{access.client_port} ({line})"
        return m
    listed = _json_or_none("\n".join(rest))
    if not isinstance(listed, dict) or "members" not in listed:
        m.reason = f"etcdctl member list printed something that is not the expected JSON: {res.stdout[:200]!r}"
        return m
    m.state = UP
    m.facts["members"] = listed.get("members") or []
    m.facts["member_id"] = (listed.get("header") or {}).get("member_id")
    for sub, key in (("endpoint health --cluster -w json", "health"), ("endpoint status --cluster -w json", "status")):
        r = target.run(etcdctl_command(target, access, sub), timeout=timeout, sudo=True)
        doc = _json_or_none(r.stdout)
        m.facts[key] = doc if isinstance(doc, list) else []
        if r.rc != 0 or not isinstance(doc, list):
            m.facts[f"{key}_stderr"] = r.stderr
            m.facts[f"{key}_rc"] = r.rc
    return m


def _url_host(url: str) -> str:
    rest = re.sub(r"^\w+://", "", str(url)).split("/", 1)[0]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest


def judge_etcd_cluster(hosts: Sequence[Member], min_members: int = 3, method: str = "") -> Judgement:
    """Members (from `member list`), each member's health as every answering [etcd] host sees it, the
    leader every member reports, quorum; the member that is down named with its host."""
    expected = (f">= {min_members} members, an odd number, every member healthy, one leader agreed by all, "
                "every [etcd] host a member")
    all_hosts = list(hosts)
    hosts, aliases = distinct_machines(all_hosts)
    up = [h for h in hosts if h.state == UP]
    down_hosts = [h for h in hosts if h.state == DOWN]
    unmeasured = [h for h in hosts if h.state == UNMEASURED]
    members: dict[int, dict[str, Any]] = {}
    for h in up:
        for mem in h.facts.get("members") or []:
            members.setdefault(int(mem.get("ID") or 0), mem)

    def host_of(mem: dict[str, Any]) -> Member | None:
        urls = list(mem.get("clientURLs") or []) + list(mem.get("peerURLs") or [])
        return next((h for h in hosts if any(h.known_as(_url_host(u)) for u in urls)), None)

    def label(mem: dict[str, Any]) -> str:
        h = host_of(mem)
        url = ", ".join(mem.get("clientURLs") or []) or "no client URL"
        name = mem.get("name") or f"(unnamed, not started) {mem.get('ID')}"
        return f"{name} ({url}{', host ' + h.name if h else ''})"

    health: dict[str, list[tuple[str, bool, str]]] = {}       # client URL -> [(seen from, healthy, error)]
    status: dict[str, dict[str, Any]] = {}
    for h in up:
        for e in h.facts.get("health") or []:
            health.setdefault(str(e.get("endpoint")), []).append((h.name, bool(e.get("health")), str(e.get("error") or "")))
        for e in h.facts.get("status") or []:
            status.setdefault(str(e.get("Endpoint")), e.get("Status") or {})
    problems: list[str] = []
    healthy: list[str] = []
    unknown: list[str] = []             # members no answering host could judge
    down_labels: list[str] = []
    for mid, mem in sorted(members.items(), key=lambda kv: str(kv[1].get("name"))):
        urls = mem.get("clientURLs") or []
        h = host_of(mem)
        views = [v for u in urls for v in health.get(u, [])]
        own_down = h is not None and h.state == DOWN
        if views and all(ok for _, ok, _ in views) and not own_down:
            healthy.append(mem.get("name") or str(mid))
            continue
        if not views and not own_down:
            unknown.append(label(mem))
            continue
        reasons = []
        if own_down and h is not None:
            reasons.append(f"on {h.name}, {h.reason}")
        failing = [(src, err) for src, ok, err in views if not ok]
        if failing:
            reasons.append("health check from " + ", ".join(sorted({s for s, _ in failing})) + ": "
                           + "; ".join(sorted({e or 'unhealthy' for _, e in failing})))
        errs = sorted({e for u in urls for e in (status.get(u) or {}).get("errors") or []})
        if errs:
            reasons.append(f"it answers but reports {', '.join(errs)}")
        down_labels.append(label(mem))
        problems.append(f"etcd member {label(mem)} is not healthy: {'; '.join(reasons)}")
    # hosts whose member is down and that no answering member listed (all members down, or no list read)
    for h in down_hosts:
        if not any(host_of(mem) is h for mem in members.values()):
            down_labels.append(h.name)
            problems.append(f"the etcd member on {h.name} is not healthy: {h.reason}")
    # the member count: from `member list`, else (no member answered it) the [etcd] hosts, all seen down
    n = len(members) if members else (len(hosts) if len(down_hosts) == len(hosts) else 0)
    alive = len(healthy)
    need = n // 2 + 1
    if n and alive + len(unknown) < need:
        problems.insert(0, f"quorum lost: {alive} of {n} etcd member(s) healthy, a quorum needs {need}; "
                           "the cluster accepts no writes")
    elif down_labels and n:
        problems.append(f"quorum still held by {alive} of {n}, but one more failure stops the cluster"
                        if alive == need else f"quorum held by {alive} of {n}")
    leaders = {int(s.get("leader") or 0) for s in status.values()}
    errors = sorted({e for s in status.values() for e in (s.get("errors") or [])})
    named = {mid: mem.get("name") for mid, mem in members.items()}
    if status and (0 in leaders or not leaders) and alive >= need:
        problems.append("a member reports no leader" + (f" ({', '.join(errors)})" if errors else ""))
    elif len(leaders - {0}) > 1:
        problems.append("members disagree on the leader: " + ", ".join(str(named.get(x, x)) for x in sorted(leaders - {0})))
    leader = next(iter(leaders - {0}), None) if len(leaders - {0}) == 1 else None
    if members:
        if n < min_members:
            problems.append(f"{n} etcd member(s), need at least {min_members}")
        if n % 2 == 0:
            problems.append(f"{n} is an even number of etcd members; it must be odd")
    for h in hosts:
        if h.state == UP and members and not any(host_of(mem) is h for mem in members.values()):
            problems.append(f"{h.name} is in [etcd] but no etcd member advertises its address "
                            f"({', '.join(sorted(h.addresses))})")
    strangers = [label(mem) for mem in members.values() if host_of(mem) is None]
    observed = (f"{n} member(s), {alive} healthy"
                + (f"; leader {named.get(leader, leader)}" if leader else "; no leader" if status else "")
                + (f"; not healthy: {', '.join(down_labels)}" if down_labels else "")
                + (f"; members on hosts outside [etcd]: {', '.join(strangers)}" if strangers else "")
                + _aliases_text(aliases))
    not_measured = [f"{h.name}: {h.reason}" for h in unmeasured] + [f"health of {u}: no answering [etcd] host "
                                                                     "could check it" for u in unknown]
    if not_measured and problems:
        problems.append("not measured: " + "; ".join(not_measured))
    evidence = {"hosts": {h.name: h.evidence() for h in all_hosts}, "same_machine": aliases,
                "members": {str(mem.get("name") or mid): {"id": f"{mid:x}", "client_urls": mem.get("clientURLs"),
                                                          "host": (host_of(mem).name if host_of(mem) else None)}
                            for mid, mem in members.items()},
                "leader": named.get(leader, leader) if leader else None, "healthy": healthy}
    if not problems and (not_measured or not up):
        why = "; ".join(not_measured) or "no [etcd] host answered"
        return Judgement(ok=False, observed=observed, expected=expected, method=method, measurable=False,
                         message=f"could not measure {why}", evidence=evidence)
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems), evidence=evidence)
