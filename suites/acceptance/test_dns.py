"""DNS after install: the same record checks as before install (suites/preflight/test_dns.py holds
them; they run here again as acceptance gates), plus DMARC, which only matters once mail is sent."""

from __future__ import annotations

import importlib

from wirecheck import requirement

pre = importlib.import_module("suites.preflight.test_dns")


@requirement("DNS-DEMO-RECORDS")
def test_demo_records(site, spec):
    pre.test_demo_records(site, spec)


@requirement("DNS-PROD-CORE")
def test_prod_core(site, spec):
    pre.test_prod_core(site, spec)


@requirement("DNS-PROD-OPTIONAL")
def test_prod_optional(site, spec):
    pre.test_prod_optional(site, spec)


@requirement("DNS-SFTD")
def test_sftd(site, spec):
    pre.test_sftd(site, spec)


@requirement("DNS-RESTUND")
def test_restund(site, spec):
    pre.test_restund(site, spec)


@requirement("DNS-FED-SRV")
def test_federation_srv(site, spec):
    pre.test_federation_srv(site, spec)


@requirement("DNS-FED-A")
def test_federation_a(site, spec):
    pre.test_federation_a(site, spec)


@requirement("IMP-AAAA")
def test_no_stale_aaaa(site, spec):
    pre.test_no_stale_aaaa(site, spec)


@requirement("DNS-DMARC")
def test_dmarc(site, spec):
    domain = pre._domain(site)
    lookup = pre._lookup(site)
    owner = f"{spec.get('label', '_dmarc')}.{domain}"
    prefix = spec.get("prefix", "v=DMARC1")
    answer = lookup(owner, "TXT")
    method = pre._method(lookup, "TXT lookup")
    result = pre.Assessment(expected=f"one TXT record starting with {prefix} at {owner}")
    result.evidence[owner] = answer.evidence()
    records = [text for text in answer.texts if text.replace(" ", "").upper().startswith(prefix.upper())]
    result.observed = records or f"no DMARC record ({answer.status}; TXT: {answer.texts or 'none'})"
    example = f"`{owner}. IN TXT \"v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@{domain}; pct=100\"`"
    if answer.status in pre.UNMEASURED:
        result.unmeasured.append(f"{owner} TXT: {answer.status} ({answer.error})")
    elif not records:
        result.problems.append(f"no DMARC record at {owner} ({answer.error or 'TXT: ' + str(answer.texts)}): publish {example}")
    elif len(records) > 1:
        result.problems.append(f"{owner} has {len(records)} DMARC records {records} (receivers ignore all): keep one")
    pre._conclude(result, "DMARC", method)
