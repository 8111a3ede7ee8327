"""TLS after install: the certificates the ingress serves on wire_ip, one handshake per name with SNI
(so this works before public DNS does), each chain verified for its name as a client does at the time of
the run (cryptography's X.509 path validation) against the system store or --ca-bundle.

The before-install checks of supplied certificates live in suites/preflight/test_tls.py; TLS-FED-CERT
runs from there again here.
"""

from __future__ import annotations

import importlib
from concurrent.futures import ThreadPoolExecutor

from wirecheck import cannot_measure, not_evaluated, record, requirement
from wirecheck.outcome import FAIL, Outcome, current
from wirecheck.probes.tls import (
    TlsProbeError,
    TlsReport,
    accepted_ciphers,
    assess_ciphers,
    assess_expiry,
    assess_served,
    ciphers_summary,
    expiry_summary,
    inspect_tls,
    offered_versions,
    served_summary,
)

pre = importlib.import_module("suites.preflight.test_tls")

# Used until the catalog carries these parameters (tls.md's table of recommended suites).
RECOMMENDED_VERSIONS = ["TLSv1.2", "TLSv1.3"]
RECOMMENDED_SUITES = [
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
]  # fmt: skip
WIRE_DEFAULT_SUITES = [
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
]  # fmt: skip
_REPORTS: dict[tuple, dict[str, TlsReport]] = {}


class CertificateDown(Outcome):
    """An expired or not-yet-valid certificate: the service is down, whatever the requirement's level."""

    status = FAIL


def _endpoint(site) -> tuple[str, int, float]:
    if not site.wire_ip:
        not_evaluated("the address the ingress serves on is not known", option="--wire-ip (or wire_ip)")
    port = int(site.option("tls_port") or 443)
    timeout = float(site.option("tls_timeout") or 5)
    return site.wire_ip, port, timeout


def _served(site) -> tuple[dict[str, TlsReport], str]:
    """One handshake per Wire name (in parallel, shared between the checks of a run)."""
    domain = pre._domain(site)
    address, port, timeout = _endpoint(site)
    names = pre._wire_names(site, domain)
    key = (address, port, timeout, site.ca_bundle, tuple(names))
    if key not in _REPORTS:
        with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
            reports = pool.map(lambda name: inspect_tls(address, port, name, site.ca_bundle, timeout), names)
            _REPORTS[key] = dict(zip(names, reports, strict=True))
    method = (f"TLS handshake with SNI per name to {address}:{port} (pyOpenSSL, timeout {timeout:g}s); the chain "
              "verified for the name with cryptography's X.509 path validation (Web PKI profile) against "
              f"{site.ca_bundle or 'the system trust store'} at the time of the run")
    return _REPORTS[key], method


@requirement("TLS-SAN")
def test_certificates_cover_names(site, spec):
    reports, method = _served(site)
    pre.conclude(assess_served(reports), "served certificates", method, served_summary(reports),
                 "a chain clients accept for every name")


@requirement("TLS-EXPIRY")
def test_certificate_expiry(site, spec):
    reports, method = _served(site)
    result, down = assess_expiry(reports, float(spec.get("warn_days", 30)), float(spec.get("critical_days", 14)))
    if down:
        evidence = current()
        evidence.observed, evidence.expected, evidence.method = result.observed, result.expected, method
        record(details=result.evidence)
        raise CertificateDown("; ".join(result.problems))
    pre.conclude(result, "days to expiry", method + "; notAfter of every certificate in the served chain",
                 expiry_summary(result), f">= {float(spec.get('warn_days', 30)):g} days for every certificate")


@requirement("TLS-CIPHERS")
def test_protocols_and_ciphers(site, spec):
    domain = pre._domain(site)
    address, port, timeout = _endpoint(site)
    sni = pre._wire_names(site, domain)[0]
    try:
        versions = offered_versions(address, port, sni, timeout)
        accepted = {
            version: accepted_ciphers(address, port, sni, version, timeout)
            for version, outcome in versions.items()
            if not outcome.startswith("rejected")
        }
    except TlsProbeError as exc:
        cannot_measure(f"TLS handshakes with {address}:{port} (SNI {sni}) failed: {exc}")
    result = assess_ciphers(
        versions, accepted, spec.get("versions", RECOMMENDED_VERSIONS), spec.get("suites", RECOMMENDED_SUITES),
        spec.get("wire_default_suites", WIRE_DEFAULT_SUITES),
    )  # fmt: skip
    method = (f"handshakes pinned to each protocol version to {address}:{port} (SNI {sni}); suites enumerated by "
              "offering all but those already accepted (pyOpenSSL, @SECLEVEL=0 so weak setups are seen)")
    pre.conclude(result, "TLS versions and suites", method, ciphers_summary(versions, accepted),
                 "only recommended versions and suites")


# preflight checks run again as acceptance gates: the same function, requirement and evidence
test_federation_certificate = pre.test_federation_certificate
