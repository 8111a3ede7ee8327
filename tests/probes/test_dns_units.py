"""DNS comparison on hand-made answers (fast; the dnsmasq tests in test_dns_probe.py prove the same
against a real server). Every outcome of assess_points_to, both ways."""

from __future__ import annotations

import dns.rdata

from wirecheck.probes.dns import Answer, address_set, assess_points_to

WIRE = "198.18.7.7"


def answer(name, status="ok", addresses=(), rdtype="A", chain=(), resolver="127.0.0.1", error=""):
    rdatas = [dns.rdata.from_text("IN", rdtype, a) for a in addresses]
    return Answer(name=name, rdtype=rdtype, status=status, records=list(addresses), cname_chain=list(chain),
                  resolver=resolver, ttl=60 if status == "ok" else None, error=error, rdatas=rdatas)


def test_address_set_normalises_and_ignores_other_types():
    assert address_set(answer("a", addresses=["::0001", "2001:db8::1"], rdtype="AAAA")) == {"::1", "2001:db8::1"}
    assert address_set(answer("a", addresses=[WIRE])) == {WIRE}
    txt = Answer(name="a", rdtype="TXT", status="ok", rdatas=[dns.rdata.from_text("IN", "TXT", '"x"')])
    assert address_set(txt) == set() and txt.addresses == []


def test_exactly_the_expected_address_passes():
    r = assess_points_to({"nginz-https.example.com": answer("nginz-https.example.com", addresses=[WIRE])}, {WIRE})
    assert r.ok and r.problems == [] and r.unmeasured == []
    assert r.observed == {"nginz-https.example.com": [WIRE]}
    assert r.expected == {"nginz-https.example.com": [WIRE]}
    assert r.evidence["nginz-https.example.com"]["records"] == [WIRE]


def test_wrong_address_names_the_record_to_change():
    r = assess_points_to({"a.example.com": answer("a.example.com", addresses=["10.0.0.1"])}, {WIRE})
    assert not r.ok and r.observed == {"a.example.com": ["10.0.0.1"]}
    assert r.problems == [f"a.example.com resolves to 10.0.0.1 (resolver 127.0.0.1), expected {WIRE}: "
                          f"change `a.example.com. IN A` from 10.0.0.1 to {WIRE}"]


def test_an_extra_address_beside_the_right_one_is_not_a_pass():
    r = assess_points_to({"a.example.com": answer("a.example.com", addresses=[WIRE, "203.0.113.9"])}, {WIRE})
    assert not r.ok and r.problems and "203.0.113.9" in r.problems[0]


def test_wrong_address_behind_a_cname_says_where_it_ends():
    r = assess_points_to({"a.example.com": answer("a.example.com", addresses=["10.0.0.1"], chain=["lb.example.net"])},
                         {WIRE})
    assert r.problems == [f"a.example.com resolves to 10.0.0.1 via CNAME lb.example.net (resolver 127.0.0.1), "
                          f"expected {WIRE}: change `lb.example.net. IN A` from 10.0.0.1 to {WIRE} "
                          "(or point the CNAME chain of a.example.com elsewhere)"]


def test_nxdomain_and_nodata():
    r = assess_points_to({"a.example.com": answer("a.example.com", status="nxdomain")}, {WIRE})
    assert r.problems == [f"a.example.com does not exist (NXDOMAIN from 127.0.0.1): create `a.example.com. IN A {WIRE}`"]
    assert r.observed == {"a.example.com": "NXDOMAIN"} and not r.ok
    r = assess_points_to({"a.example.com": answer("a.example.com", status="nxdomain", chain=["gone.example.net"])},
                         {WIRE})
    assert r.problems == ["a.example.com via CNAME gone.example.net (resolver 127.0.0.1) ends at gone.example.net, "
                          f"which does not exist: create `gone.example.net. IN A {WIRE}`"]
    r = assess_points_to({"a.example.com": answer("a.example.com", status="nodata", rdtype="AAAA", resolver=None)},
                         {"2001:db8::1"}, rdtype="AAAA")
    assert r.problems == ["a.example.com (resolver none) has no AAAA record: add `a.example.com. IN AAAA 2001:db8::1`"]
    assert r.observed == {"a.example.com": "no AAAA record"}


def test_unanswered_lookups_are_unmeasured_not_problems():
    for status in ("timeout", "servfail", "refused", "error"):
        r = assess_points_to({"a.example.com": answer("a.example.com", status=status, error="why")}, {WIRE})
        assert r.unmeasured == [f"a.example.com A: {status} (why)"] and r.problems == [] and not r.ok
        assert r.observed == {"a.example.com": status}


def test_several_names_each_judged():
    r = assess_points_to({"a.example.com": answer("a.example.com", addresses=[WIRE]),
                          "b.example.com": answer("b.example.com", status="timeout", error="t"),
                          "c.example.com": answer("c.example.com", addresses=["10.0.0.1"])}, {WIRE})
    assert len(r.problems) == 1 and r.problems[0].startswith("c.example.com") and len(r.unmeasured) == 1
    assert set(r.evidence) == {"a.example.com", "b.example.com", "c.example.com"}
