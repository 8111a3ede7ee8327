"""SPF parsing and evaluation: containment, not substrings; a/mx/include through a real dnsmasq."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.dnsmasq import DnsmasqServer, SilentResolver, wire_zone
from wirecheck.probes.dns import Answer, DnsLookup, parse_nameserver
from wirecheck.probes.spf import fetch_spf, is_spf, parse_spf, spf_authorizes

DOMAIN = "wire.example.test"
WIRE_IP = "127.0.0.1"


def no_dns(name: str, rdtype: str) -> Answer:
    raise AssertionError(f"ip4/ip6-only records must not query DNS ({name} {rdtype})")


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
    assert verdict.authorized is authorized
    assert verdict.mechanism == decider
    if decider == "-all":
        assert verdict.result == "fail"


@given(st.ip_addresses(v=4), st.ip_addresses(v=4))
def test_ip4_exact_matches_only_the_same_address(listed, sender):
    verdict = spf_authorizes(parse_spf(f"v=spf1 ip4:{listed} -all"), str(sender), DOMAIN, no_dns)
    assert verdict.authorized is (listed == sender)


@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=32), st.ip_addresses(v=4))
def test_ip4_cidr_matches_exactly_the_network(base, prefix, sender):
    network = ipaddress.ip_network(f"{base}/{prefix}", strict=False)
    verdict = spf_authorizes(parse_spf(f"v=spf1 ip4:{base}/{prefix} -all"), str(sender), DOMAIN, no_dns)
    assert verdict.authorized is (sender in network)


@pytest.fixture(scope="module")
def lookup():
    zone = wire_zone(DOMAIN, WIRE_IP)
    zone.a["other"] = ["127.0.0.2"]
    zone.a["mail2"] = ["127.0.0.3"]
    zone.mx["mx-other"] = [("mail2", 10)]
    zone.txt["inc"] = [f"v=spf1 ip4:{WIRE_IP} -all"]
    zone.txt["uses-include"] = [f"v=spf1 include:inc.{DOMAIN} -all"]
    zone.txt["uses-redirect"] = [f"v=spf1 redirect=inc.{DOMAIN}"]
    zone.txt["two"] = ["v=spf1 -all", "v=spf1 +all"]
    zone.txt["loop"] = [f"v=spf1 include:loop.{DOMAIN} -all"]
    zone.a["mx-other"] = ["127.0.0.3"]
    with DnsmasqServer(zone, address="127.0.0.56") as server:
        yield DnsLookup([parse_nameserver(server.nameserver)], timeout=1, tries=1)


def test_a_mechanism_resolves_the_domain(lookup):
    verdict = spf_authorizes(parse_spf("v=spf1 a -all"), WIRE_IP, DOMAIN, lookup)
    assert verdict.authorized and verdict.mechanism == "a"
    assert WIRE_IP in verdict.why
    other = spf_authorizes(parse_spf(f"v=spf1 a:other.{DOMAIN} -all"), WIRE_IP, DOMAIN, lookup)
    assert not other.authorized
    assert "127.0.0.2" in " ".join(other.steps)


def test_mx_mechanism_resolves_the_exchanges(lookup):
    assert spf_authorizes(parse_spf("v=spf1 mx -all"), WIRE_IP, DOMAIN, lookup).mechanism == "mx"
    verdict = spf_authorizes(parse_spf(f"v=spf1 mx:mx-other.{DOMAIN} -all"), WIRE_IP, DOMAIN, lookup)
    assert not verdict.authorized
    assert f"mail2.{DOMAIN} = 127.0.0.3" in " ".join(verdict.steps)
    assert spf_authorizes(parse_spf(f"v=spf1 mx:mx-other.{DOMAIN}/24 -all"), WIRE_IP, DOMAIN, lookup).authorized


def test_docs_record_from_the_zone(lookup):
    spf = fetch_spf(DOMAIN, lookup)
    assert spf is not None and spf.text == f"v=spf1 a mx ip4:{WIRE_IP} -all"
    verdict = spf_authorizes(spf, WIRE_IP, DOMAIN, lookup)
    assert verdict.authorized and verdict.mechanism == "a"
    assert not spf_authorizes(spf, "127.0.0.9", DOMAIN, lookup).authorized


def test_include_and_redirect(lookup):
    assert spf_authorizes(fetch_spf(f"uses-include.{DOMAIN}", lookup), WIRE_IP, DOMAIN, lookup).authorized
    verdict = spf_authorizes(fetch_spf(f"uses-redirect.{DOMAIN}", lookup), WIRE_IP, f"uses-redirect.{DOMAIN}", lookup)
    assert verdict.authorized


def test_loops_and_duplicates_are_permerrors(lookup):
    looped = spf_authorizes(fetch_spf(f"loop.{DOMAIN}", lookup), WIRE_IP, f"loop.{DOMAIN}", lookup)
    assert looped.result == "permerror"
    verdict = spf_authorizes(parse_spf(f"v=spf1 include:two.{DOMAIN} -all"), WIRE_IP, DOMAIN, lookup)
    assert verdict.result == "permerror" and "2 SPF records" in verdict.why


def test_too_many_lookups_is_a_permerror(lookup):
    record = "v=spf1 " + " ".join(f"a:n{i}.{DOMAIN}" for i in range(11)) + " -all"
    verdict = spf_authorizes(parse_spf(record), WIRE_IP, DOMAIN, lookup)
    assert verdict.result == "permerror"
    assert "10" in verdict.why


def test_resolver_timeout_is_a_temperror():
    with SilentResolver("127.0.0.57") as silent:
        lookup = DnsLookup([parse_nameserver(silent.nameserver)], timeout=0.2, tries=1)
        verdict = spf_authorizes(parse_spf("v=spf1 a -all"), WIRE_IP, DOMAIN, lookup)
    assert verdict.result == "temperror"
    assert "timeout" in verdict.why
