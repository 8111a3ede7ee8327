"""The DNS decisions on hand-made answers (fast, no server): CAA as the CA decides it, the federation
SRV record, AAAA reachability, the resolver option's syntax. test_caa.py and test_dns_probe.py prove
the same against dnsmasq."""

from __future__ import annotations

import socket

import dns.rdata
import pytest

from tests.support.freeport import free_port
from wirecheck.probes.dns import (
    Answer,
    CaaPolicy,
    NameserverError,
    assess_aaaa,
    assess_caa,
    assess_srv,
    caa_policy,
    format_nameserver,
    parse_issue_value,
    parse_nameserver,
)

LE = "letsencrypt.org"
ACCOUNT = "https://acme-v02.api.letsencrypt.org/acme/acct/1"


def policy(*records: str, owner: str | None = "example.test", name: str = "webapp.example.test") -> CaaPolicy:
    return CaaPolicy(name, owner, list(records))


@pytest.mark.parametrize(("records", "allowed", "why"), [
    ((), True, "no CAA record on webapp.example.test or its parents (any CA may issue)"),
    ((f'0 issue "{LE}"',), True, f"CAA '0 issue \"{LE}\"' at example.test allows {LE}"),
    (('0 issue "pki.goog"',), False, f"CAA at example.test does not let {LE} issue with http-01 (issue records: "
                                     "'0 issue \"pki.goog\"' names pki.goog)"),
    (('0 issue ";"',), False, "names no CA"),
    ((f'0 issue "{LE}; validationmethods=http-01"',), True, f"allows {LE} with http-01"),
    ((f'0 issue "{LE}; validationmethods=dns-01"',), False, "only with validation method(s) dns-01; cert-manager "
                                                              "validates with http-01"),
    ((f'0 issue "{LE}; validationmethods=http-01,dns_01"',), False, "is malformed, so it authorises nothing"),
    ((f'0 issue "{LE}; bad"',), False, f"names {LE} but parameter 'bad' is not tag=value, so it authorises nothing"),
    ((f'0 issue "{LE}"', '128 tbs "x"'), False, f"carries the critical flag on tag 'tbs', which {LE} does not know"),
    ((f'0 issue "{LE}"', '1 tbs "x"'), False, "critical flag"),
    ((f'0 issue "{LE}"', '2 tbs "x"'), True, f"allows {LE}"),            # flag 2 is not critical
    ((f'0 issue "{LE}"', '128 iodef "mailto:a@example.test"'), True, f"allows {LE}"),   # a known tag
    ((f'0 issue "{LE}"', '128 ISSUEWILD ";"'), True, f"allows {LE}"),
    (('0 issuewild ";"',), True, "CAA at example.test has no issue property (no restriction on issuance)"),
    (('0 iodef "mailto:a@example.test"',), True, "has no issue property"),
    (('0 issue "pki.goog"', f'0 ISSUE "{LE}"'), True, f"allows {LE}"),   # tags compare case-insensitively
    ((f'0 issue "{LE}.evil"',), False, f"names {LE}.evil"),              # issuer names compare exactly
])
def test_caa_for_http01_without_a_known_account(records, allowed, why):
    decision = policy(*records, owner=None if not records else "example.test").decide(LE)
    assert decision.allowed is allowed, decision
    assert why in decision.why


def test_an_unparsable_record_refuses():
    decision = policy("0 issue").decide(LE)
    assert decision.allowed is False and decision.why.startswith("CAA record '0 issue' at example.test cannot be parsed")


def test_wildcards_follow_issuewild_when_there_is_one():
    both = policy(f'0 issue "{LE}"', '0 issuewild ";"')
    assert both.decide(LE).allowed is True
    wild = both.decide(LE, wildcard=True)
    assert wild.allowed is False and "(issuewild records: '0 issuewild \";\"' names no CA)" in wild.why
    assert policy(f'0 issue "{LE}"').decide(LE, wildcard=True).allowed is True     # no issuewild: issue governs
    assert policy('0 issue ";"', f'0 issuewild "{LE}"').decide(LE, wildcard=True).allowed is True
    assert policy('0 issue ";"', f'0 issuewild "{LE}"').decide(LE).allowed is False


def test_the_account_restriction():
    record = f'0 issue "{LE}; accounturi={ACCOUNT}"'
    unknown = policy(record).decide(LE)
    assert unknown.allowed is None and unknown.record == record
    assert unknown.why == (f"CAA '{record}' at example.test allows {LE} only for the ACME account {ACCOUNT}; the "
                           "account cert-manager uses is not known, so whether issuance succeeds cannot be told")
    same = policy(record).decide(LE, account_uri=ACCOUNT)
    assert same.allowed is True and same.why == f"CAA '{record}' at example.test allows {LE} for account {ACCOUNT}"
    other = policy(record).decide(LE, account_uri=ACCOUNT + "0")
    assert other.allowed is False and f"cert-manager's account is {ACCOUNT}0" in other.why
    # an unrestricted record next to it decides, whatever the account
    assert policy(record, f'0 issue "{LE}"').decide(LE).allowed is True
    assert policy(record).allows(LE) == (False, unknown.why)
    assert policy(f'0 issue "{LE}"').allows(LE)[0] is True


def test_the_challenge_is_the_one_asked_for():
    record = f'0 issue "{LE}; validationmethods=dns-01"'
    assert policy(record).decide(LE, challenge="dns-01").allowed is True
    assert "does not let letsencrypt.org issue with tls-alpn-01" in policy(record).decide(LE, challenge="tls-alpn-01").why


def test_issue_values():
    assert parse_issue_value(" letsencrypt.org ").issuer == LE
    assert parse_issue_value("letsencrypt.org;").parameters == {}
    assert parse_issue_value(";").issuer == ""
    v = parse_issue_value("ca.test; a=1; b-c = x ")
    assert (v.issuer, v.parameters, v.malformed) == ("ca.test", {"a": "1", "b-c": "x"}, "")
    assert parse_issue_value("ca.test; a=1;").malformed == "parameter '' is not tag=value"
    assert parse_issue_value("ca.test; -a=1").malformed == "parameter tag '-a' has characters RFC 8659 does not allow"
    assert parse_issue_value("ca.test; a-=1").malformed
    assert parse_issue_value("ca.test; a=b c").malformed == ("parameter value 'b c' has characters RFC 8659 does not "
                                                             "allow")
    assert parse_issue_value("ca.test; a=").parameters == {"a": ""}


def test_assess_caa_groups_names_and_never_passes_an_unknown_account():
    record = f'0 issue "{LE}; accounturi={ACCOUNT}"'
    policies = {"a.example.test": policy('0 issue "pki.goog"', name="a.example.test"),
                "b.example.test": policy('0 issue "pki.goog"', name="b.example.test"),
                "c.other.test": CaaPolicy("c.other.test", None, []),
                "d.example.test": policy(record, name="d.example.test"),
                "e.example.test": CaaPolicy("e.example.test", None, [], unmeasured="example.test CAA: timeout (t)")}
    r = assess_caa(policies, LE)
    assert r.problems == [f"a.example.test, b.example.test: CAA at example.test does not let {LE} issue with http-01 "
                          "(issue records: '0 issue \"pki.goog\"' names pki.goog): add `example.test. IN CAA 0 issue "
                          f"\"{LE}\"` (or remove the restriction)"]
    assert r.unmeasured[0] == "example.test CAA: timeout (t)"
    assert r.unmeasured[1].startswith("d.example.test: CAA '") and r.unmeasured[1].endswith(
        "give the account URI as acme_account_uri in the inventory (the ClusterIssuer's status.acme.uri)")
    assert r.observed["c.other.test"] == "no CAA" and r.observed["e.example.test"] == "lookup failed"
    assert r.observed["a.example.test"] == ['0 issue "pki.goog"']
    assert assess_caa({"c.other.test": CaaPolicy("c.other.test", None, [])}, LE).ok
    assert assess_caa({"d.example.test": policy(record)}, LE, account_uri=ACCOUNT).ok
    wild = assess_caa({"*.example.test": policy(f'0 issue "{LE}"', '0 issuewild ";"')}, LE)
    assert not wild.ok and "issuewild" in wild.problems[0]


def fake(records: dict[tuple[str, str], list[str]], broken: dict[str, str] | None = None):
    def lookup(name: str, rdtype: str = "A") -> Answer:
        if broken and name in broken:
            return Answer(name=name, rdtype=rdtype, status=broken[name], error="no answer")
        found = records.get((name, rdtype), [])
        return Answer(name=name, rdtype=rdtype, status="ok" if found else "nodata", records=found)
    return lookup


def test_the_caa_set_is_the_first_found_climbing_up():
    records = {("example.test", "CAA"): ['0 issue "pki.goog"'], ("test", "CAA"): [f'0 issue "{LE}"']}
    found = caa_policy("a.b.example.test.", fake(records))
    assert (found.owner, found.records, found.unmeasured) == ("example.test", ['0 issue "pki.goog"'], "")
    at_name = caa_policy("example.test", fake(records))
    assert at_name.owner == "example.test"
    nothing = caa_policy("a.other", fake(records))
    assert (nothing.owner, nothing.records) == (None, [])
    failed = caa_policy("a.b.example.test", fake(records, broken={"b.example.test": "servfail"}))
    assert failed.owner is None and failed.unmeasured == "b.example.test CAA: servfail (no answer)"


def srv_answer(*records: str, status: str = "ok", ttl: int | None = 600) -> Answer:
    return Answer(name="_wire-server-federator._tcp.example.test", rdtype="SRV", status=status, records=list(records),
                  ttl=ttl, error="" if status == "ok" else "no SRV", resolver="127.0.0.1",
                  rdatas=[dns.rdata.from_text("IN", "SRV", r) for r in records])


OWNER, TARGET = "_wire-server-federator._tcp.example.test", "federator.example.test"
EXAMPLE = f"`{OWNER}. 600 IN SRV 0 10 443 {TARGET}.`"


def test_srv_pointing_at_the_federator_passes():
    r = assess_srv(OWNER, TARGET, 443, srv_answer(f"0 10 443 {TARGET}."))
    assert r.ok and r.observed == [f"0 10 443 {TARGET}."] and r.notes == []
    assert assess_srv(OWNER, TARGET.upper(), 443, srv_answer(f"0 1 443 {TARGET}.")).ok


def test_srv_wrong_port_weight_or_target_names_each_defect():
    r = assess_srv(OWNER, TARGET, 443, srv_answer("0 0 8443 other.example.test.", f"0 10 443 {TARGET}."))
    assert r.problems == [f"SRV {OWNER} \"0 0 8443 other.example.test.\": port 8443, need 443; weight 0, need > 0; "
                          f"target other.example.test, need {TARGET}: change it to {EXAMPLE}"]
    assert assess_srv(OWNER, TARGET, 443, srv_answer(f"0 10 442 {TARGET}.")).problems[0].endswith(
        f": port 442, need 443: change it to {EXAMPLE}")


def test_srv_missing_or_unanswered():
    r = assess_srv(OWNER, TARGET, 443, srv_answer(status="nxdomain"))
    assert r.problems == [f"no SRV record at {OWNER} (no SRV): publish {EXAMPLE}"] and r.observed == "nxdomain"
    r = assess_srv(OWNER, TARGET, 443, srv_answer(status="timeout"))
    assert r.problems == [] and r.unmeasured == [f"{OWNER} SRV: timeout (no SRV)"]


def test_srv_ttl_above_a_day_is_a_note():
    assert assess_srv(OWNER, TARGET, 443, srv_answer(f"0 10 443 {TARGET}.", ttl=86400)).notes == []
    r = assess_srv(OWNER, TARGET, 443, srv_answer(f"0 10 443 {TARGET}.", ttl=86401))
    assert r.ok and r.notes == ["TTL 86401s is above the 86400s the docs suggest once stable"]


def closed_port() -> int:
    return free_port("127.0.0.1")


def aaaa(name: str, *addresses: str, status: str = "ok") -> Answer:
    return Answer(name=name, rdtype="AAAA", status=status, records=list(addresses), resolver="127.0.0.1",
                  error="" if status == "ok" else "x", rdatas=[dns.rdata.from_text("IN", "AAAA", a) for a in addresses])


def test_aaaa_must_answer_on_the_port():
    with socket.socket(socket.AF_INET6) as listener:
        try:
            listener.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")
        listener.listen()
        port = listener.getsockname()[1]
        good = assess_aaaa({"a.example.test": aaaa("a.example.test", "::1"),
                            "b.example.test": aaaa("b.example.test", status="nodata")}, port, 1)
        assert good.ok and good.observed == {"a.example.test": ["::1"], "b.example.test": "no AAAA"}
    port = closed_port()
    bad = assess_aaaa({"a.example.test": aaaa("a.example.test", "::1")}, port, 1)
    assert bad.problems == [f"a.example.test has AAAA ::1 (resolver 127.0.0.1) but TCP [::1]:{port} fails (refused): "
                            "remove `a.example.test. IN AAAA ::1` or make IPv6 ingress work"]
    unmeasured = assess_aaaa({"a.example.test": aaaa("a.example.test", status="servfail")}, port, 1)
    assert unmeasured.unmeasured == ["a.example.test AAAA: servfail (x)"] and unmeasured.problems == []


@pytest.mark.parametrize(("text", "parsed"), [
    ("192.0.2.1", ("192.0.2.1", 53)), (" 192.0.2.1:5353 ", ("192.0.2.1", 5353)), ("2001:db8::1", ("2001:db8::1", 53)),
    ("[2001:db8::1]:5353", ("2001:db8::1", 5353)), ("[2001:db8::1]", ("2001:db8::1", 53)),
    ("192.0.2.1:1", ("192.0.2.1", 1)), ("192.0.2.1:65535", ("192.0.2.1", 65535)),
])
def test_nameserver_syntax(text, parsed):
    assert parse_nameserver(text) == parsed


@pytest.mark.parametrize(("text", "why"), [
    ("192.0.2.1:0", "port must be 1-65535"), ("192.0.2.1:65536", "port must be 1-65535"),
    ("192.0.2.1:x", "port must be 1-65535"), ("[2001:db8::1", "missing ']'"),
    ("[2001:db8::1]5353", "expected ':port' after ']'"), ("ns.example.test", "'ns.example.test' is not an IP address"),
])
def test_bad_nameservers_are_refused_with_the_reason(text, why):
    with pytest.raises(NameserverError, match=f"bad nameserver {text!r}: {why}".replace("[", r"\[").replace("]", r"\]")):
        parse_nameserver(text)


def test_nameserver_shown_as_given():
    assert format_nameserver(("192.0.2.1", 53)) == "192.0.2.1"
    assert format_nameserver(("192.0.2.1", 5353)) == "192.0.2.1:5353"
    assert format_nameserver(("2001:db8::1", 5353)) == "[2001:db8::1]:5353"
    assert format_nameserver(("2001:db8::1", 53)) == "[2001:db8::1]"


def test_every_record_of_the_set_is_tried_and_the_deciding_one_is_named():
    ok = f'0 issue "{LE}"'
    for first in (f'0 issue "{LE}; validationmethods=dns-01"', f'0 issue "{LE}; accounturi={ACCOUNT}0"',
                  f'0 issue "{LE}; bad"', f'0 issue "{LE}; validationmethods=a_b"', '0 issue "pki.goog"'):
        decision = policy(first, ok).decide(LE, account_uri=ACCOUNT)
        assert (decision.allowed, decision.record) == (True, ok), (first, decision)
        assert decision.why == f"CAA '{ok}' at example.test allows {LE}"
    both = policy('0 issue "pki.goog"', '0 issue "sectigo.com"').decide(LE)
    assert both.why.endswith("(issue records: '0 issue \"pki.goog\"' names pki.goog; '0 issue \"sectigo.com\"' names "
                             "sectigo.com)")
    critical = policy(ok, '128 tbs "x"').decide(LE)
    assert critical.record == '128 tbs "x"'
    listed = policy(f'0 issue "{LE}; validationmethods=dns-01,http-01"').decide(LE)
    assert listed.allowed is True and listed.why.endswith(f"allows {LE} with http-01")
    assert listed.record == f'0 issue "{LE}; validationmethods=dns-01,http-01"'


def test_allows_is_for_the_name_itself_not_a_wildcard():
    assert policy(f'0 issue "{LE}"', '0 issuewild ";"').allows(LE) == (
        True, f"CAA '0 issue \"{LE}\"' at example.test allows {LE}")
    assert policy(f'0 issue "{LE}"', '0 issuewild ";"').allows(LE, wildcard=True)[0] is False


def test_issue_parameters_keep_everything_after_the_first_equals_sign():
    assert parse_issue_value("ca.test; accounturi=https://ca.test/acct?id=1").parameters == {
        "accounturi": "https://ca.test/acct?id=1"}
    assert parse_issue_value("ca.test; ;").malformed == "parameter '' is not tag=value"


def test_assessments_state_what_was_expected_and_keep_the_evidence():
    caa = assess_caa({"a.example.test": policy('0 issue "pki.goog"', name="a.example.test")}, LE)
    assert caa.expected == f"no CAA record, or one allowing {LE} with http-01"
    assert caa.evidence["a.example.test"] == {"caa_owner": "example.test", "records": ['0 issue "pki.goog"'],
                                              "decision": policy('0 issue "pki.goog"').decide(LE).why}
    dns01 = assess_caa({"a.example.test": policy(f'0 issue "{LE}; validationmethods=dns-01"')}, LE, challenge="dns-01")
    assert dns01.ok
    record = f'0 issue "{LE}; accounturi={ACCOUNT}"'
    two = assess_caa({"a.example.test": policy(record), "b.example.test": policy(record)}, LE)
    assert two.unmeasured[0].startswith("a.example.test, b.example.test: CAA '")
    srv = assess_srv(OWNER, TARGET, 443, srv_answer(f"0 10 443 {TARGET}."))
    assert srv.expected == f"SRV {OWNER} -> {TARGET}:443, weight > 0"
    assert srv.evidence["srv"]["records"] == [f"0 10 443 {TARGET}."]


def test_every_name_is_judged_after_one_without_answer():
    from wirecheck.probes.dns import assess_points_to

    answers = {"a.example.test": Answer("a.example.test", "A", "timeout", error="t"),
               "b.example.test": Answer("b.example.test", "A", "nodata", resolver="127.0.0.1"),
               "c.example.test": Answer("c.example.test", "A", "nxdomain", resolver="127.0.0.1"),
               "d.example.test": Answer("d.example.test", "A", "ok", records=["10.0.0.1", "10.0.0.2"],
                                        rdatas=[dns.rdata.from_text("IN", "A", "10.0.0.1"),
                                                dns.rdata.from_text("IN", "A", "10.0.0.2")])}
    r = assess_points_to(answers, {"192.0.2.1", "192.0.2.2"})
    assert r.unmeasured == ["a.example.test A: timeout (t)"]
    assert len(r.problems) == 3
    assert r.problems[2] == ("d.example.test resolves to 10.0.0.1, 10.0.0.2 (resolver none), expected 192.0.2.1, "
                             "192.0.2.2: change `d.example.test. IN A` from 10.0.0.1, 10.0.0.2 to 192.0.2.1, 192.0.2.2")
    chained = Answer("e.example.test", "A", "nodata", cname_chain=["x.example.net", "y.example.net"], resolver="r")
    assert assess_points_to({"e.example.test": chained}, {"192.0.2.1"}).problems == [
        "e.example.test via CNAME x.example.net -> y.example.net (resolver r) has no A record: add "
        "`y.example.net. IN A 192.0.2.1`"]


def test_aaaa_is_tried_at_the_listed_address_for_every_name():
    with socket.socket(socket.AF_INET6) as listener:
        try:
            listener.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")
        listener.listen()
        port = listener.getsockname()[1]
        r = assess_aaaa({"a.example.test": aaaa("a.example.test", status="timeout"),
                         "b.example.test": aaaa("b.example.test", status="nodata"),
                         "c.example.test": aaaa("c.example.test", "::1"),
                         "d.example.test": aaaa("d.example.test", "100::1")}, port, 0.5)  # discard prefix
    assert r.expected == f"no AAAA records, or IPv6 addresses that accept TCP {port}"
    assert r.observed == {"a.example.test": "timeout", "b.example.test": "no AAAA", "c.example.test": ["::1"],
                          "d.example.test": ["100::1"]}
    assert r.evidence[f"c.example.test [::1]:{port}"] == "connected"
    assert r.evidence["c.example.test"]["records"] == ["::1"]
    assert len(r.problems) == 1 and r.problems[0].startswith(f"d.example.test has AAAA 100::1 (resolver 127.0.0.1) but "
                                                             f"TCP [100::1]:{port} fails (")
    assert r.evidence[f"d.example.test [100::1]:{port}"] != "connected"


def test_a_bad_port_in_brackets_names_the_whole_option():
    with pytest.raises(NameserverError, match=r"bad nameserver '\[2001:db8::1\]:0': port must be 1-65535"):
        parse_nameserver("[2001:db8::1]:0")


def test_the_caa_policy_is_for_the_name_asked():
    records = {("example.test", "CAA"): ['0 issue "pki.goog"']}
    assert caa_policy("a.example.test", fake(records)).name == "a.example.test"
    assert caa_policy("a.other", fake(records)).name == "a.other"
    failed = caa_policy("a.example.test", fake(records, broken={"a.example.test": "timeout"}))
    assert (failed.name, failed.records) == ("a.example.test", [])


def test_an_answer_is_kept_whole_in_the_evidence():
    answer = Answer("a.example.test", "A", "ok", records=["192.0.2.1"], cname_chain=["b.example.test"],
                    resolver="127.0.0.1", ttl=60, error="")
    assert answer.evidence() == {"name": "a.example.test", "type": "A", "status": "ok", "records": ["192.0.2.1"],
                                 "cname_chain": ["b.example.test"], "resolver": "127.0.0.1", "ttl": 60, "error": ""}


def test_caa_names_after_one_without_answer_are_still_judged():
    policies = {"a.example.test": CaaPolicy("a.example.test", None, [], unmeasured="example.test CAA: timeout (t)"),
                "b.example.test": policy('0 issue "pki.goog"', name="b.example.test")}
    r = assess_caa(policies, LE)
    assert r.unmeasured == ["example.test CAA: timeout (t)"] and len(r.problems) == 1
    assert r.problems[0].startswith("b.example.test: ")
