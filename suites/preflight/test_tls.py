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
    Assessment,
    assess_caa,
    assess_points_to,
    caa_policies,
    tcp_reachable,
)
from wirecheck.probes.tls import (
    assess_federation_cert,
    assess_pem,
    federation_summary,
    inspect_pem,
    pem_summary,
)


def conclude(result: Assessment, what: str, method: str, summary: str, expected: str) -> None:
    """The verdict of a TLS check: problems -> fail, unmeasured -> error, else pass with `summary`, a
    sentence; the structured observations go to the result's observed field and the evidence."""
    _conclude(result, what, method, summary, expected)


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
    names = _wire_names(site, domain)
    report = inspect_pem(cert_pem, key_pem, site.ca_bundle, names)
    result = assess_pem(report, names, site.ca_bundle)
    if key_pem is None:
        result.problems.append("no private key given (--tls-key): the key cannot be matched to the certificate")
    record(certificate=cert_path, key=key_path, key_type=report.key_type or None)
    method = (f"{cert_path}" + (f" and {key_path}" if key_path else "") + " read with cryptography; the chain "
              "verified per name with cryptography's X.509 path validation (Web PKI profile) against "
              f"{site.ca_bundle or 'the system trust store'} at the time of the run")
    conclude(result, "own certificate", method, pem_summary(report, names) if report.leaf else "",
             "the key matching the leaf and a chain clients accept for every name")


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
    first = min(report.chain, key=lambda cert: cert.not_after)  # the leaf or an intermediate in the file
    min_days = float(spec.get("min_days", 30))
    days = round(first.days_left(), 1)
    record(subject=first.subject, not_after=first.not_after.isoformat(),
           chain=[{"subject": cert.subject, "not_after": cert.not_after.isoformat()} for cert in report.chain],
           note="renewal is manual with own certificates: plan it before the date above")
    position = "the leaf" if first is report.chain[0] else "an intermediate in the file"
    expect(days, f"days left on {first.subject} ({position}, the first certificate of the file to expire, "
           f"on {first.not_after:%Y-%m-%d %H:%M} UTC)", method=f"notAfter of every certificate in {cert_path}",
           unit="days").at_least(min_days)


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
        account = site.vars.get("acme_account_uri")
        caa = assess_caa(policies.result(), spec.get("issuer", "letsencrypt.org"),
                         str(site.vars.get("acme_challenge") or "http-01"), str(account) if account else None)
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
    summary = (f"all {len(names)} names resolve to {wire_ip}, CAA lets {spec.get('issuer', 'letsencrypt.org')} "
               f"issue, and TCP {wire_ip}:{port} "
               + ("accepts connections" if how == "connected" else "refuses connections (nothing listens yet)"))
    conclude(result, "Let's Encrypt prerequisites", f"{lookups}; TCP connect {wire_ip}:{port}", summary,
             "the names on the ingress IP, CAA allowing the issuer, the HTTP-01 port reachable")


@requirement("TLS-FED-CERT")
def test_federation_certificate(site, spec):
    federation = _federation(site)
    if federation is None:
        not_applicable("federation is not enabled (federation_enabled in the inventory, or --federation)")
    _, infra = federation
    path = site.option("federation_cert") or site.vars.get("federation_cert_file")
    if not path:
        not_evaluated("the federator's client/server certificate is not given", option="--federation-cert")
    # Other backends verify it as a server certificate for the infrastructure domain (and as a client one)
    report = inspect_pem(_read(path, "--federation-cert"), None, site.ca_bundle, [infra])
    if report.error or report.leaf is None:
        cannot_measure(f"--federation-cert {path}: {report.error}")
    check = report.checks[infra]
    result = assess_federation_cert(
        report.leaf, infra, curve=spec.get("ec_curve", "secp256r1"),
        critical_days=float(spec.get("critical_days", 7)), warn_days=float(spec.get("warn_days", 30)),
        rsa_recommended_bits=int(spec.get("rsa_recommended_bits", 3000)), check=check,
    )  # fmt: skip
    record(certificate=path)
    method = (f"cryptography on {path}; the chain in the file verified for {infra} with cryptography's X.509 path "
              f"validation against {site.ca_bundle or 'the system trust store'} at the time of the run")
    conclude(result, "federation certificate", method, federation_summary(report.leaf, infra, check),
             "EKU serverAuth and clientAuth, the infrastructure domain in the SAN, a supported key, a chain "
             "clients accept, not expiring")
