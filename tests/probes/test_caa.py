"""CAA as Let's Encrypt applies it (RFC 8659 with RFC 8657's parameters), against a real dnsmasq: each
restricting record next to its good twin, found by climbing from the Wire name to the owner."""

from __future__ import annotations

import pytest

from tests.support.dnsmasq import DnsmasqServer, wire_zone
from wirecheck.probes.dns import (
    CaaPolicy,
    DnsLookup,
    assess_caa,
    caa_policies,
    parse_issue_value,
    parse_nameserver,
)

DOMAIN = "wire.example.test"
LE = "letsencrypt.org"
ACCOUNT = "https://acme-v02.api.letsencrypt.org/acme/acct/123456"
OTHER_ACCOUNT = "https://acme-v02.api.letsencrypt.org/acme/acct/999"

# label -> (CAA records at <label>.DOMAIN, allowed for HTTP-01 with the account unknown, why-fragment)
CASES = {
    "plain": ([(0, "issue", LE)], True, f"allows {LE}"),
    "dns01-only": ([(0, "issue", f"{LE}; validationmethods=dns-01")], False,
                   "only with validation method(s) dns-01; cert-manager validates with http-01"),
    "http01-listed": ([(0, "issue", f"{LE}; validationmethods=dns-01,http-01")], True, "with http-01"),
    "bad-method-list": ([(0, "issue", f"{LE}; validationmethods=http-01,dns_01")], False, "is malformed"),
    "account": ([(0, "issue", f"{LE}; accounturi={ACCOUNT}")], None, f"only for the ACME account {ACCOUNT}"),
    "account-or-plain": ([(0, "issue", f"{LE}; accounturi={ACCOUNT}"), (0, "issue", LE)], True, f"allows {LE}"),
    "critical-unknown": ([(128, "tbs", "x"), (0, "issue", LE)], False, "critical flag on tag 'tbs'"),
    "flag1-unknown": ([(1, "tbs", "x"), (0, "issue", LE)], False, "critical flag on tag 'tbs'"),
    "critical-iodef": ([(128, "iodef", "mailto:sec@example.test"), (0, "issue", LE)], True, f"allows {LE}"),
    "noncritical-unknown": ([(0, "tbs", "x"), (0, "issue", LE)], True, f"allows {LE}"),
    "malformed-params": ([(0, "issue", f"{LE}; nonsense")], False, "is not tag=value"),
    "unknown-param": ([(0, "issue", f"{LE}; policy=ev")], True, f"allows {LE}"),
    "nobody": ([(0, "issue", ";")], False, "names no CA"),
    "other-ca": ([(0, "issue", "pki.goog"), (0, "iodef", "mailto:sec@example.test")], False, "names pki.goog"),
    "only-issuewild": ([(0, "issuewild", ";")], True, "no issue property"),
}


@pytest.fixture(scope="module")
def lookup():
    zone = wire_zone(DOMAIN, "127.0.0.1")
    zone.caa = {label: records for label, (records, _, _) in CASES.items()}
    with DnsmasqServer(zone, address="127.0.0.59") as server:
        yield DnsLookup([parse_nameserver(server.nameserver)], timeout=1, tries=1)


@pytest.mark.parametrize("label", list(CASES))
def test_each_record_against_its_twin(lookup, label):
    _records, allowed, why = CASES[label]
    name = f"webapp.{label}.{DOMAIN}"  # no CAA at the name itself: the set is found one level up
    policy = caa_policies([name], lookup)[name]
    assert policy.owner == f"{label}.{DOMAIN}"
    decision = policy.decide(LE)
    assert decision.allowed is allowed, decision
    assert why in decision.why


def test_account_restriction_is_decided_once_the_account_is_known(lookup):
    name = f"webapp.account.{DOMAIN}"
    policy = caa_policies([name], lookup)[name]
    assert policy.decide(LE, account_uri=ACCOUNT).allowed is True
    refused = policy.decide(LE, account_uri=OTHER_ACCOUNT)
    assert refused.allowed is False and f"cert-manager's account is {OTHER_ACCOUNT}" in refused.why
    # unknown account: not a pass, not a fail; the assessment says which input decides it
    result = assess_caa({name: policy}, LE)
    assert not result.problems and len(result.unmeasured) == 1
    assert "acme_account_uri" in result.unmeasured[0] and ACCOUNT in result.unmeasured[0]
    assert assess_caa({name: policy}, LE, account_uri=ACCOUNT).ok


def test_validation_methods_follow_the_challenge(lookup):
    name = f"webapp.dns01-only.{DOMAIN}"
    policy = caa_policies([name], lookup)[name]
    assert policy.decide(LE, challenge="dns-01").allowed is True
    result = assess_caa({name: policy}, LE)
    assert result.unmeasured == [] and len(result.problems) == 1
    assert "validationmethods=dns-01" in result.problems[0]
    assert f'add `dns01-only.{DOMAIN}. IN CAA 0 issue "{LE}"`' in result.problems[0]


def test_issuewild_governs_wildcards_only():
    policy = CaaPolicy(f"*.{DOMAIN}", DOMAIN, [f'0 issue "{LE}"', '0 issuewild ";"'])
    assert policy.decide(LE).allowed is True
    assert policy.decide(LE, wildcard=True).allowed is False
    plain = CaaPolicy(f"*.{DOMAIN}", DOMAIN, [f'0 issue "{LE}"'])
    assert plain.decide(LE, wildcard=True).allowed is True  # no issuewild: issue applies


def test_issue_value_grammar():
    assert parse_issue_value(f" {LE} ; accounturi=x ; validationmethods=http-01 ").parameters == {
        "accounturi": "x", "validationmethods": "http-01"}
    assert parse_issue_value(f"{LE};").parameters == {} and not parse_issue_value(f"{LE};").malformed
    assert parse_issue_value(";").issuer == ""
    assert parse_issue_value(f"{LE}; bad tag=x").malformed
    assert parse_issue_value(f"{LE}; a=b c").malformed  # a space inside a value
