"""etcd as the API server sees it: the --etcd-servers of the kube-apiserver pods and /readyz/etcd."""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

from .api import DEFAULT_TIMEOUT, KubeApi, KubeApiError, _status_message
from .judgement import Judgement, _names
from .pods import pod_facts


@dataclass(frozen=True)
class EtcdFacts:
    health_path: str
    health_status: int
    health_body: str
    members: tuple[str, ...]
    member_source: str  # how members were found, "" when not visible
    member_error: str = ""  # why the members could not be listed (only kept when etcd is unhealthy)

    @property
    def healthy(self) -> bool:
        return self.health_status == 200 and self.health_body.strip().lower().startswith("ok")


_ETCD_SERVERS = re.compile(r"--etcd-servers=(\S+)")


def etcd_facts(api: KubeApi, timeout: float = DEFAULT_TIMEOUT) -> EtcdFacts:
    path = "/readyz/etcd"
    status, body = api.raw_get(path, timeout)
    if status == 404:  # API servers older than 1.16 only have /healthz
        path = "/healthz/etcd"
        status, body = api.raw_get(path, timeout)
    if status in (401, 403):  # a refusal says nothing about etcd: not measured, never "unhealthy"
        raise KubeApiError(f"GET {path}: HTTP {status} {HTTPStatus(status).phrase}: {_status_message(body)}",
                           status=status)
    try:
        pods = pod_facts(api, timeout, namespace="kube-system", label_selector="component in (etcd,kube-apiserver)")
    except KubeApiError as exc:
        facts = EtcdFacts(path, status, body.strip()[:500], (), "", member_error=str(exc))
        if facts.healthy:
            raise
        # with etcd down the API server cannot list either: the health answer is the measurement
        return facts
    etcd_pods = sorted({p.node or p.name for p in pods if p.labels.get("component") == "etcd"})
    members: tuple[str, ...] = ()
    source = ""
    if etcd_pods:
        members, source = tuple(etcd_pods), "etcd static pods in kube-system (component=etcd)"
    else:
        endpoints: set[str] = set()
        for p in pods:
            if p.labels.get("component") != "kube-apiserver":
                continue
            for cmd in p.commands:
                for arg in cmd:
                    m = _ETCD_SERVERS.match(arg)
                    if m:
                        endpoints.update(re.sub(r"^\w+://", "", e) for e in m.group(1).split(",") if e)
        if endpoints:
            members, source = tuple(sorted(endpoints)), "kube-apiserver --etcd-servers (kube-system)"
    return EtcdFacts(path, status, body.strip()[:500], members, source)


def judge_etcd(facts: EtcdFacts, minimum: int = 3) -> Judgement:
    problems = []
    healthy = facts.healthy
    if not healthy:
        problems.append(f"etcd not healthy: {facts.health_path} answered {facts.health_status}: {facts.health_body}")
    n = len(facts.members)
    if facts.member_source:
        if n < minimum:
            problems.append(f"{n} etcd member(s), need at least {minimum}")
        if n % 2 == 0:
            problems.append(f"{n} is an even number of etcd members; it must be odd")
    observed = (f"{facts.health_path}: {facts.health_status} {facts.health_body[:80]!r}; "
                + (f"{n} member(s) ({facts.member_source}): {_names(facts.members)}" if facts.member_source
                   else "membership not visible through the API"
                   + (f" ({facts.member_error})" if facts.member_error else "")))
    measurable = bool(facts.member_source) or not healthy
    return Judgement(
        ok=not problems and bool(facts.member_source), observed=observed,
        expected=f"{facts.health_path} ok; >= {minimum} members, an odd number",
        method=f"GET {facts.health_path}; kube-system pods (component=etcd, kube-apiserver --etcd-servers)",
        message="; ".join(problems) if problems else
        ("" if facts.member_source else "no etcd pods and no kube-apiserver --etcd-servers visible in kube-system"),
        evidence={"health": {"path": facts.health_path, "status": facts.health_status, "body": facts.health_body},
                  "members": list(facts.members), "member_source": facts.member_source,
                  **({"member_error": facts.member_error} if facts.member_error else {})},
        measurable=measurable,
    )
