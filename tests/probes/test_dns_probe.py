"""The DNS probe against a real dnsmasq on loopback (never the system's resolver)."""

from __future__ import annotations

import time

import pytest

from tests.support.dnsmasq import DnsmasqServer, SilentResolver, Zone, wire_zone
from tests.support.freeport import free_port
from wirecheck.probes.dns import (
    DnsLookup,
    NameserverError,
    address_set,
    format_nameserver,
    parse_nameserver,
    resolve,
)

DOMAIN = "wire.example.test"
WIRE_IP = "127.0.0.1"


@pytest.fixture(scope="module")
def server():
    zone = wire_zone(DOMAIN, WIRE_IP)
    zone.a["webapp"] = [WIRE_IP, "::1"]
    zone.a["lb"] = [WIRE_IP]
    zone.a["elsewhere"] = ["127.0.0.99"]
    zone.a.pop("account")
    zone.a.pop("teams")
    zone.cname = {"account": "hop1", "hop1": "lb", "teams": "hop2", "hop2": "elsewhere", "dangling": "ghost"}
    zone.txt["split"] = [("v=spf1 ip4:127.0.0.1 ", "-all")]
    zone.srv = {"_wire-server-federator._tcp": [("federator", 443, 0, 10)]}
    with DnsmasqServer(zone, address="127.0.0.53") as dnsmasq:
        yield dnsmasq


@pytest.fixture
def ns(server):
    return [parse_nameserver(server.nameserver)]


def test_parse_nameserver_forms():
    assert parse_nameserver("192.0.2.1") == ("192.0.2.1", 53)
    assert parse_nameserver("127.0.0.53:5353") == ("127.0.0.53", 5353)
    assert parse_nameserver("2001:db8::1") == ("2001:db8::1", 53)
    assert parse_nameserver("[2001:db8::1]:5353") == ("2001:db8::1", 5353)
    assert format_nameserver(("2001:db8::1", 5353)) == "[2001:db8::1]:5353"
    assert format_nameserver(("192.0.2.1", 53)) == "192.0.2.1"
    for bad in ("dns.example.com", "1.2.3.4:0", "1.2.3.4:x", "[::1"):
        with pytest.raises(NameserverError):
            parse_nameserver(bad)


def test_a_record_found_with_resolver_and_ttl(ns, server):
    answer = resolve(f"nginz-https.{DOMAIN}", "A", ns, timeout=1, tries=1)
    assert answer.status == "ok"
    assert answer.addresses == [WIRE_IP]
    assert answer.resolver == server.nameserver
    assert answer.ttl == 600
    assert answer.cname_chain == []
    assert WIRE_IP in answer.describe() and server.nameserver in answer.describe()


def test_cname_chain_to_the_right_address_is_followed_and_shown(ns):
    answer = resolve(f"account.{DOMAIN}", "A", ns, timeout=1, tries=1)
    assert answer.status == "ok"
    assert answer.addresses == [WIRE_IP]
    assert answer.cname_chain == [f"hop1.{DOMAIN}", f"lb.{DOMAIN}"]
    assert answer.canonical_name == f"lb.{DOMAIN}"
    assert f"hop1.{DOMAIN} -> lb.{DOMAIN}" in answer.describe()


def test_cname_chain_to_a_wrong_address_shows_where_it_ends(ns):
    answer = resolve(f"teams.{DOMAIN}", "A", ns, timeout=1, tries=1)
    assert answer.status == "ok"
    assert address_set(answer) == {"127.0.0.99"}
    assert answer.cname_chain == [f"hop2.{DOMAIN}", f"elsewhere.{DOMAIN}"]


def test_nxdomain_nodata_are_told_apart(ns):
    missing = resolve(f"nothere.{DOMAIN}", "A", ns, timeout=1, tries=1)
    assert missing.status == "nxdomain"
    assert f"nothere.{DOMAIN} does not exist" in missing.error
    nodata = resolve(f"sftd.{DOMAIN}", "AAAA", ns, timeout=1, tries=1)
    assert nodata.status == "nodata"
    assert "no AAAA record" in nodata.error
    dangling = resolve(f"dangling.{DOMAIN}", "A", ns, timeout=1, tries=1)
    assert dangling.status in ("nxdomain", "refused")  # dnsmasq may refuse to chase an unknown target
    assert dangling.cname_chain == [f"ghost.{DOMAIN}"]


def test_other_record_types(ns):
    aaaa = resolve(f"webapp.{DOMAIN}", "AAAA", ns, timeout=1, tries=1)
    assert aaaa.addresses == ["::1"]
    txt = resolve(DOMAIN, "TXT", ns, timeout=1, tries=1)
    assert txt.texts == [f"v=spf1 a mx ip4:{WIRE_IP} -all"]
    split = resolve(f"split.{DOMAIN}", "TXT", ns, timeout=1, tries=1)
    assert split.texts == ["v=spf1 ip4:127.0.0.1 -all"]  # character strings joined (RFC 7208 §3.3)
    mx = resolve(DOMAIN, "MX", ns, timeout=1, tries=1)
    assert mx.records == [f"10 mail.{DOMAIN}."]
    srv = resolve(f"_wire-server-federator._tcp.{DOMAIN}", "SRV", ns, timeout=1, tries=1)
    assert srv.records == [f"0 10 443 federator.{DOMAIN}."]
    caa = resolve(DOMAIN, "CAA", ns, timeout=1, tries=1)
    assert caa.records == ['0 issue "letsencrypt.org"']


def test_silent_resolver_is_a_timeout_bounded_by_timeout_times_tries():
    with SilentResolver("127.0.0.54") as silent:
        started = time.monotonic()
        answer = resolve(f"webapp.{DOMAIN}", "A", [parse_nameserver(silent.nameserver)], timeout=0.3, tries=2)
        elapsed = time.monotonic() - started
    assert answer.status == "timeout"
    assert silent.queries == 2
    assert elapsed < 1.5
    assert silent.nameserver in answer.error
    assert not answer.ok


def test_stopped_dnsmasq_is_a_timeout_then_recovers():
    with DnsmasqServer(wire_zone(DOMAIN, WIRE_IP), address="127.0.0.55") as dnsmasq:
        ns = [parse_nameserver(dnsmasq.nameserver)]
        dnsmasq.pause()
        try:
            answer = resolve(f"webapp.{DOMAIN}", "A", ns, timeout=0.3, tries=1)
        finally:
            dnsmasq.resume()
        assert answer.status == "timeout"
        assert resolve(f"webapp.{DOMAIN}", "A", ns, timeout=1, tries=1).status == "ok"


def test_next_resolver_answers_when_the_first_is_silent(ns, server):
    with SilentResolver("127.0.0.54") as silent:
        answer = resolve(f"webapp.{DOMAIN}", "A", [parse_nameserver(silent.nameserver), *ns], timeout=0.3, tries=1)
    assert answer.status == "ok"
    assert answer.resolver == server.nameserver
    assert answer.tried[0].startswith(silent.nameserver)


def test_refused_outside_the_served_zone(ns):
    answer = resolve("www.elsewhere.invalid", "A", ns, timeout=1, tries=1)
    assert answer.status in ("refused", "nxdomain")
    assert not answer.ok


def test_lookup_caches_and_counts(ns):
    lookup = DnsLookup(ns, timeout=1, tries=1)
    first = lookup(f"webapp.{DOMAIN}", "A")
    second = lookup(f"WEBAPP.{DOMAIN}.", "a")
    assert first is second
    assert lookup.queries == 1


def test_zone_rejects_commas_in_txt():
    with pytest.raises(ValueError):
        Zone(domain=DOMAIN, txt={"@": ["a,b"]}).dnsmasq_args()


def test_caa_policy_rules():
    from wirecheck.probes.dns import CaaPolicy

    none = CaaPolicy("a.example.test", None, [])
    assert none.allows("letsencrypt.org")[0]
    allowed = CaaPolicy("a.example.test", "example.test", ['0 issue "letsencrypt.org; validationmethods=http-01"'])
    assert allowed.allows("letsencrypt.org")[0]
    other = CaaPolicy("a.example.test", "example.test", ['0 issue "pki.goog"', '0 iodef "mailto:x@example.test"'])
    ok, why = other.allows("letsencrypt.org")
    assert not ok and 'issue "pki.goog"' in why
    nobody = CaaPolicy("a.example.test", "example.test", ['0 issue ";"'])
    assert not nobody.allows("letsencrypt.org")[0]
    critical = CaaPolicy("a.example.test", "example.test", ['128 future "x"', '0 issue "letsencrypt.org"'])
    assert not critical.allows("letsencrypt.org")[0]
    only_iodef = CaaPolicy("a.example.test", "example.test", ['0 iodef "mailto:x@example.test"'])
    assert only_iodef.allows("letsencrypt.org")[0]
    wild = CaaPolicy("*.example.test", "example.test", ['0 issue "letsencrypt.org"', '0 issuewild ";"'])
    assert wild.allows("letsencrypt.org")[0] and not wild.allows("letsencrypt.org", wildcard=True)[0]


def test_caa_climbs_to_the_governing_set():
    from wirecheck.probes.dns import caa_policies

    zone = wire_zone(DOMAIN, WIRE_IP)
    zone.caa = {"@": [(0, "issue", "letsencrypt.org")], "webapp": [(0, "issue", "pki.goog")]}
    with DnsmasqServer(zone, address="127.0.0.58") as dnsmasq:
        lookup = DnsLookup([parse_nameserver(dnsmasq.nameserver)], timeout=1, tries=1)
        policies = caa_policies([f"webapp.{DOMAIN}", f"teams.{DOMAIN}", f"x.y.{DOMAIN}"], lookup)
    assert policies[f"webapp.{DOMAIN}"].owner == f"webapp.{DOMAIN}"
    assert not policies[f"webapp.{DOMAIN}"].allows("letsencrypt.org")[0]
    assert policies[f"teams.{DOMAIN}"].owner == DOMAIN
    assert policies[f"x.y.{DOMAIN}"].owner == DOMAIN  # through names that do not exist


def test_points_to_assessment_names_the_record_to_change(ns):
    from wirecheck.probes.dns import assess_points_to

    lookup = DnsLookup(ns, timeout=1, tries=1)
    names = [f"nginz-https.{DOMAIN}", f"teams.{DOMAIN}", f"nothere.{DOMAIN}", f"account.{DOMAIN}"]
    result = assess_points_to(lookup.many(names), {WIRE_IP})
    text = "; ".join(result.problems)
    assert len(result.problems) == 2 and not result.unmeasured
    assert f"teams.{DOMAIN} resolves to 127.0.0.99 via CNAME hop2.{DOMAIN} -> elsewhere.{DOMAIN}" in text
    assert f"change `elsewhere.{DOMAIN}. IN A` from 127.0.0.99 to {WIRE_IP}" in text
    assert f"create `nothere.{DOMAIN}. IN A {WIRE_IP}`" in text
    assert result.observed[f"account.{DOMAIN}"] == [WIRE_IP]


def test_concurrent_identical_lookups_send_one_query():
    with SilentResolver("127.0.0.54") as silent:
        lookup = DnsLookup([parse_nameserver(silent.nameserver)], timeout=0.3, tries=1)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: lookup(DOMAIN, "CAA"), range(4)))
    assert all(answer.status == "timeout" for answer in answers)
    assert lookup.queries == 1 and silent.queries == 1


def test_a_stray_address_beside_wire_ip_fails_naming_it(ns):
    """webapp has A records 127.0.0.1 (wire_ip) and ::1 would be AAAA; here a second A record."""
    from wirecheck.probes.dns import Answer, assess_points_to

    both = Answer(name=f"webapp.{DOMAIN}", rdtype="A", status="ok", records=[WIRE_IP, "127.0.0.66"],
                  resolver="127.0.0.53", rdatas=[WIRE_IP, "127.0.0.66"])
    result = assess_points_to({both.name: both}, {WIRE_IP})
    assert len(result.problems) == 1 and not result.ok
    assert "resolves to 127.0.0.1, 127.0.0.66" in result.problems[0] and f"to {WIRE_IP}" in result.problems[0]
    only = Answer(name=both.name, rdtype="A", status="ok", records=[WIRE_IP], resolver="127.0.0.53", rdatas=[WIRE_IP])
    assert assess_points_to({only.name: only}, {WIRE_IP}).ok


def test_a_dead_resolver_costs_one_time_limit_per_run():
    """Three checks' worth of lookups (several DnsLookup objects, several names at once) against a resolver
    that never answers: one lookup waits out timeout x tries, every other one fails at once, saying why."""
    with SilentResolver("127.0.0.54") as silent:
        server = [parse_nameserver(silent.nameserver)]
        started = time.monotonic()
        first = DnsLookup(server, timeout=0.5, tries=2).many([f"{label}.{DOMAIN}" for label in
                                                               ("webapp", "assets", "teams", "account")])
        again = DnsLookup(server, timeout=0.5, tries=2)
        later = [again(DOMAIN, "TXT"), again(DOMAIN, "CAA"), again(f"sftd.{DOMAIN}")]
        elapsed = time.monotonic() - started
    answers = list(first.values()) + later
    assert all(a.status == "timeout" for a in answers), [a.status for a in answers]
    assert silent.queries == 2                       # the first contact's two tries, nothing after
    assert elapsed < 0.5 * 2 + 0.8, elapsed
    skipped = [a for a in answers if any(": not asked: " in t for t in a.tried)]
    assert len(skipped) == len(answers) - 1
    assert "not asked again" in later[0].error and silent.nameserver in later[0].error


def test_a_closed_resolver_port_is_refused_not_a_timeout():
    # nothing listens there (a port below the ephemeral range: a bind(0) port, once released, can be
    # taken by another test's port-probe listener on 0.0.0.0, which answers every datagram)
    port = free_port("127.0.0.57")
    started = time.monotonic()
    lookup = DnsLookup([("127.0.0.57", port)], timeout=2, tries=2)
    answers = [lookup(f"webapp.{DOMAIN}"), lookup(f"assets.{DOMAIN}")]
    assert time.monotonic() - started < 1.5         # a timeout would take 2 s per try
    for answer in answers:
        assert answer.status == "unreachable", answer
        assert "connection refused" in answer.error and "timeout" not in answer.error, answer.error
    alone = resolve(f"webapp.{DOMAIN}", "A", [("127.0.0.57", port)], timeout=2, tries=1)
    assert alone.status == "unreachable" and "ICMP port unreachable" in alone.error
