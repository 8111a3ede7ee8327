"""TLS probe: what a check needs for a verdict on certificates and handshakes.

Everything works against an address rather than a name, so a certificate on `wire_ip`:443 can be
inspected before public DNS exists.  The handshake itself never verifies (weak keys, old protocols and
broken chains must be *reported*, not crash the probe); verification is done afterwards, per name and
at the time of the run, with cryptography's X.509 path validation (the Web PKI profile) against the
system store or a CA bundle, plus the RSA key size clients refuse.  When the library refuses a chain,
its reason is turned into a sentence naming the certificate; the RFC 6125 matching only explains a
refusal (which SANs the leaf has) and judges the federation certificate.

One module per job, this one on top and re-exporting the others' names (import from here):
- `tls_certs`: certificate facts (CertInfo) and RFC 6125 host name matching;
- `tls_verify`: chain verification for a name at a moment (ChainCheck, trust stores, weak keys);
- `tls_fetch`: handshakes, offered versions and ciphers, operator-supplied PEM files;
- here: the assessments (problems naming the certificate to change) and the pass sentences.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from wirecheck.probes.dns import Assessment

from .tls_certs import EKU_CLIENT, EKU_SERVER, CertInfo, cert_info, hostname_matches, matching_san
from .tls_fetch import (
    CERTIFICATE_CIPHERS,
    DEFAULT_TIMEOUT,
    PERMISSIVE_CIPHERS,
    TLS13_SUITES,
    VERSIONS,
    Handshake,
    PemBundleReport,
    TlsProbeError,
    TlsReport,
    accepted_ciphers,
    chain_evidence,
    handshake,
    inspect_pem,
    inspect_tls,
    offered_versions,
)
from .tls_verify import (
    MIN_RSA_BITS,
    WEAK_HASHES,
    ChainCheck,
    TrustStoreError,
    _date,
    _role,
    trust_store,
    verify_for_name,
    weak_keys,
)

__all__ = [  # this module's names and those of the modules it re-exports
    "CERTIFICATE_CIPHERS", "CertInfo", "ChainCheck", "DEFAULT_TIMEOUT", "EKU_CLIENT", "EKU_SERVER",
    "Handshake", "MIN_RSA_BITS", "PERMISSIVE_CIPHERS", "PemBundleReport", "TLS13_SUITES",
    "TlsProbeError", "TlsReport", "TrustStoreError", "VERSIONS", "WEAK_HASHES", "accepted_ciphers",
    "assess_ciphers", "assess_expiry", "assess_federation_cert", "assess_pem", "assess_served",
    "cert_info", "chain_evidence", "ciphers_summary", "expiry_summary", "federation_summary",
    "handshake", "hostname_matches", "inspect_pem", "inspect_tls", "matching_san", "merge_by_names",
    "offered_versions", "pem_summary", "served_summary", "trust_store", "verify_for_name", "weak_keys",
]

# --------------------------------------------------------------------------------------------------
# Assessments: what a check needs for a verdict (problems name the certificate to change)


def merge_by_names(per_name: dict[str, list[str]], every: Sequence[str]) -> list[str]:
    """Sentences that hold for several names said once, prefixed by those names ("for every name" when all)."""
    holders: dict[str, list[str]] = {}
    for name, sentences in per_name.items():
        for sentence in sentences:
            holders.setdefault(sentence, []).append(name)
    merged = []
    for sentence, names in holders.items():
        if len(every) > 1 and sorted(names) == sorted(every):
            merged.append(f"for every name: {sentence}")
        else:
            merged.append(f"{', '.join(names)}: {sentence}")
    return merged


def _coverage_note(check: ChainCheck, leaf: CertInfo, name: str) -> list[str]:
    """When cryptography refused the chain for another reason first, whether the SANs would cover the name
    (RFC 6125), so that one run names every fix."""
    if not check.refused or "subjectAltName" in check.library_reason or leaf.covers(name):
        return []
    return [f"besides, the leaf's SANs ({', '.join(leaf.sans) or 'none'}) do not cover {name}: reissue it with {name}"]


def _verification_outcome(
    checks: dict[str, ChainCheck], per_name: dict[str, list[str]], result: Assessment, every: Sequence[str]
) -> None:
    refused: dict[str, list[str]] = {}
    for name, check in checks.items():
        if check.unmeasured:
            result.unmeasured.append(f"{name}: {check.unmeasured}")
        elif per_name.get(name):
            refused[name] = per_name[name]
    result.problems += merge_by_names(refused, every)


def assess_served(reports: dict[str, TlsReport]) -> Assessment:
    """TLS-SAN: for each name, the chain served with that SNI verifies for the name as a client's would."""
    result = Assessment(expected="for each name, the chain served with its SNI verified for the name (cryptography's "
                                 "X.509 path validation at the time of the run) with keys clients accept")  # fmt: skip
    observed: dict[str, str] = {}
    checks: dict[str, ChainCheck] = {}
    per_name: dict[str, list[str]] = {}
    for name, report in reports.items():
        result.evidence[name] = report.evidence()
        if report.error:
            observed[name] = "no certificate"
            result.unmeasured.append(f"{name}: TLS handshake with {report.address}:{report.port} failed: {report.error}")
            continue
        assert report.check is not None
        checks[name] = report.check
        observed[name] = "verified" if report.verified else "refused" if report.check.refused else "not verified"
        assert report.leaf is not None
        per_name[name] = report.check.problems + _coverage_note(report.check, report.leaf, name)
    _verification_outcome(checks, per_name, result, list(reports))
    result.observed = observed
    return result


def _chain_expiry(chain: Sequence[CertInfo]) -> tuple[int, CertInfo]:
    """(position, certificate) of the certificate that expires first."""
    index = min(range(len(chain)), key=lambda i: chain[i].not_after)
    return index, chain[index]


def assess_expiry(
    reports: dict[str, TlsReport], warn_days: float, critical_days: float, now: dt.datetime | None = None
) -> tuple[Assessment, bool]:
    """TLS-EXPIRY: days left per distinct served chain, for every certificate in it (the leaf and the
    intermediates sent) -> (assessment, down: a certificate in the chain expired or not yet valid)."""
    now = now or dt.datetime.now(dt.UTC)
    result = Assessment(expected=f"every certificate of the served chain valid for >= {warn_days:g} more days")
    down = False
    seen: dict[tuple[str, ...], list[str]] = {}
    chains: dict[tuple[str, ...], list[CertInfo]] = {}
    for name, report in reports.items():
        if report.error:
            result.unmeasured.append(f"{name}: TLS handshake with {report.address}:{report.port} failed: {report.error}")
            continue
        key = tuple(cert.sha256 for cert in report.chain_sent)
        seen.setdefault(key, []).append(name)
        chains[key] = report.chain_sent
    observed: dict[str, object] = {}
    for key, chain in chains.items():
        names = ", ".join(seen[key])
        index, first = _chain_expiry(chain)
        days = first.days_left(now)
        who = f"{_role(index, len(chain))} ({first.subject})"
        observed[names] = round(days, 1)
        result.evidence[names] = {
            "earliest_expiry": {"position": _role(index, len(chain)), "subject": first.subject,
                                "not_after": first.not_after.isoformat(), "days_left": round(days, 1)},
            "chain_sent": chain_evidence(chain, now),
        }  # fmt: skip
        dated = [(i, cert) for i, cert in enumerate(chain) if cert.validity(now) != "valid"]
        for i, cert in dated:
            down = True
            state = (f"expired on {_date(cert.not_after)} ({-cert.days_left(now):.1f} days ago)"
                     if cert.validity(now) == "expired" else f"is not valid before {_date(cert.not_before)}")  # fmt: skip
            result.problems.append(
                f"in the chain served for {names}, {_role(i, len(chain))} ({cert.subject}) {state}, so clients refuse "
                f"it: {'renew it' if i == 0 else 'serve the current intermediate from your CA'}"
            )
        if not dated and days < warn_days:
            level = "critical" if days < critical_days else "warning"
            limit = critical_days if days < critical_days else warn_days
            fix = "renew it" if index == 0 else "serve the CA's current intermediate (or renew so that it is sent)"
            result.problems.append(
                f"in the chain served for {names}, {who} expires first, on {_date(first.not_after)}, in {days:.1f} "
                f"days ({level}: under {limit:g} days): {fix}"
            )
    result.observed = observed
    return result, down


def assess_ciphers(
    versions: dict[str, str],
    accepted: dict[str, list[str]],
    allowed_versions: Sequence[str],
    allowed_suites: Sequence[str],
    wire_default: Sequence[str] = (),
) -> Assessment:
    """TLS-CIPHERS: only the recommended protocol versions and suites are accepted."""
    result = Assessment(expected={"versions": list(allowed_versions), "suites": list(allowed_suites)})
    offered = [version for version, outcome in versions.items() if not outcome.startswith("rejected")]
    result.observed = {"versions": offered, "suites": accepted}
    result.evidence["versions"] = versions
    result.evidence["accepted_suites"] = accepted
    extra_versions = [version for version in offered if version not in allowed_versions]
    if extra_versions:
        result.problems.append(
            f"the server accepts {', '.join(extra_versions)} (allowed: {', '.join(allowed_versions)}): "
            "set ssl-protocols in the ingress-nginx-controller values"
        )
    outside = sorted({suite for suites in accepted.values() for suite in suites if suite not in allowed_suites})
    if outside:
        result.problems.append(
            f"the server accepts suites outside the recommended list: {', '.join(outside)}: "
            "set ssl-ciphers in the ingress-nginx-controller values"
        )
    if wire_default:
        enabled = [suite for suite in wire_default if any(suite in suites for suites in accepted.values())]
        result.evidence["wire_default_suites_enabled"] = enabled
    return result


def assess_pem(report: PemBundleReport, names: Sequence[str], ca_bundle: str | None) -> Assessment:
    """TLS-BYO-CERT: the key matches and, for every name, the bundle verifies as a client would verify it."""
    result = Assessment(expected="the key matching the leaf; for every name, the chain in the file verified for it "
                                 "(cryptography's X.509 path validation at the time of the run) with keys clients "
                                 "accept; certificates in order")  # fmt: skip
    if report.error:
        result.problems.append(report.error)
        return result
    assert report.leaf is not None
    leaf = report.leaf
    result.evidence["chain_in_file"] = chain_evidence(report.chain)
    result.evidence["verification"] = {name: check.evidence() for name, check in report.checks.items()}
    missing = [name for name in names if not leaf.covers(name)]
    verified = [name for name, check in report.checks.items() if check.ok and not check.problems]
    result.observed = {
        "key_matches": report.key_matches,
        "verified": verified,
        "refused": [name for name, check in report.checks.items() if check.refused],
        "not_covered": missing,
    }
    if report.key_error:
        result.problems.append(f"private key: {report.key_error}")
    per_name = {name: check.problems + _coverage_note(check, leaf, name) for name, check in report.checks.items()}
    _verification_outcome(report.checks, per_name, result, names)
    if not report.order_ok:
        result.problems.append("certificates in the file are not in order (leaf first, each followed by its issuer)")
    return result


def assess_federation_cert(
    leaf: CertInfo, infra_domain: str, curve: str, critical_days: float, warn_days: float,
    rsa_recommended_bits: int, now: dt.datetime | None = None, check: ChainCheck | None = None,
) -> Assessment:  # fmt: skip
    """TLS-FED-CERT: EKU server+client auth, infra domain in the SAN, P-256 for EC, not about to expire; with
    `check` (the file's chain verified for the infrastructure domain) also a chain other backends accept."""
    result = Assessment(expected=f"EKU serverAuth+clientAuth, SAN covering {infra_domain}, EC {curve} or RSA"
                                 + (", a chain clients accept" if check else ""))  # fmt: skip
    result.evidence.update(leaf.evidence())
    result.evidence["extended_key_usage"] = leaf.extended_key_usage
    days = leaf.days_left(now)
    result.observed = {"eku": leaf.extended_key_usage, "sans": leaf.sans, "key": leaf.key_text, "days_left": round(days, 1)}
    reason = check.library_reason if check else ""
    if check is not None:
        result.evidence["verification"] = check.evidence()
        result.observed["chain"] = "verified" if check.ok and not check.problems else "refused" if check.refused else "not verified"  # type: ignore[index]
        if check.unmeasured:
            result.unmeasured.append(check.unmeasured)
        result.problems += check.problems
    needed = (EKU_CLIENT,) if "EKU" in reason else (EKU_SERVER, EKU_CLIENT)  # serverAuth named by the library
    missing_eku = [usage for usage in needed if usage not in leaf.extended_key_usage]
    if missing_eku:
        result.problems.append(
            f"extended key usage lacks {', '.join(missing_eku)} (has: {', '.join(leaf.extended_key_usage) or 'none'}): "
            "reissue with TLS Web Server and Client Authentication"
        )
    if "subjectAltName" not in reason and not leaf.covers(infra_domain):
        result.problems.append(
            f"the SAN ({', '.join(leaf.sans) or 'none'}) does not cover the infrastructure domain {infra_domain}: reissue"
        )
    if leaf.key_type == "EC" and leaf.curve != curve:
        result.problems.append(f"EC key on {leaf.curve}; federation needs {curve} (P-256): reissue")
    elif leaf.key_type == "RSA" and leaf.key_bits <= rsa_recommended_bits:
        result.notes.append(f"RSA {leaf.key_bits}: more than {rsa_recommended_bits} bits is recommended")
    elif leaf.key_type not in ("EC", "RSA"):
        result.problems.append(f"{leaf.key_type} key: federation supports EC {curve} or RSA")
    if leaf.validity(now) != "valid":
        if "not valid at validation time" not in reason:
            result.problems.append(f"the certificate is {leaf.validity(now)} (until {leaf.not_after:%Y-%m-%d %H:%M} UTC): renew it")
    elif days < critical_days:
        result.problems.append(f"the certificate expires in {days:.1f} days ({leaf.not_after:%Y-%m-%d}; critical under {critical_days:g}): renew it")
    elif days < warn_days:
        result.notes.append(f"the certificate expires in {days:.1f} days (warning under {warn_days:g})")
    return result


# --------------------------------------------------------------------------------------------------
# Pass sentences: what was measured, said once (the structured data stays in the evidence)


def _names_text(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"all {len(names)} names ({', '.join(names)})"


def served_summary(reports: dict[str, TlsReport]) -> str:
    checks = [report.check for report in reports.values() if report.check]
    store = checks[0].store if checks else "the trust store"
    at = _date(checks[0].at) if checks else "the time of the run"
    protocols = sorted({report.protocol for report in reports.values() if report.protocol})
    return (f"the chain served with the SNI of each name verifies for that name, for {_names_text(list(reports))}, "
            f"against {store} at {at} (cryptography's X.509 path validation: dates of every certificate, signature "
            f"algorithms, serverAuth usage, the name in the SAN), with keys clients accept, over {', '.join(protocols)}")


def expiry_summary(result: Assessment) -> str:
    parts = []
    for names, data in result.evidence.items():
        first = data["earliest_expiry"]  # type: ignore[index]
        parts.append(f"the chain served for {names} is valid for {first['days_left']:.1f} more days (the first "  # type: ignore[index]
                     f"certificate to expire is {first['position']}, {first['subject']}, on "  # type: ignore[index]
                     f"{dt.datetime.fromisoformat(first['not_after']):%Y-%m-%d})")  # type: ignore[index]
    return "; ".join(parts)


def ciphers_summary(versions: dict[str, str], accepted: dict[str, list[str]]) -> str:
    offered = [version for version, outcome in versions.items() if not outcome.startswith("rejected")]
    suites = sorted({suite for found in accepted.values() for suite in found})
    return (f"the server accepts {', '.join(offered) or 'no version'} with the suites {', '.join(suites) or 'none'}, "
            "all of them recommended")


def pem_summary(report: PemBundleReport, names: Sequence[str]) -> str:
    assert report.leaf is not None
    checks = list(report.checks.values())
    store = checks[0].store if checks else "the trust store"
    key = "the private key matches it and " if report.key_matches else ""
    return (f"the certificate {report.leaf.subject} ({report.leaf.key_text}, valid until "
            f"{_date(report.leaf.not_after)}): {key}its chain in the file verifies for {_names_text(list(names))} "
            f"against {store} at {_date(checks[0].at) if checks else 'the time of the run'}")


def federation_summary(leaf: CertInfo, infra_domain: str, check: ChainCheck | None = None) -> str:
    chain = f", and the chain in the file verifies for {infra_domain} against {check.store}" if check else ""
    return (f"the certificate {leaf.subject} has extended key usage {', '.join(leaf.extended_key_usage)}, covers "
            f"{infra_domain} by its SAN, has a {leaf.key_text} key and is valid until {_date(leaf.not_after)} "
            f"({leaf.days_left():.1f} days){chain}")
