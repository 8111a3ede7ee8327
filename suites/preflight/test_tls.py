"""TLS certificates before install (planning.md › What you need; helm-prod.md › How to direct traffic
to your cluster; configure-federation.md › Generate and configure TLS server and client certificates).

With cert-manager (the demo default) the prerequisites of Let's Encrypt's HTTP-01 challenge are
checked: public DNS on wire_ip, TCP 80, CAA.  With your own certificate (--tls-cert/--tls-key) the
PEM files are checked before they are installed: key matches, chain complete, names covered, dates.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# one DNS answer cache for the whole run, shared with the DNS checks
from suites.preflight.test_dns import _conclude, _domain, _federation, _lookup, _wire_ip, _wire_names
from wirecheck import cannot_measure, expect, not_applicable, not_evaluated, record, requirement
from wirecheck.probes.dns import (
    assess_caa,
    assess_points_to,
    caa_policies,
    tcp_reachable,
)
from wirecheck.probes.tls import assess_federation_cert, assess_pem, inspect_pem


def _read(path: str | None, option: str) -> bytes:
    if not path:
        raise AssertionError("no path")  # callers check first
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        cannot_measure(f"{option} {path}: cannot read: {exc.strerror or exc}")
    raise AssertionError("unreachable")


def _byo_paths(site) -> tuple[str | None, str | None]:
    return (site.option("tls_cert") or site.vars.get("tls_cert_file"),
            site.option("tls_key") or site.vars.get("tls_key_file"))


@requirement("TLS-BYO-CERT")
def test_own_certificate(site, spec):
    cert_path, key_path = _byo_paths(site)
    if not cert_path:
        if site.use_cert_manager:
            not_applicable("cert-manager issues the certificates (use_cert_manager: true); no own certificate given")
        not_evaluated("use_cert_manager is false, so your own certificate is needed before install",
                      option="--tls-cert and --tls-key (PEM files)")
    domain = _domain(site)
    cert_pem = _read(cert_path, "--tls-cert")
    key_pem = _read(key_path, "--tls-key") if key_path else None
    report = inspect_pem(cert_pem, key_pem, site.ca_bundle)
    result = assess_pem(report, _wire_names(site, domain), site.ca_bundle)
    if key_pem is None:
        result.problems.append("no private key given (--tls-key): the key cannot be matched to the certificate")
    record(certificate=cert_path, key=key_path, key_type=report.key_type or None)
    _conclude(result, "certificate bundle", f"cryptography/pyOpenSSL on {cert_path}"
              + (f" and {key_path}" if key_path else "") + f"; trust store {site.ca_bundle or 'system'}")


@requirement("IMP-CERT-HORIZON")
def test_certificate_horizon(site, spec):
    cert_path, _ = _byo_paths(site)
    if not cert_path:
        if site.use_cert_manager:
            not_applicable("cert-manager issues and renews the certificates")
        not_evaluated("no own certificate given", option="--tls-cert")
    report = inspect_pem(_read(cert_path, "--tls-cert"))
    if report.error or report.leaf is None:
        cannot_measure(f"--tls-cert {cert_path}: {report.error}")
    leaf = report.leaf
    min_days = float(spec.get("min_days", 30))
    days = round(leaf.days_left(), 1)
    record(subject=leaf.subject, not_after=leaf.not_after.isoformat(),
           note="renewal is manual with own certificates: plan it before the date above")
    expect(days, f"days left on {leaf.subject} (until {leaf.not_after:%Y-%m-%d %H:%M} UTC)",
           method=f"notAfter of {cert_path}", unit="days").at_least(min_days)


@requirement("TLS-ACME-PREREQ")
def test_acme_prerequisites(site, spec):
    if not site.use_cert_manager:
        not_applicable("cert-manager is not used (use_cert_manager: false)")
    domain = _domain(site)
    wire_ip = _wire_ip(site, "the public IP the names must resolve to")   # wire_ip "": as Wire's playbook finds it
    lookup = _lookup(site)
    names = _wire_names(site, domain)
    with ThreadPoolExecutor(max_workers=2) as pool:  # both at once: a dead resolver costs one timeout
        addresses = pool.submit(lookup.many, names, "A")
        policies = pool.submit(caa_policies, names, lookup)
        result = assess_points_to(addresses.result(), {wire_ip})
        caa = assess_caa(policies.result(), spec.get("issuer", "letsencrypt.org"))
    result.problems += caa.problems
    result.unmeasured += caa.unmeasured
    result.evidence = {"dns": result.evidence, "caa": caa.evidence}
    port = int(site.option("http_port") or 80)
    timeout = float(spec.get("connect_timeout_s", 5))
    reachable, how = tcp_reachable(wire_ip, port, timeout)
    result.evidence[f"tcp {wire_ip}:{port}"] = how
    if not reachable and how == "refused":
        result.notes.append(f"TCP {wire_ip}:{port} refused: nothing listens yet (expected before install); "
                            "NET-PORT-TCP-80 proves the port is open with a temporary listener")
    elif not reachable:
        result.problems.append(f"TCP {wire_ip}:{port} {how} (filtered?): Let's Encrypt's HTTP-01 challenge "
                               f"needs port {port} reachable from the internet")
    result.observed = {"names": result.observed, "caa": caa.observed, f"tcp/{port}": how}
    result.expected = {"names": f"all resolve to {wire_ip}", "caa": caa.expected,
                       f"tcp/{port}": "reachable (connected, or refused before install)"}
    lookups = f"dnspython A and CAA lookups via {lookup.resolvers_text}"
    _conclude(result, "Let's Encrypt prerequisites", f"{lookups}; TCP connect {wire_ip}:{port}")


@requirement("TLS-FED-CERT")
def test_federation_certificate(site, spec):
    federation = _federation(site)
    if federation is None:
        not_applicable("federation is not enabled (federation_enabled in the inventory, or --federation)")
    _, infra = federation
    path = site.option("federation_cert") or site.vars.get("federation_cert_file")
    if not path:
        not_evaluated("the federator's client/server certificate is not given", option="--federation-cert")
    report = inspect_pem(_read(path, "--federation-cert"))
    if report.error or report.leaf is None:
        cannot_measure(f"--federation-cert {path}: {report.error}")
    result = assess_federation_cert(
        report.leaf, infra, curve=spec.get("ec_curve", "secp256r1"),
        critical_days=float(spec.get("critical_days", 7)), warn_days=float(spec.get("warn_days", 30)),
        rsa_recommended_bits=int(spec.get("rsa_recommended_bits", 3000)),
    )  # fmt: skip
    record(certificate=path)
    _conclude(result, "federation certificate", f"cryptography on {path}")
