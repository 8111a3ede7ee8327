"""Helm releases read from their storage Secrets (owner=helm), and the releases a profile expects."""

from __future__ import annotations

import base64
import binascii
import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .api import DEFAULT_TIMEOUT, JSON, KubeApi
from .judgement import Judgement, _meta, _names

HELM_SECRET_TYPE = "helm.sh/release.v1"


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
