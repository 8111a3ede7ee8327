"""DNS after install: the same record checks as before install (suites/preflight/test_dns.py holds
them; they run here again as acceptance gates), plus DMARC, which only matters once mail is sent."""

from __future__ import annotations

import importlib

from wirecheck import requirement

pre = importlib.import_module("suites.preflight.test_dns")


# preflight checks run again as acceptance gates: the same function, requirement and evidence
test_demo_records = pre.test_demo_records
test_prod_core = pre.test_prod_core
test_prod_optional = pre.test_prod_optional
test_sftd = pre.test_sftd
test_restund = pre.test_restund
test_federation_srv = pre.test_federation_srv
test_federation_a = pre.test_federation_a
test_no_stale_aaaa = pre.test_no_stale_aaaa


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
