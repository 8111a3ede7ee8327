"""Federation in the values: the federation domain (FED-DOMAIN), the CA bundle federators trust
(FED-CA-TRUST) and the RabbitMQ federation needs (FED-RABBITMQ).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from ..k8s import (
    Judgement,
    WorkloadFacts,
)
from ..k8s.judgement import _names
from .values import ValuesSource, _missing_wire_server, dig, is_placeholder, truthy

# ====================================================================== FED-DOMAIN

FED_DOMAIN_PATHS = ("galley.config.settings.federationDomain", "brig.config.optSettings.setFederationDomain",
                    "cargohold.config.settings.federationDomain")
FED_ENABLE_PATHS = ("brig.config.enableFederation", "galley.config.enableFederation",
                    "cargohold.config.enableFederation", "background-worker.config.enableFederation")


def federation_in_values(src: ValuesSource) -> bool:
    ws = src.get("wire-server") or {}
    return truthy(dig(ws, "tags.federator", False)) or any(truthy(dig(ws, p, False)) for p in FED_ENABLE_PATHS)


def judge_federation_domain(src: ValuesSource, federating: bool, infra_domain: str | None = None,
                            expected_domain: str | None = None) -> Judgement:
    method = f"{src.method}: {', '.join(FED_DOMAIN_PATHS)}"
    expected = "federationDomain set, identical in galley, brig and cargohold, not example.com"
    if federating:
        expected += "; enableFederation in brig, galley, cargohold, background-worker; tags.federator; " \
                    "nginx-ingress-services federator.enabled and config.dns.federator"
    missing = _missing_wire_server(src, expected, method)
    if missing:
        return missing
    ws = src.get("wire-server") or {}
    seen = {p: dig(ws, p) for p in FED_DOMAIN_PATHS}
    problems = [f"{p} is not set" for p, v in seen.items() if is_placeholder(v)]
    values = {str(v).strip().lower() for v in seen.values() if not is_placeholder(v)}
    if len(values) > 1:
        problems.append("federationDomain differs: " + "; ".join(f"{p}={v}" for p, v in seen.items()))
    domain = next(iter(values)) if len(values) == 1 else None
    if domain and (domain == "example.com" or domain.endswith(".example.com")):
        problems.append(f"federationDomain is still the docs' placeholder {domain}")
    if domain and expected_domain and domain != expected_domain.lower() and not domain.endswith(
            "." + expected_domain.lower()) and not expected_domain.lower().endswith("." + domain):
        problems.append(f"federationDomain {domain} is unrelated to the site domain {expected_domain}")
    if federating:
        off = [p for p in FED_ENABLE_PATHS if not truthy(dig(ws, p, False))]
        if off:
            problems.append("federating, but enableFederation is not true in " + ", ".join(off))
        if not truthy(dig(ws, "tags.federator", False)):
            problems.append("federating, but wire-server tags.federator is not true")
        nis = src.get("nginx-ingress-services")
        if nis is None:
            problems.append("federating, but no nginx-ingress-services values found")
        else:
            if not truthy(dig(nis, "federator.enabled", False)):
                problems.append("nginx-ingress-services federator.enabled is not true")
            dns = dig(nis, "config.dns.federator")
            if is_placeholder(dns):
                problems.append("nginx-ingress-services config.dns.federator is not set")
            elif infra_domain and str(dns).lower() != infra_domain.lower():
                problems.append(f"nginx-ingress-services config.dns.federator is {dns}, expected {infra_domain}")
    observed = "; ".join(f"{p}={seen[p]!s}" for p in FED_DOMAIN_PATHS)
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems),
                     evidence={"federation_domain": domain, "federating": federating, "source": src.where})


# ====================================================================== FED-CA-TRUST


def pem_fingerprints(bundle: Any) -> tuple[set[str], list[str]]:
    """SHA-256 fingerprints of the certificates in a PEM bundle, and parse problems."""
    from cryptography import x509

    if not isinstance(bundle, str) or "BEGIN CERTIFICATE" not in bundle:
        return set(), []
    fps, problems = set(), []
    for block in re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", bundle, re.S):
        try:
            cert = x509.load_pem_x509_certificate(block.encode())
        except ValueError as exc:
            problems.append(f"unparsable certificate ({exc})")
            continue
        fps.add(hashlib.sha256(cert.public_bytes(_der())).hexdigest()[:16])
    return fps, problems


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def judge_federation_ca_trust(src: ValuesSource) -> Judgement:
    method = (f"{src.method}: nginx-ingress-services secrets.tlsClientCA vs wire-server federator.remoteCAContents "
              "(certificate SHA-256 sets), tls.verify_depth, brig.config.optSettings.setFederationStrategy")
    expected = ("the same non-empty CA set in tlsClientCA and remoteCAContents; verify_depth >= 1; "
                "setFederationStrategy allowAll or allowDynamic")
    missing = _missing_wire_server(src, expected, method)
    if missing:
        return missing
    ws = src.get("wire-server") or {}
    nis = src.get("nginx-ingress-services") or {}
    problems: list[str] = []
    ingress_cas, p1 = pem_fingerprints(dig(nis, "secrets.tlsClientCA"))
    federator_cas, p2 = pem_fingerprints(dig(ws, "federator.remoteCAContents"))
    problems += [f"tlsClientCA: {p}" for p in p1] + [f"remoteCAContents: {p}" for p in p2]
    if not src.has("nginx-ingress-services"):
        problems.append("no nginx-ingress-services values found")
    if not ingress_cas:
        problems.append("nginx-ingress-services secrets.tlsClientCA holds no CA certificate")
    if not federator_cas:
        problems.append("wire-server federator.remoteCAContents holds no CA certificate")
    if ingress_cas and federator_cas and ingress_cas != federator_cas:
        problems.append(f"the CA sets differ: only in tlsClientCA {_names(sorted(ingress_cas - federator_cas))}; "
                        f"only in remoteCAContents {_names(sorted(federator_cas - ingress_cas))}")
    depth = dig(nis, "tls.verify_depth", 1)
    try:
        depth_n = int(depth)
        if depth_n < 1:
            problems.append(f"tls.verify_depth is {depth_n}, need >= 1")
    except (TypeError, ValueError):
        problems.append(f"tls.verify_depth {depth!r} is not a number")
    strategy = dig(ws, "brig.config.optSettings.setFederationStrategy", "allowNone")
    if strategy not in ("allowAll", "allowDynamic"):
        problems.append(f"brig setFederationStrategy is {strategy} (allowNone disables federation)")
    observed = (f"tlsClientCA {len(ingress_cas)} CA(s), remoteCAContents {len(federator_cas)} CA(s), "
                f"verify_depth {depth}, strategy {strategy}")
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems),
                     evidence={"tlsClientCA": sorted(ingress_cas), "remoteCAContents": sorted(federator_cas),
                               "verify_depth": depth, "strategy": strategy})


# ====================================================================== FED-RABBITMQ


def judge_rabbitmq(src: ValuesSource, workloads: Sequence[WorkloadFacts], rmq_hosts: Sequence[str],
                   min_nodes: int = 3, hosts_measured: bool = False) -> Judgement:
    """The Kubernetes side: a rabbitmq StatefulSet's readiness, else the external [rmq-cluster] (whose
    brokers are judged on their hosts when hosts_measured; never from their names alone), and the secrets."""
    method = (f"GET /apis/apps/v1/statefulsets (release rabbitmq), inventory [rmq-cluster]; {src.method}: "
              "brig/background-worker secrets.rabbitmq")
    expected = (f"a ready rabbitmq StatefulSet or an external [rmq-cluster] of >= {min_nodes} hosts; the same "
                "non-default password in brig and background-worker")
    problems = []
    rmq = [w for w in workloads if w.release == "rabbitmq" or w.name.startswith("rabbitmq")]
    if rmq:
        for w in rmq:
            if w.ready < w.desired or w.desired == 0:
                problems.append(f"{w.ref} has {w.ready}/{w.desired} ready")
        where = "; ".join(f"{w.ref} {w.ready}/{w.desired}" for w in rmq)
    elif rmq_hosts:
        where = f"external [rmq-cluster] {', '.join(rmq_hosts)}" + (
            " (its brokers measured with rabbitmqctl on those hosts)" if hosts_measured else "")
        if len(rmq_hosts) < min_nodes and not hosts_measured:
            problems.append(f"[rmq-cluster] has {len(rmq_hosts)} host(s), need >= {min_nodes}")
    else:
        where = "no rabbitmq workload, no [rmq-cluster] hosts"
        problems.append("RabbitMQ is neither running in the cluster nor declared as [rmq-cluster]")
    ws = src.get("wire-server") or {}
    b, w = dig(ws, "brig.secrets.rabbitmq.password"), dig(ws, "background-worker.secrets.rabbitmq.password")
    if is_placeholder(b) or is_placeholder(w):
        problems.append("RabbitMQ password missing in brig or background-worker secrets")
    elif b != w:
        problems.append("brig and background-worker have different RabbitMQ passwords")
    elif str(b) == "guest" or str(dig(ws, "brig.config.rabbitmq.username", "")) == "guest":
        problems.append("RabbitMQ uses the default guest credentials")
    return Judgement(ok=not problems, observed=where, expected=expected, method=method,
                     message="; ".join(problems))
