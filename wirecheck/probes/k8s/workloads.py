"""Workloads (Deployments, StatefulSets, DaemonSets) with the demo datastores, and cert-manager Certificates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .api import DEFAULT_TIMEOUT, JSON, KubeApi, KubeApiError
from .judgement import Judgement, _meta, _names


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
