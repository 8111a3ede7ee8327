"""SPF: pyspf's RFC 7208 evaluation through our resolver against a real dnsmasq; containment, not substrings;
include/redirect/exists/macros and the lookup limits, each both ways."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.dnsmasq import DnsmasqServer, SilentResolver, wire_zone
from wirecheck.probes.dns import Answer, DnsLookup, parse_nameserver
from wirecheck.probes.spf import effective_all, is_spf, parse_spf, spf_authorizes

DOMAIN = "wire.example.test"
WIRE_IP = "127.0.0.1"


def no_dns(name: str, rdtype: str) -> Answer:
    """ip4/ip6-only records must not query DNS: any query is an unmeasured answer (temperror)."""
    return Answer(name=name, rdtype=rdtype, status="error", error="this test allows no DNS")


def test_parse_mechanisms_qualifiers_and_modifiers():
    spf = parse_spf("v=spf1 a mx:mail.example.test/24 ip4:192.0.2.0/24 ~ip6:2001:db8::/32 include:_spf.x.test redirect=y.test -all")
    assert spf.valid, spf.errors
    assert [m.name for m in spf.mechanisms] == ["a", "mx", "ip4", "ip6", "include", "all"]
    mx = spf.mechanisms[1]
    assert (mx.value, mx.cidr4) == ("mail.example.test", 24)
    assert spf.mechanisms[3].qualifier == "~"
    assert spf.modifiers == {"redirect": "y.test"}
    assert spf.all_qualifier == "-"


def test_parse_reports_malformed_terms():
    spf = parse_spf("v=spf1 ip4:1.2.3.456 ip4:2001:db8::1 foo:bar ip4:1.2.3.0/33 -all")
    assert not spf.valid
    assert len(spf.errors) == 4
    assert not parse_spf("v=spf2 -all").valid
    assert is_spf("v=spf1 -all") and is_spf("V=SPF1") and not is_spf("v=spf10 -all")


@pytest.mark.parametrize(
    ("record", "authorized", "decider"),
    [
        (f"v=spf1 ip4:{WIRE_IP} -all", True, f"ip4:{WIRE_IP}"),
        (f"v=spf1 ip4:{WIRE_IP}5 -all", False, "-all"),  # the look-alike: 127.0.0.15 is not 127.0.0.1
        ("v=spf1 ip4:127.0.0.0/24 -all", True, "ip4:127.0.0.0/24"),
        ("v=spf1 ip4:127.0.1.0/24 -all", False, "-all"),
        ("v=spf1 -ip4:127.0.0.1 +all", False, "-ip4:127.0.0.1"),  # first match decides
        ("v=spf1 ip6:::1 ~all", False, "~all"),
        ("v=spf1 ip4:10.0.0.1", False, None),  # no match, no all: neutral
    ],
)
def test_ip4_by_containment_never_by_text(record, authorized, decider):
    verdict = spf_authorizes(parse_spf(record), WIRE_IP, DOMAIN, no_dns)
    assert verdict.steps == []  # decided without DNS
    assert verdict.result != "temperror"
    assert verdict.authorized is authorized
    assert verdict.mechanism == decider
    if decider == "-all":
        assert verdict.result == "fail"


@given(st.ip_addresses(v=4), st.ip_addresses(v=4))
def test_ip4_exact_matches_only_the_same_address(listed, sender):
    verdict = spf_authorizes(parse_spf(f"v=spf1 ip4:{listed} -all"), str(sender), DOMAIN, no_dns)
    assert verdict.result == ("pass" if listed == sender else "fail")


@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=32), st.ip_addresses(v=4))
def test_ip4_cidr_matches_exactly_the_network(base, prefix, sender):
    network = ipaddress.ip_network(f"{base}/{prefix}", strict=False)
    verdict = spf_authorizes(parse_spf(f"v=spf1 ip4:{base}/{prefix} -all"), str(sender), DOMAIN, no_dns)
    assert verdict.result == ("pass" if sender in network else "fail")


@pytest.fixture(scope="module")
def lookup():
    zone = wire_zone(DOMAIN, WIRE_IP)
    zone.a["other"] = ["127.0.0.2"]
    zone.a["mail2"] = ["127.0.0.3"]
    zone.mx["mx-other"] = [("mail2", 10)]
    zone.txt["inc"] = [f"v=spf1 ip4:{WIRE_IP} -all"]
    zone.txt["uses-include"] = [f"v=spf1 include:inc.{DOMAIN} -all"]
    zone.txt["uses-redirect"] = [f"v=spf1 redirect=inc.{DOMAIN}"]
    zone.txt["redirect-elsewhere"] = [f"v=spf1 redirect=other-only.{DOMAIN}"]
    zone.txt["other-only"] = ["v=spf1 ip4:127.0.0.2 -all"]
    zone.txt["soft"] = ["v=spf1 ~all"]  # an include target that ends in ~all (matches every address, softly)
    zone.txt["hard"] = ["v=spf1 -all"]
    zone.txt["plus"] = ["v=spf1 +all"]
    zone.txt["two"] = ["v=spf1 -all", "v=spf1 +all"]
    zone.txt["loop"] = [f"v=spf1 include:loop.{DOMAIN} -all"]
    zone.a["mx-other"] = ["127.0.0.3"]
    # exists:%{ir}._spf.%{d}: a per-address allow list the receiver builds from the client IP
    zone.a[f"1.0.0.127._spf.{DOMAIN}."] = ["127.0.0.2"]
    zone.a[f"{WIRE_IP}.allow.{DOMAIN}."] = ["127.0.0.2"]  # exists:%{i}.allow.%{d}
    with DnsmasqServer(zone, address="127.0.0.56") as server:
        yield DnsLookup([parse_nameserver(server.nameserver)], timeout=1, tries=1)


def test_a_mechanism_resolves_the_domain(lookup):
    verdict = spf_authorizes(parse_spf("v=spf1 a -all"), WIRE_IP, DOMAIN, lookup)
    assert verdict.authorized and verdict.mechanism == "a"
    assert f"{DOMAIN} A: {WIRE_IP}" in verdict.steps
    other = spf_authorizes(parse_spf(f"v=spf1 a:other.{DOMAIN} -all"), WIRE_IP, DOMAIN, lookup)
    assert not other.authorized and other.result == "fail"
    assert f"other.{DOMAIN} A: 127.0.0.2" in other.steps


def test_mx_mechanism_resolves_the_exchanges(lookup):
    assert spf_authorizes(parse_spf("v=spf1 mx -all"), WIRE_IP, DOMAIN, lookup).mechanism == "mx"
    verdict = spf_authorizes(parse_spf(f"v=spf1 mx:mx-other.{DOMAIN} -all"), WIRE_IP, DOMAIN, lookup)
    assert not verdict.authorized
    assert f"mail2.{DOMAIN} A: 127.0.0.3" in verdict.steps
    assert spf_authorizes(parse_spf(f"v=spf1 mx:mx-other.{DOMAIN}/24 -all"), WIRE_IP, DOMAIN, lookup).authorized


def test_docs_record_from_the_zone(lookup):
    verdict = spf_authorizes(None, WIRE_IP, DOMAIN, lookup)  # pyspf fetches the record itself
    assert verdict.authorized and verdict.mechanism == "a"
    assert verdict.steps[0] == f"{DOMAIN} TXT: \"v=spf1 a mx ip4:{WIRE_IP} -all\""
    assert spf_authorizes(None, "127.0.0.9", DOMAIN, lookup).result == "fail"


def test_include_and_redirect_to_records_that_authorise_pass(lookup):
    assert spf_authorizes(None, WIRE_IP, f"uses-include.{DOMAIN}", lookup).authorized
    verdict = spf_authorizes(None, WIRE_IP, f"uses-redirect.{DOMAIN}", lookup)
    assert verdict.authorized
    assert f"inc.{DOMAIN} TXT: \"v=spf1 ip4:{WIRE_IP} -all\"" in verdict.steps
    elsewhere = spf_authorizes(None, WIRE_IP, f"redirect-elsewhere.{DOMAIN}", lookup)
    assert elsewhere.result == "fail"  # the redirect target's -all decides


@pytest.mark.parametrize("target", ["soft", "hard"])
def test_include_ending_in_all_is_no_match_never_authorisation(lookup, target):
    """RFC 7208 §5.2: include matches only when the included record gives pass; its ~all/-all give "no
    match", so evaluation goes on to the including record's next term."""
    verdict = spf_authorizes(parse_spf(f"v=spf1 include:{target}.{DOMAIN} -all"), WIRE_IP, DOMAIN, lookup)
    assert verdict.result == "fail" and verdict.mechanism == "-all"
    assert not verdict.authorized
    assert spf_authorizes(parse_spf(f"v=spf1 include:{target}.{DOMAIN} ip4:{WIRE_IP} -all"), WIRE_IP, DOMAIN,
                          lookup).mechanism == f"ip4:{WIRE_IP}"
    # the mirror case: an included +all does authorise every address
    assert spf_authorizes(parse_spf(f"v=spf1 include:plus.{DOMAIN} -all"), "192.0.2.7", DOMAIN, lookup).authorized


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sender=st.ip_addresses(v=4))
def test_an_included_softfail_authorises_no_address(lookup, sender):
    verdict = spf_authorizes(parse_spf(f"v=spf1 include:soft.{DOMAIN} -all"), str(sender), DOMAIN, lookup)
    assert verdict.result == "fail" and verdict.mechanism == "-all"


def test_exists_expands_the_client_address_macro(lookup):
    record = f"v=spf1 exists:%{{ir}}._spf.{DOMAIN} -all"
    listed = spf_authorizes(parse_spf(record), WIRE_IP, DOMAIN, lookup)
    assert listed.authorized and listed.mechanism == f"exists:%{{ir}}._spf.{DOMAIN}"
    assert f"1.0.0.127._spf.{DOMAIN} A: 127.0.0.2" in listed.steps
    unlisted = spf_authorizes(parse_spf(record), "127.0.0.9", DOMAIN, lookup)
    assert unlisted.result == "fail"
    assert f"9.0.0.127._spf.{DOMAIN} A: nxdomain (void)" in unlisted.steps


def test_exists_with_the_plain_address_macro(lookup):
    record = "v=spf1 exists:%{i}.allow.%{d} -all"
    listed = spf_authorizes(parse_spf(record), WIRE_IP, DOMAIN, lookup)
    assert listed.authorized and f"{WIRE_IP}.allow.{DOMAIN} A: 127.0.0.2" in listed.steps
    other = spf_authorizes(parse_spf(record), "127.0.0.9", DOMAIN, lookup)
    assert other.result == "fail" and f"127.0.0.9.allow.{DOMAIN} A: nxdomain (void)" in other.steps


def test_loops_duplicates_and_missing_includes_are_permerrors(lookup):
    looped = spf_authorizes(None, WIRE_IP, f"loop.{DOMAIN}", lookup)
    assert looped.result == "permerror" and not looped.authorized
    verdict = spf_authorizes(parse_spf(f"v=spf1 include:two.{DOMAIN} -all"), WIRE_IP, DOMAIN, lookup)
    assert verdict.result == "permerror" and "Two or more" in verdict.why
    missing = spf_authorizes(parse_spf(f"v=spf1 include:nothere.{DOMAIN} ip4:{WIRE_IP} -all"), WIRE_IP, DOMAIN,
                             lookup)
    assert missing.result == "permerror" and f"nothere.{DOMAIN}" in missing.why


def test_the_tenth_dns_term_is_allowed_the_eleventh_is_a_permerror(lookup):
    ten = "v=spf1 " + " ".join(f"a:other.{DOMAIN}" for _ in range(9)) + " a -all"
    verdict = spf_authorizes(parse_spf(ten), WIRE_IP, DOMAIN, lookup)
    assert verdict.authorized and verdict.dns_terms == 10
    eleven = "v=spf1 " + " ".join(f"a:other.{DOMAIN}" for _ in range(10)) + " a -all"
    verdict = spf_authorizes(parse_spf(eleven), WIRE_IP, DOMAIN, lookup)
    assert verdict.result == "permerror" and "Too many DNS lookups" in verdict.why


def test_the_third_void_lookup_is_a_permerror(lookup):
    two = f"v=spf1 a:void1.{DOMAIN} a:void2.{DOMAIN} ip4:{WIRE_IP} -all"
    assert spf_authorizes(parse_spf(two), WIRE_IP, DOMAIN, lookup).authorized
    three = f"v=spf1 a:void1.{DOMAIN} a:void2.{DOMAIN} a:void3.{DOMAIN} ip4:{WIRE_IP} -all"
    verdict = spf_authorizes(parse_spf(three), WIRE_IP, DOMAIN, lookup)
    assert verdict.result == "permerror" and "Void lookup limit" in verdict.why


def test_effective_all_follows_redirect(lookup):
    end = effective_all(parse_spf(f"v=spf1 redirect=inc.{DOMAIN}"), DOMAIN, lookup)
    assert (end.qualifier, end.where, end.problem) == ("-", f"inc.{DOMAIN}", "")
    end = effective_all(parse_spf("v=spf1 a mx ~all"), DOMAIN, lookup)
    assert (end.qualifier, end.where) == ("~", DOMAIN)
    end = effective_all(parse_spf(f"v=spf1 redirect=nothere.{DOMAIN}"), DOMAIN, lookup)
    assert end.qualifier is None and "0 SPF records" in end.problem and not end.unmeasured


def test_resolver_timeout_is_a_temperror():
    with SilentResolver("127.0.0.57") as silent:
        lookup = DnsLookup([parse_nameserver(silent.nameserver)], timeout=0.2, tries=1)
        verdict = spf_authorizes(parse_spf("v=spf1 a -all"), WIRE_IP, DOMAIN, lookup)
        end = effective_all(parse_spf("v=spf1 redirect=x.test"), DOMAIN, lookup)
    assert verdict.result == "temperror" and not verdict.authorized
    assert "timeout" in verdict.why and silent.nameserver in verdict.why
    assert end.unmeasured and "timeout" in end.problem
