"""Kubernetes probes: read cluster facts through the API and judge them against Wire's requirements.

Plain Python, no pytest. Every API call goes through the official `kubernetes` client (loaded
from a kubeconfig, so tokens, client certificates and exec plugins work as with kubectl) and
carries a timeout. `kubernetes` is imported lazily: importing it costs about half a second and
most wirecheck runs never talk to a cluster.

Two layers:
- *fact* functions (`node_facts`, `etcd_facts`, `helm_releases`, ...) take a `KubeApi` and a
  timeout and return dataclasses with what the API shows;
- *judge* functions (`judge_workers`, `judge_etcd`, ...) are pure: facts + thresholds in,
  `Judgement` out (ok, observed, expected, method, message, evidence). The checks in suites/
  turn a Judgement into a verdict.

Objects are handled as the JSON the API returns (camelCase keys), not as the client's model
classes: that is faster on big clusters and the same shape as recorded responses.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import ipaddress
import json
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

JSON = dict[str, Any]

DEFAULT_TIMEOUT = 10.0
PAGE_SIZE = 500

CONTROL_PLANE_TAINTS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure")
HELM_SECRET_TYPE = "helm.sh/release.v1"


class KubeApiError(Exception):
    """The API could not be asked (connection, TLS, auth, timeout, bad kubeconfig) or said no."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# ====================================================================== API access


@dataclass(frozen=True)
class _Lister:
    api: str  # "core" | "apps" | "custom"
    all_ns: str
    namespaced: str
    crd: tuple[str, str, str] | None = None  # group, version, plural


_RESOURCES: dict[str, _Lister] = {
    "nodes": _Lister("core", "list_node", "list_node"),
    "pods": _Lister("core", "list_pod_for_all_namespaces", "list_namespaced_pod"),
    "services": _Lister("core", "list_service_for_all_namespaces", "list_namespaced_service"),
    "secrets": _Lister("core", "list_secret_for_all_namespaces", "list_namespaced_secret"),
    "daemonsets": _Lister("apps", "list_daemon_set_for_all_namespaces", "list_namespaced_daemon_set"),
    "statefulsets": _Lister("apps", "list_stateful_set_for_all_namespaces", "list_namespaced_stateful_set"),
    "deployments": _Lister("apps", "list_deployment_for_all_namespaces", "list_namespaced_deployment"),
    "certificates": _Lister("custom", "list_cluster_custom_object", "list_namespaced_custom_object",
                            ("cert-manager.io", "v1", "certificates")),
}


class KubeApi:
    """A thin, timeout-aware reader over the official client's ApiClient."""

    def __init__(self, api_client: Any, source: str = "") -> None:
        self.api_client = api_client
        self.source = source

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None) -> KubeApi:
        from kubernetes import client, config  # lazy: slow import
        from kubernetes.config.config_exception import ConfigException

        cfg = client.Configuration()
        try:
            config.load_kube_config(config_file=str(path), context=context, client_configuration=cfg,
                                    persist_config=False)
        except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
            raise KubeApiError(f"cannot load kubeconfig {path}: {exc}") from exc
        # One attempt per call: our own timeouts bound the run, urllib3's retries would multiply them.
        cfg.retries = 0
        return cls(client.ApiClient(cfg), source=f"kubeconfig {path}" + (f" (context {context})" if context else ""))

    def close(self) -> None:
        closer = getattr(self.api_client, "close", None)
        if closer:
            closer()

    # ------------------------------------------------------------------ calls
    def _call(self, what: str, fn: Callable[..., Any], timeout: float, budget: float | None = None,
              **kwargs: Any) -> bytes:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            resp = fn(_preload_content=False, _request_timeout=_timeouts(timeout), **kwargs)
            return bytes(resp.data)
        except ApiException as exc:
            raise KubeApiError(f"{what}: HTTP {exc.status} {exc.reason}: {_status_message(exc.body)}",
                               status=exc.status) from exc
        except HTTPError as exc:
            raise KubeApiError(f"{what}: {_transport_error(exc, budget or timeout)}") from exc
        except OSError as exc:
            raise KubeApiError(f"{what}: {exc}") from exc

    def _api(self, kind: str) -> Any:
        from kubernetes import client

        return {"core": client.CoreV1Api, "apps": client.AppsV1Api,
                "custom": client.CustomObjectsApi}[kind](self.api_client)

    def list(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[JSON]:
        """All objects of a resource, following `continue` pages, within `timeout` in total."""
        lister = _RESOURCES[resource]
        api = self._api(lister.api)
        fn = getattr(api, lister.namespaced if namespace else lister.all_ns)
        args: list[Any] = []
        if lister.crd:
            args.extend(lister.crd[:2])
            if namespace:
                args.append(namespace)
            args.append(lister.crd[2])
        elif namespace:
            args.append(namespace)
        kwargs: JSON = {"limit": PAGE_SIZE}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        deadline = time.monotonic() + timeout
        items: list[JSON] = []
        token: str | None = None
        what = f"list {resource}" + (f" in {namespace}" if namespace else "")
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KubeApiError(f"{what}: timed out after {timeout:g}s while paging")
            if token:
                kwargs["_continue"] = token
            data = self._call(what, lambda **k: fn(*args, **k), min(timeout, remaining), budget=timeout, **kwargs)
            doc = _loads(data, what)
            items.extend(doc.get("items") or [])
            token = (doc.get("metadata") or {}).get("continue")
            if not token:
                return items

    def version(self, timeout: float = DEFAULT_TIMEOUT) -> JSON:
        from kubernetes import client

        return _loads(self._call("GET /version", client.VersionApi(self.api_client).get_code, timeout), "GET /version")

    def pod_log(self, namespace: str, pod: str, container: str | None, *, limit_bytes: int = 8192,
                timestamps: bool = True, timeout: float = DEFAULT_TIMEOUT) -> str:
        kwargs: JSON = {"timestamps": timestamps, "limit_bytes": limit_bytes}
        if container:
            kwargs["container"] = container
        core = self._api("core")
        data = self._call(f"logs of {namespace}/{pod}", lambda **k: core.read_namespaced_pod_log(pod, namespace, **k),
                          timeout, **kwargs)
        return data.decode("utf-8", "replace")

    def raw_get(self, path: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str]:
        """GET a non-resource path (health endpoints). Returns (status, body); never raises on HTTP codes."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        client = self.api_client
        try:
            if hasattr(client, "param_serialize"):  # kubernetes >= 33 (new generator)
                params = client.param_serialize("GET", path, header_params={"Accept": "text/plain, */*"},
                                                auth_settings=["BearerToken"])
                resp = client.call_api(*params, _request_timeout=_timeouts(timeout))
                resp.read()
                return int(resp.status), (resp.data or b"").decode("utf-8", "replace")
            resp = client.call_api(path, "GET", auth_settings=["BearerToken"], _preload_content=False,
                                   _return_http_data_only=False, _request_timeout=_timeouts(timeout))
            raw = resp[0] if isinstance(resp, tuple) else resp
            return int(raw.status), raw.data.decode("utf-8", "replace")
        except ApiException as exc:
            return int(exc.status or 0), _text(exc.body) or str(exc.reason)
        except HTTPError as exc:
            raise KubeApiError(f"GET {path}: {_transport_error(exc, timeout)}") from exc
        except OSError as exc:
            raise KubeApiError(f"GET {path}: {exc}") from exc


def _timeouts(timeout: float) -> tuple[float, float]:
    """(connect, read) timeouts. A tuple, because kubernetes < 33 silently ignores a float."""
    return (timeout, timeout)


def _text(body: Any) -> str:
    if isinstance(body, bytes | bytearray):
        return body.decode("utf-8", "replace")
    return str(body or "")


def _transport_error(exc: Exception, timeout: float) -> str:
    """One readable line for urllib3's nested errors (MaxRetryError wrapping the real cause)."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

    reason = getattr(exc, "reason", None) or exc
    # NewConnectionError subclasses ConnectTimeoutError in urllib3, so it is tested first
    if isinstance(reason, NewConnectionError):
        return f"cannot connect: {reason}"
    if isinstance(reason, ReadTimeoutError | ConnectTimeoutError):
        return f"no answer within the timeout {timeout:g}s"
    return f"{type(reason).__name__}: {reason}"


def _loads(data: bytes, what: str) -> JSON:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise KubeApiError(f"{what}: answer is not JSON: {data[:120]!r}") from exc
    if not isinstance(doc, dict):
        raise KubeApiError(f"{what}: unexpected answer {str(doc)[:120]}")
    return doc


def _status_message(body: Any) -> str:
    if not body:
        return ""
    body = _text(body)
    try:
        doc = json.loads(body)
        return str(doc.get("message") or doc)[:300]
    except (ValueError, TypeError, AttributeError):
        return str(body)[:300]


# ====================================================================== verdict material


@dataclass(frozen=True)
class Judgement:
    """A judge's conclusion; the check turns it into a verdict.

    applicable=False means the requirement's condition does not hold (e.g. SFT not deployed);
    measurable=False means the facts needed are not visible (becomes `error`).
    """

    ok: bool
    observed: str
    expected: str
    method: str
    message: str = ""
    evidence: JSON = field(default_factory=dict)
    applicable: bool = True
    measurable: bool = True


def _names(items: Iterable[str], limit: int = 12) -> str:
    items = list(items)
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _meta(obj: JSON) -> JSON:
    return obj.get("metadata") or {}


def parse_cpu(quantity: str | None) -> float:
    """Kubernetes CPU quantity ("8", "7800m", "1.5") to cores."""
    if not quantity:
        return 0.0
    q = str(quantity).strip()
    try:
        if q.endswith("m"):
            return float(q[:-1]) / 1000
        if q.endswith("k"):
            return float(q[:-1]) * 1000
        return float(q)
    except ValueError:
        return 0.0


def parse_k8s_time(value: str | None) -> datetime | None:
    """RFC 3339 with optional fractional seconds of any length (the kubelet writes nanoseconds)."""
    if not value:
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", value.strip())
    if not m:
        return None
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        return datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}").astimezone(UTC)
    except ValueError:
        return None


# ====================================================================== nodes


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


# ====================================================================== pods


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


# ====================================================================== etcd


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


# ====================================================================== helm


@dataclass(frozen=True)
class HelmRelease:
    name: str
    namespace: str
    revision: int
    status: str
    chart: str = ""
    chart_version: str = ""
    app_version: str = ""
    description: str = ""
    updated: str = ""
    decode_error: str = ""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def decode_helm_release(data: str) -> JSON:
    """Decode the `release` value of a Helm 3 release Secret as the API returns it.

    The API base64-encodes secret data; Helm itself stored base64(gzip(JSON)) (older Helm
    versions may skip gzip, recognised by the missing gzip magic bytes).
    """
    try:
        helm_blob = base64.b64decode(data, validate=False)
        raw = base64.b64decode(helm_blob, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"bad gzip: {exc}") from exc
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError("release is not a JSON object")
    return doc


def release_from_secret(secret: JSON) -> HelmRelease:
    meta = _meta(secret)
    labels = meta.get("labels") or {}
    name, ns = labels.get("name", ""), meta.get("namespace", "")
    try:
        revision = int(labels.get("version", "0"))
    except ValueError:
        revision = 0
    status = labels.get("status", "unknown")
    try:
        doc = decode_helm_release((secret.get("data") or {}).get("release", ""))
    except ValueError as exc:
        return HelmRelease(name, ns, revision, status, decode_error=str(exc))
    info = doc.get("info") or {}
    chart = ((doc.get("chart") or {}).get("metadata")) or {}
    return HelmRelease(
        name=doc.get("name") or name, namespace=doc.get("namespace") or ns,
        revision=int(doc.get("version") or revision), status=info.get("status") or status,
        chart=chart.get("name", ""), chart_version=chart.get("version", ""), app_version=chart.get("appVersion", ""),
        description=str(info.get("description", ""))[:300], updated=str(info.get("last_deployed", "")),
    )


def helm_releases(api: KubeApi, timeout: float = DEFAULT_TIMEOUT) -> list[HelmRelease]:
    """The latest revision of every Helm 3 release (what `helm list -A --all` shows)."""
    secrets = api.list("secrets", label_selector="owner=helm", field_selector=f"type={HELM_SECRET_TYPE}",
                       timeout=timeout)
    latest: dict[tuple[str, str], JSON] = {}
    for s in secrets:
        labels = _meta(s).get("labels") or {}
        key = (_meta(s).get("namespace", ""), labels.get("name", ""))
        try:
            rev = int(labels.get("version", "0"))
        except ValueError:
            rev = 0
        cur = latest.get(key)
        if cur is None or rev > int((_meta(cur).get("labels") or {}).get("version", "0") or 0):
            latest[key] = s
    return sorted((release_from_secret(s) for s in latest.values()), key=lambda r: (r.namespace, r.name))


@dataclass(frozen=True)
class ExpectedRelease:
    names: tuple[str, ...]  # alternatives, e.g. ("ingress-nginx-controller", "nginx-ingress-controller")
    namespace: str | None = None

    @classmethod
    def parse(cls, spec: str) -> ExpectedRelease:
        """`name[|alt...][@namespace]`"""
        names, _, ns = spec.partition("@")
        return cls(tuple(n.strip() for n in names.split("|") if n.strip()), ns.strip() or None)

    def label(self) -> str:
        return "|".join(self.names) + (f" in {self.namespace}" if self.namespace else "")

    def match(self, releases: Sequence[HelmRelease]) -> HelmRelease | None:
        for r in releases:
            if r.name in self.names and (self.namespace is None or r.namespace == self.namespace):
                return r
        return None


def judge_helm_releases(releases: Sequence[HelmRelease], expected: Sequence[ExpectedRelease]) -> Judgement:
    problems = []
    for exp in expected:
        if exp.match(releases) is None:
            problems.append(f"{exp.label()}: missing")
    for r in releases:
        if r.status != "deployed":
            detail = f" ({r.description})" if r.description else ""
            problems.append(f"{r.ref} revision {r.revision}: {r.status}{detail}")
    deployed = [r.ref for r in releases if r.status == "deployed"]
    observed = (f"{len(releases)} release(s), all deployed: {_names(deployed, 30)}" if not problems
                else f"{len(problems)} problem(s): {_names(problems, 10)}")
    return Judgement(
        ok=not problems, observed=observed,
        expected="deployed: " + ", ".join(e.label() for e in expected) + "; no release in another status",
        method="Helm 3 release secrets (GET /api/v1/secrets?labelSelector=owner=helm, type helm.sh/release.v1; "
               "latest revision, payload base64+gzip JSON)",
        message="; ".join(problems),
        evidence={"releases": {r.ref: {"revision": r.revision, "status": r.status, "chart":
                                       f"{r.chart}-{r.chart_version}" if r.chart else "",
                                       "description": r.description} for r in releases},
                  "expected": [e.label() for e in expected]},
    )


# ====================================================================== workloads


@dataclass(frozen=True)
class WorkloadFacts:
    kind: str
    namespace: str
    name: str
    desired: int
    ready: int
    release: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    host_network: bool = False

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


_WORKLOAD_KIND = {"deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}


def workload_from_json(kind: str, obj: JSON) -> WorkloadFacts:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    if kind == "DaemonSet":
        desired, ready = int(status.get("desiredNumberScheduled") or 0), int(status.get("numberReady") or 0)
    else:
        desired, ready = int(spec.get("replicas", 1) or 0), int(status.get("readyReplicas") or 0)
    ann = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    return WorkloadFacts(kind=kind, namespace=meta.get("namespace", ""), name=meta.get("name", "?"),
                         desired=desired, ready=ready,
                         release=ann.get("meta.helm.sh/release-name") or labels.get("app.kubernetes.io/instance")
                         or labels.get("release", ""), labels=dict(labels),
                         node_selector=dict(pod_spec.get("nodeSelector") or {}),
                         host_network=bool(pod_spec.get("hostNetwork")))


def workload_facts(api: KubeApi, timeout: float = DEFAULT_TIMEOUT,
                   kinds: Sequence[str] = ("deployments", "statefulsets", "daemonsets")) -> list[WorkloadFacts]:
    out = []
    for resource in kinds:
        out.extend(workload_from_json(_WORKLOAD_KIND[resource], o) for o in api.list(resource, timeout=timeout))
    return sorted(out, key=lambda w: (w.namespace, w.kind, w.name))


DEMO_DATASTORE_RELEASES = ("databases-ephemeral", "postgresql", "rabbitmq", "fake-aws")


def judge_datastores(workloads: Sequence[WorkloadFacts],
                     releases: Sequence[str] = DEMO_DATASTORE_RELEASES) -> Judgement:
    problems = []
    seen: dict[str, list[str]] = {}
    for rel in releases:
        mine = [w for w in workloads if w.release == rel]
        seen[rel] = [f"{w.ref} {w.ready}/{w.desired}" for w in mine]
        if not mine:
            problems.append(f"{rel}: no workloads of this release")
        for w in mine:
            if w.ready < w.desired or w.desired == 0:
                problems.append(f"{rel}: {w.ref} {w.ready}/{w.desired} ready")
    observed = ("all datastore workloads ready: " + "; ".join(f"{r}: {', '.join(v)}" for r, v in seen.items())
                if not problems else f"{len(problems)} problem(s): {_names(problems)}")
    return Judgement(
        ok=not problems, observed=observed,
        expected=f"workloads of releases {', '.join(releases)} present and fully ready",
        method="GET /apis/apps/v1/{deployments,statefulsets,daemonsets} (annotation meta.helm.sh/release-name; "
               "readyReplicas/numberReady)",
        message="; ".join(problems), evidence={"workloads": seen},
    )


# ====================================================================== cert-manager


@dataclass(frozen=True)
class CertificateFacts:
    namespace: str
    name: str
    ready: str  # "True" | "False" | "Unknown" | "missing"
    reason: str
    message: str
    dns_names: tuple[str, ...]
    not_after: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def certificate_facts(api: KubeApi, timeout: float = DEFAULT_TIMEOUT) -> list[CertificateFacts] | None:
    """cert-manager Certificates in all namespaces; None when the CRD is not installed."""
    try:
        objs = api.list("certificates", timeout=timeout)
    except KubeApiError as exc:
        if exc.status == 404:
            return None
        raise
    out = []
    for o in objs:
        meta, spec, status = _meta(o), o.get("spec") or {}, o.get("status") or {}
        cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        out.append(CertificateFacts(meta.get("namespace", ""), meta.get("name", "?"), cond.get("status", "missing"),
                                    cond.get("reason", ""), str(cond.get("message", ""))[:200],
                                    tuple(spec.get("dnsNames") or []), status.get("notAfter", "")))
    return sorted(out, key=lambda c: c.ref)


def judge_certificates(certs: Sequence[CertificateFacts] | None, cert_manager_expected: bool | None) -> Judgement:
    method = "GET /apis/cert-manager.io/v1/certificates (.status.conditions[type=Ready])"
    expected = "every cert-manager Certificate Ready=True"
    if certs is None or (not certs and not cert_manager_expected):
        why = "the cert-manager Certificate API is not installed" if certs is None else "no Certificate objects exist"
        if cert_manager_expected:
            return Judgement(False, why, expected + " (use_cert_manager is true)", method,
                             message=f"{why} although use_cert_manager is true")
        return Judgement(True, why, expected, method, message=f"cert-manager is not used: {why}", applicable=False)
    problems = [f"{c.ref} Ready={c.ready}" + (f" ({c.reason}: {c.message})" if c.reason or c.message else "")
                for c in certs if c.ready != "True"]
    if not certs:
        problems.append("no Certificate objects although use_cert_manager is true")
    observed = (f"all {len(certs)} Certificate(s) Ready: {_names(c.ref for c in certs)}" if not problems
                else f"{len(problems)} problem(s): {_names(problems)}")
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems),
                     evidence={"certificates": {c.ref: {"ready": c.ready, "reason": c.reason, "dnsNames":
                                                        list(c.dns_names), "notAfter": c.not_after} for c in certs}})


# ====================================================================== SFT placement


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


# ====================================================================== ingress / exposure


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


# ====================================================================== expected Helm releases


DEMO_RELEASES_DEFAULT = ("fake-aws", "smtp", "rabbitmq", "databases-ephemeral", "postgresql", "reaper",
                         "wire-server", "webapp", "account-pages", "team-settings", "ingress-nginx-controller",
                         "coturn", "sftd")
PRODUCTION_RELEASES_DEFAULT = ("databases-ephemeral", "reaper", "wire-server",
                               "ingress-nginx-controller|nginx-ingress-controller", "nginx-ingress-services",
                               "webapp", "account-pages")


def truthy(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def expected_releases(profile: str, site_vars: dict[str, Any], demo_default: Sequence[str] = DEMO_RELEASES_DEFAULT,
                      production_default: Sequence[str] = PRODUCTION_RELEASES_DEFAULT) -> list[ExpectedRelease]:
    """Releases that must exist: the demo inventory's `charts_to_deploy` (default namespace) plus
    cert-manager/nginx-ingress-services with `use_cert_manager`; production: the core set."""
    if profile == "demo":
        charts = site_vars.get("charts_to_deploy") or list(demo_default)
        out = [ExpectedRelease.parse(str(c) if "@" in str(c) else f"{c}@default") for c in charts]
        if truthy(site_vars.get("use_cert_manager")):
            out += [ExpectedRelease(("cert-manager",), "cert-manager-ns"),
                    ExpectedRelease(("nginx-ingress-services",), "default")]
        return out
    out = [ExpectedRelease.parse(s) for s in production_default]
    if truthy(site_vars.get("use_cert_manager")):
        out.append(ExpectedRelease(("cert-manager",), None))
    return out
