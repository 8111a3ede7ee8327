"""DNS-SPF judged on hand-made zones (fast, no server; test_spf_probe.py runs pyspf against dnsmasq).
Every outcome of assess_spf both ways, and the parser's limits at their boundary."""

from __future__ import annotations

import dns.rdata
import pytest

from wirecheck.probes.dns import Answer
from wirecheck.probes.spf import assess_spf, effective_all, parse_spf, spf_authorizes

DOMAIN = "example.test"
WIRE = "192.0.2.10"
DOCS = f"v=spf1 a mx ip4:{WIRE} -all"


def zone_lookup(txt: dict[str, list[str]], a: dict[str, list[str]] | None = None,
                broken: dict[str, str] | None = None):
    """A resolver answering from dicts: TXT and A records by name, `broken` names give that status."""
    asked: list[tuple[str, str]] = []

    def lookup(name: str, rdtype: str = "A") -> Answer:
        name = name.rstrip(".")
        asked.append((name, rdtype))
        if broken and name in broken:
            return Answer(name=name, rdtype=rdtype, status=broken[name], error=f"{broken[name]} from 127.0.0.1")
        if rdtype == "TXT":
            texts = txt.get(name, [])
            rdatas = [dns.rdata.from_text("IN", "TXT", f'"{t}"') for t in texts]
        elif rdtype in ("A", "AAAA"):
            texts = [t for t in (a or {}).get(name, []) if (":" in t) == (rdtype == "AAAA")]
            rdatas = [dns.rdata.from_text("IN", rdtype, t) for t in texts]
        else:
            texts, rdatas = [], []
        status = "ok" if texts else "nodata"
        return Answer(name=name, rdtype=rdtype, status=status, records=[f'"{t}"' if rdtype == "TXT" else t
                                                                        for t in texts],
                      resolver="127.0.0.1", rdatas=rdatas, error="" if texts else "no record")

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def test_the_docs_record_passes_and_is_recorded():
    r = assess_spf(DOMAIN, WIRE, zone_lookup({DOMAIN: ["some other text", f"v=spf1 ip4:{WIRE} -all"]}))
    assert r.ok, (r.problems, r.unmeasured)
    assert r.observed == {"record": f"v=spf1 ip4:{WIRE} -all", "result": "pass", "decided_by": f"ip4:{WIRE}"}
    assert r.evidence["terms"] == [f"ip4:{WIRE}", "-all"]
    assert r.evidence["evaluation"]["result"] == "pass"
    assert r.evidence["policy_ends"] == {"all": "-all", "record_of": DOMAIN}
    assert r.expected == f"an SPF record authorising {WIRE} (docs: {DOCS})"
    assert r.evidence["txt"]["records"] == ['"some other text"', f'"v=spf1 ip4:{WIRE} -all"']
    assert r.evidence["record"] == f"v=spf1 ip4:{WIRE} -all"
    evaluation = r.evidence["evaluation"]
    assert evaluation["by"].endswith(f"check_host (strict), sender postmaster@{DOMAIN}, client {WIRE}")
    assert (evaluation["decided_by"], evaluation["dns_terms"], evaluation["void_lookups"], evaluation["dns_queries"]) \
        == (f"ip4:{WIRE}", 0, 0, [])
    assert "explanation" in evaluation


def test_mechanisms_that_need_the_domain_and_the_sender():
    # `a` resolves the domain being checked; %{l} is the sender's local part (RFC 7208 §7.3)
    lookup = zone_lookup({DOMAIN: ["v=spf1 a exists:%{l}.allow.%{d} -all"]},
                         a={DOMAIN: ["192.0.2.99"], f"wire.allow.{DOMAIN}": ["127.0.0.2"]})
    assert assess_spf(DOMAIN, "192.0.2.99", lookup).ok
    assert not assess_spf(DOMAIN, WIRE, lookup).ok                                  # postmaster@ is not allowed
    r = assess_spf(DOMAIN, WIRE, lookup, sender_local="wire")
    assert r.ok, r.problems
    assert r.evidence["evaluation"]["by"].endswith(f"sender wire@{DOMAIN}, client {WIRE}")
    assert r.evidence["evaluation"]["decided_by"] == "exists:%{l}.allow.%{d}"
    assert r.evidence["evaluation"]["dns_terms"] == 2


def test_a_resolver_that_breaks_during_evaluation_is_unmeasured():
    inner = zone_lookup({DOMAIN: [f"v=spf1 a:www.{DOMAIN} -all"]})

    def lookup(name: str, rdtype: str = "A") -> Answer:
        if rdtype == "A":
            raise RuntimeError("resolver crashed")
        return inner(name, rdtype)

    r = assess_spf(DOMAIN, WIRE, lookup)
    assert r.problems == [] and len(r.unmeasured) == 1
    assert "did not finish (error): pyspf failed: RuntimeError: resolver crashed" in r.unmeasured[0]


def test_no_spf_record_names_what_was_found_and_the_record_to_publish():
    r = assess_spf(DOMAIN, WIRE, zone_lookup({DOMAIN: ["google-site-verification=x", "v=spf10"]}))
    assert r.problems == [f'{DOMAIN} has no SPF record (TXT records found: "google-site-verification=x", "v=spf10"): '
                          f'publish `{DOMAIN}. IN TXT "{DOCS}"`']
    assert r.observed == "no SPF record (ok; TXT: ['google-site-verification=x', 'v=spf10'])"
    r = assess_spf(DOMAIN, WIRE, zone_lookup({}))
    assert not r.ok and "(TXT records found: none)" in r.problems[0]
    assert r.observed == "no SPF record (nodata; TXT: none)"
    assert r.unmeasured == []


def test_two_spf_records_are_a_problem_even_when_each_authorises():
    r = assess_spf(DOMAIN, WIRE, zone_lookup({DOMAIN: [f"v=spf1 ip4:{WIRE} -all", f"v=spf1 a ip4:{WIRE} -all"]}))
    assert r.problems == [f'{DOMAIN} has 2 SPF records ("v=spf1 ip4:{WIRE} -all", "v=spf1 a ip4:{WIRE} -all"); '
                          "RFC 7208 allows one and receivers treat two as a permanent error: keep one, "
                          f'publish `{DOMAIN}. IN TXT "{DOCS}"`']


@pytest.mark.parametrize("status", ["timeout", "servfail", "refused", "error"])
def test_an_unanswered_txt_lookup_is_unmeasured_never_a_verdict(status):
    r = assess_spf(DOMAIN, WIRE, zone_lookup({}, broken={DOMAIN: status}))
    assert r.problems == [] and r.unmeasured == [f"{DOMAIN} TXT: {status} ({status} from 127.0.0.1)"]
    assert not r.ok


def test_a_look_alike_address_is_named_in_the_failure():
    r = assess_spf(DOMAIN, WIRE, zone_lookup({DOMAIN: [f"v=spf1 ip4:{WIRE}1 ip4:{WIRE}2 ip4:198.51.100.1 -all"]}))
    assert len(r.problems) == 1
    assert (f"gives fail, decided by '-all'; ip4:{WIRE}1, ip4:{WIRE}2 only looks like {WIRE} (different address)"
            in r.problems[0])
    assert "ip4:198.51.100.1 only" not in r.problems[0]
    # no term matched at all: neutral, and the end of the policy is missing too
    r = assess_spf(DOMAIN, WIRE, zone_lookup({DOMAIN: ["v=spf1 ip4:198.51.100.1"]}))
    assert "gives neutral, no term matched;" in r.problems[0]
    assert "ends with no 'all' mechanism;" in r.problems[1]
    assert "only looks like" not in r.problems[0]
    assert r.evidence["policy_ends"] == {"all": None, "record_of": DOMAIN}
    # a redirect that finds nothing: the reason is given
    r = assess_spf(DOMAIN, WIRE, zone_lookup({DOMAIN: [f"v=spf1 ip4:{WIRE} redirect=none.{DOMAIN}"]}))
    assert r.problems == [f"the SPF record \"v=spf1 ip4:{WIRE} redirect=none.{DOMAIN}\" on {DOMAIN} ends with no 'all' "
                          f"mechanism (redirect=none.{DOMAIN} finds 0 SPF records (need one)) (the record of "
                          f"none.{DOMAIN}, reached through redirect=); the docs publish '-all', so that receivers "
                          f"reject mail from other addresses: publish `{DOMAIN}. IN TXT \"{DOCS}\"`"]


@pytest.mark.parametrize("ending", ["~all", "?all", "+all"])
def test_a_policy_not_ending_in_minus_all_is_a_problem(ending):
    r = assess_spf(DOMAIN, WIRE, zone_lookup({DOMAIN: [f"v=spf1 ip4:{WIRE} {ending}"]}))
    assert r.problems == [f"the SPF record \"v=spf1 ip4:{WIRE} {ending}\" on {DOMAIN} ends with '{ending}'; the docs "
                          f"publish '-all', so that receivers reject mail from other addresses: "
                          f"publish `{DOMAIN}. IN TXT \"{DOCS}\"`"]
    # the operator may ask for another ending: then exactly that one passes
    assert assess_spf(DOMAIN, WIRE, zone_lookup({DOMAIN: [f"v=spf1 ip4:{WIRE} {ending}"]}),
                      all_qualifier=ending[0]).ok


def test_the_end_reached_through_redirect_names_the_record_that_holds_it():
    zone = {DOMAIN: [f"v=spf1 ip4:{WIRE} redirect=_spf.{DOMAIN}"], f"_spf.{DOMAIN}": ["v=spf1 ~all"]}
    r = assess_spf(DOMAIN, WIRE, zone_lookup(zone))
    assert len(r.problems) == 1
    assert f"ends with '~all' (the record of _spf.{DOMAIN}, reached through redirect=)" in r.problems[0]
    assert r.evidence["policy_ends"] == {"all": "~all", "record_of": f"_spf.{DOMAIN}"}
    zone[f"_spf.{DOMAIN}"] = ["v=spf1 -all"]
    assert assess_spf(DOMAIN, WIRE, zone_lookup(zone)).ok


def test_an_unreadable_redirect_target_is_unmeasured():
    zone = {DOMAIN: [f"v=spf1 ip4:{WIRE} redirect=_spf.{DOMAIN}"]}
    r = assess_spf(DOMAIN, WIRE, zone_lookup(zone, broken={f"_spf.{DOMAIN}": "timeout"}))
    assert r.problems == []
    assert r.unmeasured == [f"the end of the SPF record \"{zone[DOMAIN][0]}\" on {DOMAIN} (through redirect=) could "
                            f"not be read: _spf.{DOMAIN} TXT: timeout (timeout from 127.0.0.1)"]


def test_a_permerror_is_a_broken_record_with_the_counts():
    record = f"v=spf1 ip4:{WIRE} include:missing.{DOMAIN} -all"  # RFC 7208 §5.2: include of no record
    r = assess_spf(DOMAIN, "198.51.100.7", zone_lookup({DOMAIN: [record]}))
    assert len(r.problems) == 1 and r.unmeasured == []
    assert r.problems[0].startswith(f"the SPF record \"{record}\" on {DOMAIN} is broken: RFC 7208 evaluation ends "
                                    "in permerror (")
    assert "1 DNS-querying terms counted (limit 10)" in r.problems[0]
    assert "void lookups (limit 2)" in r.problems[0]


def test_a_lookup_failing_during_evaluation_is_unmeasured():
    record = f"v=spf1 a:www.{DOMAIN} -all"
    r = assess_spf(DOMAIN, WIRE, zone_lookup({DOMAIN: [record]}, broken={f"www.{DOMAIN}": "servfail"}))
    assert r.problems == [] and len(r.unmeasured) == 1
    assert r.unmeasured[0].startswith(f"RFC 7208 evaluation of the SPF record \"{record}\" on {DOMAIN} for {WIRE} "
                                      "did not finish (temperror)")


def test_a_mechanism_through_the_fake_zone_authorises_by_address():
    lookup = zone_lookup({}, a={f"www.{DOMAIN}": [WIRE]})
    verdict = spf_authorizes(f"v=spf1 a:www.{DOMAIN} -all", WIRE, DOMAIN, lookup)
    assert verdict.authorized and verdict.mechanism == f"a:www.{DOMAIN}"
    assert verdict.steps == [f"www.{DOMAIN} A: {WIRE}"]
    denied = spf_authorizes(f"v=spf1 a:www.{DOMAIN} -all", "192.0.2.11", DOMAIN, lookup)
    assert not denied.authorized and denied.result == "fail"


# --- the parser: its limits at the boundary ------------------------------------------------------------------


@pytest.mark.parametrize(("term", "valid"), [
    ("ip4:192.0.2.0/32", True), ("ip4:192.0.2.0/0", True), ("ip4:192.0.2.0/33", False),
    ("ip6:2001:db8::/128", True), ("ip6:2001:db8::/64", True), ("ip6:2001:db8::/129", False),
    ("a/32", True), ("a/33", False), ("a//128", True), ("a//129", False), ("mx/24//64", True),
    ("ip4:2001:db8::1", False), ("ip6:192.0.2.1", False), ("ip4", False), ("ip6:", False),
    ("include", False), ("include:x.test", True), ("exists", False), ("exists:%{i}.x.test", True),
    ("all", True), ("-all", True), ("all:x.test", False), ("all/24", False), ("ptr", True),
    ("foo:bar", False), ("*all", False),
])
def test_each_term_against_the_rfc_grammar(term, valid):
    spf = parse_spf(f"v=spf1 {term}")
    assert spf.valid is valid, spf.errors
    assert len(spf.mechanisms) == (1 if valid else 0)
    if not valid:
        assert len(spf.errors) == 1 and repr(term) in spf.errors[0]


def test_parsed_values_prefixes_and_qualifiers():
    ip6 = parse_spf("v=spf1 ?ip6:2001:db8::/48").mechanisms[0]
    assert (ip6.qualifier, ip6.name, ip6.value, ip6.result) == ("?", "ip6", "2001:db8::", "neutral")
    dual = parse_spf("v=spf1 MX:mail.x.test/24//64").mechanisms[0]
    assert (dual.name, dual.value, dual.cidr4, dual.cidr6, dual.qualifier, dual.result) == (
        "mx", "mail.x.test", 24, 64, "+", "pass")
    assert dual.text == "MX:mail.x.test/24//64"
    bare = parse_spf("v=spf1 a").mechanisms[0]
    assert (bare.value, bare.cidr4, bare.cidr6) == ("", None, None)
    assert [m.result for m in parse_spf("v=spf1 +a -a ~a ?a").mechanisms] == ["pass", "fail", "softfail", "neutral"]


def test_modifiers_and_the_first_all():
    spf = parse_spf("v=spf1 Redirect=a.test exp=e.test foo=bar")
    assert spf.valid and spf.modifiers == {"redirect": "a.test", "exp": "e.test", "foo": "bar"}
    assert spf.all_qualifier is None
    twice = parse_spf("v=spf1 redirect=a.test redirect=b.test")
    assert twice.errors == ["modifier 'redirect' appears twice"]
    assert parse_spf("v=spf1 exp=a.test exp=b.test").errors == ["modifier 'exp' appears twice"]
    assert parse_spf("v=spf1 foo=a foo=b").valid  # unknown modifiers may repeat (RFC 7208 §6)
    assert parse_spf("v=spf1 ~all -all").all_qualifier == "~"  # the first all ends the evaluation
    assert parse_spf("V=SPF1 -all").valid
    empty = parse_spf("")
    assert empty.errors == ["record does not start with 'v=spf1'"] and empty.mechanisms == []
    assert parse_spf("v=spf1").valid


def test_effective_all_stops_at_a_loop_and_at_the_limit():
    zone = {"a.test": ["v=spf1 redirect=b.test"], "b.test": ["v=spf1 redirect=A.test"]}
    end = effective_all(parse_spf(zone["a.test"][0]), "a.test", zone_lookup(zone))
    assert end.qualifier is None and end.problem == "redirect loop through A.test" and not end.unmeasured
    assert end.where == "A.test"
    # the redirect's domain-spec is expanded for the domain whose record holds it (%{d})
    macro = {"a.test": ["v=spf1 redirect=_spf.%{d}"], "_spf.a.test": ["v=spf1 ~all"]}
    end = effective_all(parse_spf(macro["a.test"][0]), "a.test", zone_lookup(macro))
    assert (end.qualifier, end.where) == ("~", "_spf.a.test")
    bad = effective_all(parse_spf("v=spf1 redirect=%{z}"), "a.test", zone_lookup({}))
    assert bad.problem.startswith("redirect=%{z} cannot be expanded (") and bad.where == "a.test"
    gone = effective_all(parse_spf("v=spf1 redirect=b.test"), "a.test", zone_lookup({}, broken={"b.test": "refused"}))
    assert (gone.where, gone.unmeasured, gone.problem) == ("b.test", True, "b.test TXT: refused (refused from 127.0.0.1)")
    chain = {f"r{i}.test": [f"v=spf1 redirect=r{i + 1}.test"] for i in range(12)}
    chain["r3.test"] = ["v=spf1 -all"]
    assert effective_all(parse_spf(chain["r0.test"][0]), "r0.test", zone_lookup(chain), limit=3).qualifier == "-"
    end = effective_all(parse_spf(chain["r0.test"][0]), "r0.test", zone_lookup(chain), limit=2)
    assert (end.qualifier, end.problem) == (None, "more than 2 redirects")
    two = {"a.test": ["v=spf1 redirect=b.test"], "b.test": ["v=spf1 -all", "v=spf1 ~all"]}
    end = effective_all(parse_spf(two["a.test"][0]), "a.test", zone_lookup(two))
    assert end.problem == "redirect=b.test finds 2 SPF records (need one)" and end.where == "b.test"
    # an all in the record itself wins over its redirect (RFC 7208 §6.1)
    mixed = {"a.test": ["v=spf1 -all redirect=b.test"], "b.test": ["v=spf1 +all"]}
    lookup = zone_lookup(mixed)
    assert effective_all(parse_spf(mixed["a.test"][0]), "a.test", lookup).qualifier == "-"
    assert lookup.asked == []


def test_verdicts_name_the_deciding_term_the_queries_and_the_problem():
    missing = spf_authorizes(f"v=spf1 include:missing.{DOMAIN} -all", "198.51.100.7", DOMAIN, zone_lookup({}))
    assert (missing.result, missing.mechanism, missing.dns_terms, missing.void_lookups) == ("permerror", None, 1, 1)
    assert missing.why == (f"No valid SPF record for included domain: missing.{DOMAIN} "
                           f"(at include:missing.{DOMAIN})")
    assert missing.steps == [f"missing.{DOMAIN} TXT: nodata (void)"]
    broken = spf_authorizes(f"v=spf1 a:www.{DOMAIN} -all", WIRE, DOMAIN,
                            zone_lookup({}, broken={f"www.{DOMAIN}": "servfail"}))
    assert (broken.result, broken.mechanism) == ("temperror", None)
    assert broken.why == f"DNS www.{DOMAIN} A: servfail (servfail from 127.0.0.1)"
    two = spf_authorizes(f"v=spf1 a:www.{DOMAIN} ~all", "192.0.2.5", DOMAIN,
                         zone_lookup({}, a={f"www.{DOMAIN}": ["192.0.2.4", "192.0.2.5"]}))
    assert (two.result, two.mechanism, two.why) == ("pass", f"a:www.{DOMAIN}", "sender SPF authorized")
    assert two.steps == [f"www.{DOMAIN} A: 192.0.2.4, 192.0.2.5"]


def test_an_ipv6_client_is_matched_against_aaaa_records():
    lookup = zone_lookup({}, a={f"www.{DOMAIN}": ["192.0.2.7", "2001:db8::7"]})
    six = spf_authorizes(f"v=spf1 a:www.{DOMAIN} -all", "2001:db8::7", DOMAIN, lookup)
    assert six.authorized and six.steps == [f"www.{DOMAIN} AAAA: 2001:db8::7"]
    assert not spf_authorizes(f"v=spf1 a:www.{DOMAIN} -all", "2001:db8::8", DOMAIN, lookup).authorized


def test_an_evaluation_inside_another_keeps_the_outer_resolver():
    import spf as pyspf

    from wirecheck.probes import spf as ours

    outer = zone_lookup({}, a={f"outer.{DOMAIN}": [WIRE]})
    ours._BOUND.recorder = ours._Recorder(outer)
    try:
        inner = spf_authorizes(f"v=spf1 ip4:{WIRE} -all", WIRE, DOMAIN, zone_lookup({}))
        assert inner.authorized
        pyspf.DNSLookup(f"outer.{DOMAIN}", "A")           # the outer evaluation's resolver answers again
        assert ours._BOUND.recorder.steps == [f"outer.{DOMAIN} A: {WIRE}"]
    finally:
        ours._BOUND.recorder = None
    with pytest.raises(pyspf.TempError, match="no resolver bound"):
        pyspf.DNSLookup(f"outer.{DOMAIN}", "A")


def test_an_unknown_modifier_may_carry_colons_and_equals_signs():
    spf = parse_spf("v=spf1 x-note=a:b=c -all")      # RFC 7208 §6: unknown modifiers are kept, never errors
    assert spf.valid and spf.modifiers == {"x-note": "a:b=c"} and spf.all_qualifier == "-"
