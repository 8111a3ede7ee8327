"""Pods (phase, readiness, restarts) and the retention of the nginz access logs read from pod logs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .api import DEFAULT_TIMEOUT, JSON, KubeApi, KubeApiError
from .judgement import Judgement, _meta, _names, parse_k8s_time


@dataclass(frozen=True)
class ContainerFacts:
    name: str
    ready: bool
    restarts: int
    state: str  # running | waiting | terminated | unknown
    reason: str
    message: str
    init: bool = False


@dataclass(frozen=True)
class PodFacts:
    namespace: str
    name: str
    phase: str
    node: str
    containers: tuple[ContainerFacts, ...]
    reason: str = ""
    message: str = ""
    owner_kind: str = ""
    owner_name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    host_network: bool = False
    host_ports: tuple[int, ...] = ()
    node_selector: dict[str, str] = field(default_factory=dict)
    started: datetime | None = None
    terminating: bool = False
    unschedulable_message: str = ""
    commands: tuple[tuple[str, ...], ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ready(self) -> bool:
        regular = [c for c in self.containers if not c.init]
        return self.phase == "Running" and bool(regular) and all(c.ready for c in regular)

    @property
    def restarts(self) -> int:
        return sum(c.restarts for c in self.containers)


def _container(cs: JSON, init: bool) -> ContainerFacts:
    state_obj = cs.get("state") or {}
    state = next(iter(state_obj), "unknown")
    detail = state_obj.get(state) or {}
    reason = detail.get("reason", "")
    if state == "terminated" and detail.get("exitCode") not in (None, 0):
        reason = f"{reason or 'Error'} (exit {detail.get('exitCode')})"
    return ContainerFacts(name=cs.get("name", "?"), ready=bool(cs.get("ready")), restarts=int(cs.get("restartCount") or 0),
                          state=state, reason=reason, message=str(detail.get("message", ""))[:200], init=init)


def pod_from_json(obj: JSON) -> PodFacts:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    containers = tuple(_container(c, True) for c in status.get("initContainerStatuses") or []) + tuple(
        _container(c, False) for c in status.get("containerStatuses") or [])
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")),
                 (meta.get("ownerReferences") or [{}])[0] if meta.get("ownerReferences") else {})
    host_ports = tuple(int(p["hostPort"]) for c in spec.get("containers") or [] for p in c.get("ports") or []
                       if p.get("hostPort"))
    unsched = next((c.get("message", "") for c in status.get("conditions") or []
                    if c.get("type") == "PodScheduled" and c.get("status") == "False"), "")
    return PodFacts(
        namespace=meta.get("namespace", ""), name=meta.get("name", "?"), phase=status.get("phase", "Unknown"),
        node=spec.get("nodeName") or "", containers=containers, reason=status.get("reason", ""),
        message=str(status.get("message", ""))[:200], owner_kind=owner.get("kind", ""),
        owner_name=owner.get("name", ""), labels=dict(meta.get("labels") or {}),
        host_network=bool(spec.get("hostNetwork")), host_ports=host_ports,
        node_selector=dict(spec.get("nodeSelector") or {}),
        started=parse_k8s_time(status.get("startTime") or meta.get("creationTimestamp")),
        terminating=bool(meta.get("deletionTimestamp")), unschedulable_message=unsched,
        commands=tuple(tuple((c.get("command") or []) + (c.get("args") or [])) for c in spec.get("containers") or []),
    )


def pod_facts(api: KubeApi, timeout: float = DEFAULT_TIMEOUT, *, namespace: str | None = None,
              label_selector: str | None = None) -> list[PodFacts]:
    return [pod_from_json(o) for o in api.list("pods", namespace=namespace, label_selector=label_selector,
                                                timeout=timeout)]


def pod_problem(p: PodFacts) -> str | None:
    """Why a pod is not healthy, or None. Terminating pods are in transition and not judged."""
    if p.terminating or p.phase == "Succeeded":
        return None
    if p.ready:
        return None
    bad = [c for c in p.containers if not c.ready and not (c.init and c.state == "terminated" and c.reason == "Completed")]
    details = [f"{'init ' if c.init else ''}container {c.name} {c.reason or c.state}"
               + (f" ({c.restarts} restarts)" if c.restarts else "") for c in bad]
    if p.phase == "Pending" and p.unschedulable_message and not p.node:
        details.append(f"unschedulable: {p.unschedulable_message}")
    if p.phase == "Failed" and (p.reason or p.message):
        details.insert(0, f"{p.reason} {p.message}".strip())
    what = "Running but not ready" if p.phase == "Running" else p.phase
    return f"{p.ref}: {what}" + (f" - {'; '.join(details)}" if details else "")


def judge_pods(pods: Sequence[PodFacts], max_restarts: int = 10) -> Judgement:
    problems = [x for x in (pod_problem(p) for p in sorted(pods, key=lambda p: p.ref)) if x]
    high = sorted((p for p in pods if p.restarts > max_restarts), key=lambda p: -p.restarts)
    phases = Counter(p.phase for p in pods)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(phases.items()))
    if problems:
        observed = f"{len(problems)} of {len(pods)} pod(s) unhealthy: {_names(problems, 8)}"
    else:
        observed = f"all {len(pods)} pod(s) Running and ready or Succeeded ({summary})"
    if high:
        observed += f"; restarted more than {max_restarts} times: {_names(f'{p.ref} ({p.restarts})' for p in high)}"
    return Judgement(
        ok=not problems, observed=observed,
        expected="every pod Running with all containers ready, or Succeeded",
        method="GET /api/v1/pods (all namespaces: .status.phase, containerStatuses[].ready/state/restartCount)",
        message="; ".join(problems),
        evidence={"unhealthy": problems, "phases": dict(phases),
                  "high_restarts": {p.ref: p.restarts for p in high}},
    )


# ====================================================================== log retention


@dataclass(frozen=True)
class LogFacts:
    pod: str  # namespace/name
    container: str
    started: datetime | None
    first_line_time: datetime | None
    first_line: str
    error: str = ""


def nginz_log_facts(api: KubeApi, timeout: float = DEFAULT_TIMEOUT, container: str = "nginz") -> list[LogFacts]:
    pods = [p for p in pod_facts(api, timeout, label_selector="app=nginz") if p.phase == "Running"]
    out = []
    for p in pods:
        try:
            text = api.pod_log(p.namespace, p.name, container, limit_bytes=4096, timestamps=True, timeout=timeout)
        except KubeApiError as exc:
            out.append(LogFacts(p.ref, container, p.started, None, "", error=str(exc)))
            continue
        first_time, first_line = None, ""
        for line in text.splitlines():
            stamp, _, rest = line.partition(" ")
            t = parse_k8s_time(stamp)
            if t:
                first_time, first_line = t, rest[:200]
                break
        out.append(LogFacts(p.ref, container, p.started, first_time, first_line))
    return out


def judge_log_retention(logs: Sequence[LogFacts], now: datetime, max_age: timedelta = timedelta(hours=72)) -> Judgement:
    method = "GET /api/v1/namespaces/<ns>/pods/<nginz>/log?container=nginz&timestamps=true (first line)"
    hours = max_age.total_seconds() / 3600
    expected = f"earliest nginz log line at most {hours:g} h old"
    if not logs:
        return Judgement(True, "no running nginz pods (label app=nginz)", expected, method,
                         message="no nginz pods to read logs from", applicable=False)
    errors = [f"{lf.pod}: {lf.error}" for lf in logs if lf.error]
    old_enough = [lf for lf in logs if lf.started and now - lf.started > max_age and not lf.error]
    if not old_enough:
        if errors:
            return Judgement(False, "; ".join(errors), expected, method, message="; ".join(errors), measurable=False)
        youngest = _names(f"{lf.pod} started {lf.started:%Y-%m-%d %H:%M}Z" for lf in logs if lf.started)
        return Judgement(True, f"all nginz pods are younger than {hours:g} h ({youngest})", expected, method,
                         message=f"nginz pods younger than {hours:g} h cannot show retention yet", applicable=False)
    problems = []
    seen = []
    for lf in old_enough:
        if lf.first_line_time is None:
            seen.append(f"{lf.pod}: no timestamped line")
            continue
        age = now - lf.first_line_time
        seen.append(f"{lf.pod}: first line {age.total_seconds() / 3600:.1f} h old")
        if age > max_age:
            problems.append(f"{lf.pod} keeps log lines {age.total_seconds() / 3600:.1f} h old "
                            f"(first: {lf.first_line_time:%Y-%m-%dT%H:%M:%S}Z)")
    return Judgement(ok=not problems, observed="; ".join(seen + errors), expected=expected, method=method,
                     message="; ".join(problems),
                     evidence={"pods": {lf.pod: {"started": str(lf.started), "first_line": str(lf.first_line_time)}
                                        for lf in logs}})
