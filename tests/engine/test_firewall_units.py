"""The firewall reader's conditions at their edges (fast, no netfilter): interface patterns and
negations, destination/source address matches per path and address family, and how the host's
printouts are combined (tests/engine/test_firewall.py covers the constructs; tests/checks/
test_firewall_constructs.py the same against real netfilter)."""

from __future__ import annotations

import pytest

from wirecheck.firewall import (
    View,
    describe,
    judge,
    nft_chain_devices,
    read_view,
    ruleset_from_iptables,
    ruleset_from_nft,
)

HOST = {"l3_ifaces": ["eth0"], "local_addresses": ["198.18.1.2"]}
OPEN = ("-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT")
DROP = "drop by `{}`"
SOME = "cannot judge: {what} (true for some of the host's interfaces/addresses only) in `{rule}` (may end in: drop by `{rule}`)"


def one(rule: str, **kw) -> tuple[list[str], list[str]]:
    """Decisions on tcp/80 and notes for one rule after open policies."""
    judged = judge(ruleset_from_iptables("\n".join((*OPEN, rule))), [("tcp", 80, 80)], **{**HOST, **kw})
    return describe(judged.decisions), judged.notes


def blocked(rule: str, chain: str = "INPUT", **kw) -> bool:
    got, _notes = one(rule, **kw)
    assert got in ([], [f"{chain} tcp/80: {DROP.format(rule)}"]), got
    return bool(got)


@pytest.mark.parametrize(("rule", "ifaces", "drops"), [
    ("-A INPUT -i eth+ -j DROP", ["eth0", "eth1"], True),        # a wildcard over every interface
    ("-A INPUT -i eth0 -j DROP", ["eth0"], True),
    ("-A INPUT -i eth0 -j DROP", ["eth01"], False),              # no wildcard: the whole name
    ("-A INPUT -i eth0 -j DROP", ["ens3"], False),
    ("-A INPUT ! -i eth0 -j DROP", ["eth0"], False),
    ("-A INPUT ! -i eth0 -j DROP", ["eth1"], True),
    ("-A INPUT ! -i eth+ -j DROP", ["eth1", "eth2"], False),
    ("-A INPUT -o eth0 -j DROP", ["eth0"], False),               # no outgoing interface on the way in
    ("-A INPUT ! -o eth0 -j DROP", ["eth0"], True),
])
def test_interface_matches_on_the_way_in(rule, ifaces, drops):
    assert blocked(rule, l3_ifaces=ifaces) is drops


def test_an_interface_wildcard_true_for_some_interfaces_only_is_cannot_judge():
    rule = "-A INPUT -i eth+ -j DROP"
    assert one(rule, l3_ifaces=["eth0", "ens3"])[0] == [f"INPUT tcp/80: {SOME.format(what='-i eth+', rule=rule)}"]
    rule = "-A INPUT ! -i eth+ -j DROP"
    assert one(rule, l3_ifaces=["eth0", "ens3"])[0] == [f"INPUT tcp/80: {SOME.format(what='! -i eth+', rule=rule)}"]


def test_interfaces_on_the_way_out_and_through():
    assert blocked("-A OUTPUT -i eth0 -j DROP", "OUTPUT", paths=("out",)) is False   # no input interface outbound
    assert blocked("-A OUTPUT ! -i eth0 -j DROP", "OUTPUT", paths=("out",)) is True
    rule = "-A FORWARD -o eth0 -j DROP"
    assert one(rule, paths=("forward",))[0] == [
        f"FORWARD tcp/80: cannot judge: -o eth0 (the outgoing interface of forwarded/outbound traffic is not "
        f"modelled) in `{rule}` (may end in: drop by `{rule}`)"]


@pytest.mark.parametrize(("rule", "addresses", "drops"), [
    ("-A INPUT -d 0.0.0.0/0 -j DROP", ["198.18.1.2"], True),
    ("-A INPUT ! -d 0.0.0.0/0 -j DROP", ["198.18.1.2"], False),
    ("-A INPUT -d 198.18.1.0/24 -j DROP", ["198.18.1.2"], True),
    ("-A INPUT -d 198.18.1.2/32 -j DROP", ["198.18.1.2"], True),
    ("-A INPUT -d 198.18.1.3/32 -j DROP", ["198.18.1.2"], False),
    ("-A INPUT ! -d 198.18.1.0/24 -j DROP", ["198.18.1.2"], False),
    ("-A INPUT ! -d 10.0.0.0/8 -j DROP", ["198.18.1.2"], True),
    ("-A INPUT -d 0.0.0.0/1 -j DROP", ["::5"], False),           # an IPv6 address is in no IPv4 network
    ("-A INPUT -d 198.18.1.0/24 -j DROP", ["198.18.1.2", "198.18.1.9"], True),
])
def test_destination_is_one_of_the_hosts_addresses(rule, addresses, drops):
    assert blocked(rule, local_addresses=addresses) is drops


def test_a_destination_some_or_unknown_addresses_match_is_cannot_judge():
    rule = "-A INPUT -d 198.18.1.0/24 -j DROP"
    assert one(rule, local_addresses=["198.18.1.2", "10.0.0.1"])[0] == [
        f"INPUT tcp/80: {SOME.format(what='-d 198.18.1.0/24', rule=rule)}"]
    assert one(rule, local_addresses=None)[0] == [
        f"INPUT tcp/80: cannot judge: -d 198.18.1.0/24 (the receiving interface/address is not known) in `{rule}` "
        f"(may end in: drop by `{rule}`)"]


def test_addresses_on_the_way_out_swap_source_and_destination():
    # outbound, the destination is the peer (any peer): a drop for some peers only is noted, not counted
    got, notes = one("-A OUTPUT -d 198.18.1.0/24 -j DROP", paths=("out",))
    assert got == [] and notes == ["`-A OUTPUT -d 198.18.1.0/24 -j DROP` drops some sources only (-d 198.18.1.0/24); "
                                   "not counted"]
    assert blocked("-A OUTPUT -d 0.0.0.0/0 -j DROP", "OUTPUT", paths=("out",)) is True
    # ... and the source is the host itself
    assert blocked("-A OUTPUT -s 198.18.1.2 -j DROP", "OUTPUT", paths=("out",)) is True
    assert blocked("-A OUTPUT -s 10.0.0.0/8 -j DROP", "OUTPUT", paths=("out",)) is False
    assert blocked("-A OUTPUT ! -s 198.18.1.2 -j DROP", "OUTPUT", paths=("out",)) is False
    assert blocked("-A OUTPUT ! -s 10.0.0.0/8 -j DROP", "OUTPUT", paths=("out",)) is True
    assert blocked("-A OUTPUT -s 0.0.0.0/0 -j DROP", "OUTPUT", paths=("out",)) is True


def test_sources_on_the_way_in():
    assert blocked("-A INPUT -s 0.0.0.0/0 -j DROP") is True                 # every client
    got, notes = one("-A INPUT -s 203.0.113.0/24 -j DROP")                  # some clients: noted only
    assert got == [] and notes == ["`-A INPUT -s 203.0.113.0/24 -j DROP` drops some sources only "
                                   "(-s 203.0.113.0/24 (only some sources)); not counted"]


SAVE = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 80 -j DROP\nCOMMIT\n"
SAVE6 = "*filter\n:INPUT DROP [0:0]\nCOMMIT\n"


def test_iptables_without_the_nft_tool_is_read_as_the_nft_backend():
    rs = read_view(View(saves={"iptables-nft": SAVE, "ip6tables-nft": SAVE6}))
    assert rs.sources == ["iptables-nft-save", "ip6tables-nft-save"]
    assert describe(judge(rs, [("tcp", 80, 80)], **HOST).decisions) == [
        "INPUT tcp/80: drop by `-A INPUT -p tcp -m tcp --dport 80 -j DROP`"]
    assert rs.notes == []


def test_what_was_read_and_what_failed_is_listed():
    rs = read_view(View(nft={"nftables": []}, saves={"iptables-nft": SAVE, "ip6tables-nft": None,
                                                     "iptables-legacy": " \n", "ip6tables-legacy": SAVE6},
                        save_errors={"ip6tables-nft": "exit 1: permission denied"}))
    assert rs.sources == ["nft -j list ruleset", "iptables-nft-save", "ip6tables-legacy-save"]
    assert rs.notes == ["ip6tables-nft-save failed: exit 1: permission denied"]
    # the legacy ip6 table's DROP policy is read (for IPv6 only); the blank legacy ip save adds nothing
    assert [c.name for c in rs.chains.values() if c.family == "ip6"] == ["INPUT"]
    # iptables text read with nft present: its tables come through nft's (here: none), not as a second copy
    assert [c for c in rs.chains.values() if c.family == "ip"] == []


def test_nft_failing_with_iptables_readable_is_a_note_not_an_error():
    rs = read_view(View(nft_error="nft: command failed", saves={"iptables-legacy": SAVE}))
    assert rs.notes == ["nftables not read: nft: command failed"]
    assert rs.sources == ["iptables-legacy-save"]
    assert describe(judge(rs, [("tcp", 80, 80)], **HOST).decisions) == [
        "INPUT tcp/80: drop by `-A INPUT -p tcp -m tcp --dport 80 -j DROP`"]


def test_ingress_devices_come_from_nft_list_chains_when_the_json_lacks_them():
    items = [{"table": {"family": "netdev", "name": "t", "handle": 1}},
             {"chain": {"family": "netdev", "table": "t", "name": "ing", "handle": 1, "type": "filter",
                        "hook": "ingress", "prio": 0, "policy": "drop"}},
             {"chain": {"family": "netdev", "table": "t", "name": "other", "handle": 2, "type": "filter",
                        "hook": "ingress", "prio": 0, "policy": "drop"}}]
    chains = ("table netdev t {\n\tchain ing {\n\t\ttype filter hook ingress device \"eth9\" priority 0; "
              "policy drop;\n\t}\n}\n")
    rs = read_view(View(nft={"nftables": items}, nft_chains=chains))
    assert {c.name: c.devices for c in rs.chains.values()}["ing"] == ["eth9"]
    got = describe(judge(rs, [("tcp", 80, 80)], **HOST).decisions)
    # `ing` is bound to eth9, not the host's eth0: only the chain of unknown device counts (cannot judge)
    assert not any("chain ing" in d for d in got), got
    assert any("chain other" in d for d in got), got


def test_chain_devices_need_a_table_a_chain_and_a_hook():
    assert nft_chain_devices("chain x {\n type filter hook ingress device eth0 priority 0;\n}\n") == {}
    assert nft_chain_devices("table netdev t {\n type filter hook ingress device eth0 priority 0;\n}\n") == {}
    text = "table netdev t {\n chain c {\n  comment \"device eth0\"\n  type filter hook ingress devices = { \"a\", b } priority 0;\n }\n}\n"
    assert nft_chain_devices(text) == {"netdev|t|c": ["a", "b"]}
    text2 = "table bridge br {\n chain c {\n  type filter hook input priority 0;\n }\n}\n"
    assert nft_chain_devices(text2) == {}


# --- nftables: what each kind of match means for a client's tcp/80 packet to the host -----------------------

def _pl(proto: str, fld: str) -> dict:
    return {"payload": {"protocol": proto, "field": fld}}


def _meta(key: str) -> dict:
    return {"meta": {"key": key}}


def nft_one(left: object, right: object, op: str = "==", **kw) -> tuple[list[str], list[str]]:
    items = [{"table": {"family": "inet", "name": "t", "handle": 1}},
             {"chain": {"family": "inet", "table": "t", "name": "in", "handle": 1, "type": "filter", "hook": "input",
                        "prio": 0, "policy": "accept"}},
             {"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 2,
                       "expr": [{"match": {"op": op, "left": left, "right": right}}, {"drop": None}]}}]
    judged = judge(ruleset_from_nft({"nftables": items}), [("tcp", 80, 80)], **{**HOST, **kw})
    return describe(judged.decisions), judged.notes


def verdict(left: object, right: object, op: str = "==") -> str:
    """drop | none | cannot judge | some sources (noted, not counted) | some packets (counted)."""
    got, notes = nft_one(left, right, op)
    if got and "cannot judge" in got[0]:
        return "cannot judge"
    if got:
        assert got[0].startswith("INPUT tcp/80: drop by `nft: table inet t chain in handle 2:"), got
        return "some packets" if notes and "drops some packets only" in notes[0] else "drop"
    if notes:
        assert "drops some sources only" in notes[0], notes
        return "some sources"
    return "none"


@pytest.mark.parametrize(("left", "right", "expected"), [
    (_pl("tcp", "dport"), 80, "drop"), (_pl("tcp", "dport"), 81, "none"), (_pl("tcp", "dport"), 79, "none"),
    (_pl("udp", "dport"), 80, "none"),                 # another protocol's port
    (_pl("sctp", "dport"), 80, "none"),
    (_pl("th", "dport"), 80, "drop"),                  # transport header: any protocol's port
    (_pl("tcp", "dport"), {"range": [80, 80]}, "drop"), (_pl("tcp", "dport"), {"range": [81, 90]}, "none"),
    (_pl("tcp", "dport"), {"range": [70, 79]}, "none"), (_pl("tcp", "dport"), {"set": [22, 80]}, "drop"),
    (_pl("tcp", "dport"), [22, 443], "none"), (_pl("tcp", "dport"), "80", "drop"),
    (_pl("tcp", "sport"), 1234, "some sources"), (_pl("th", "sport"), 1234, "some sources"),
    (_pl("udp", "sport"), 1234, "none"),               # a udp header a tcp packet does not have
    (_pl("ip", "saddr"), "203.0.113.4", "some sources"), (_pl("ip6", "saddr"), "2001:db8::1", "some sources"),
    (_pl("ip", "daddr"), "198.18.1.2", "drop"), (_pl("ip", "daddr"), "10.0.0.1", "none"),
    (_pl("ip", "daddr"), {"prefix": {"addr": "198.18.0.0", "len": 15}}, "drop"),
    (_pl("ip", "daddr"), {"prefix": {"addr": "198.16.0.0", "len": 15}}, "none"),
    (_pl("ip", "daddr"), {"range": ["198.18.1.1", "198.18.1.2"]}, "drop"),
    (_pl("ip", "daddr"), {"range": ["198.18.1.3", "198.18.1.9"]}, "none"),
    (_pl("ip6", "daddr"), "2001:db8::1", "none"),
    (_pl("ip", "protocol"), "tcp", "drop"), (_pl("ip", "protocol"), "udp", "none"),
    (_pl("ip6", "nexthdr"), "tcp", "drop"), (_pl("ip6", "protocol"), "tcp", "cannot judge"),
    (_pl("ip", "nexthdr"), "tcp", "cannot judge"),
    (_pl("icmp", "type"), "echo-request", "none"), (_pl("ah", "spi"), 1, "none"), (_pl("udp", "length"), 8, "none"),
    (_pl("tcp", "flags"), "syn", "cannot judge"),      # the tcp packet's own header: not modelled
    (_pl("ether", "saddr"), "aa:bb:cc:dd:ee:ff", "cannot judge"),
    (_meta("l4proto"), "tcp", "drop"), (_meta("l4proto"), "udp", "none"),
    (_meta("nfproto"), "ipv4", "drop"), (_meta("nfproto"), "ipv6", "none"),
    (_meta("protocol"), "ip", "drop"), (_meta("protocol"), "ip6", "none"),
    (_meta("iifname"), "eth0", "drop"), (_meta("iifname"), "eth*", "drop"), (_meta("iifname"), "et*", "drop"),
    (_meta("iifname"), "lo", "none"), (_meta("iifname"), "eth", "none"), (_meta("iif"), "eth0", "drop"),
    (_meta("iifname"), {"set": ["lo", "eth0"]}, "drop"),
    (_meta("oifname"), "eth0", "none"), (_meta("oif"), "eth0", "none"),       # no outgoing interface inbound
    (_meta("obrname"), "br0", "none"), (_meta("ibrname"), "br0", "none"),
    (_meta("iifkind"), "veth", "cannot judge"), (_meta("iif"), 2, "cannot judge"),  # an interface index
    (_meta("pkttype"), "host", "drop"), (_meta("pkttype"), "broadcast", "none"),
    (_meta("mark"), 1, "cannot judge"),
    ({"ct": {"key": "state"}}, "new", "drop"), ({"ct": {"key": "state"}}, "invalid", "none"),
    ({"ct": {"key": "mark"}}, 1, "cannot judge"),
    ({"fib": {"flags": ["daddr"], "result": "type"}}, "local", "drop"),
    ({"fib": {"flags": ["daddr"], "result": "type"}}, "broadcast", "none"),
    ({"fib": {"flags": ["saddr", "iif"], "result": "oif"}}, False, "none"),      # rpf: clients have a route back
    ({"fib": {"flags": ["saddr", "iif"], "result": "oifname"}}, False, "none"),
    ({"fib": {"flags": ["daddr"], "result": "oif"}}, "eth0", "cannot judge"),
    ({"&": [_pl("tcp", "flags"), 2]}, 2, "cannot judge"), ({"&": [_pl("udp", "length"), 2]}, 2, "none"),
    ({"&": [_meta("mark"), 2]}, 2, "cannot judge"), ({"|": [_meta("mark"), 2]}, 2, "cannot judge"),
    ({">>": [_pl("tcp", "flags"), 2]}, 2, "cannot judge"),
    ({"numgen": {"mode": "random", "mod": 2}}, 0, "some packets"), ({"jhash": {"mod": 2}}, 0, "some packets"),
    ({"symhash": {"mod": 2}}, 0, "some packets"),
    ({"osf": {"key": "name"}}, "Linux", "cannot judge"), ({}, "x", "cannot judge"), (5, 5, "cannot judge"),
])
def test_each_nft_match_for_a_tcp_packet_to_the_host(left, right, expected):
    assert verdict(left, right) == expected


@pytest.mark.parametrize(("left", "right", "expected"), [
    (_pl("tcp", "dport"), 80, "none"), (_pl("tcp", "dport"), 81, "drop"), (_pl("udp", "dport"), 80, "none"),  # `udp dport != 80` implies udp
    (_meta("iifname"), "eth0", "none"), (_meta("iifname"), "lo", "drop"), (_meta("oifname"), "eth0", "drop"),
    (_meta("l4proto"), "udp", "drop"), (_pl("ip", "daddr"), "10.0.0.1", "drop"),
    ({"fib": {"flags": ["saddr", "iif"], "result": "oif"}}, False, "drop"),
])
def test_negated_nft_matches(left, right, expected):
    assert verdict(left, right, "!=") == expected


def test_port_comparisons():
    assert verdict(_pl("tcp", "dport"), 81, "<") == "drop" and verdict(_pl("tcp", "dport"), 80, "<") == "none"
    assert verdict(_pl("tcp", "dport"), 80, "<=") == "drop" and verdict(_pl("tcp", "dport"), 79, "<=") == "none"
    assert verdict(_pl("tcp", "dport"), 79, ">") == "drop" and verdict(_pl("tcp", "dport"), 80, ">") == "none"
    assert verdict(_pl("tcp", "dport"), 80, ">=") == "drop" and verdict(_pl("tcp", "dport"), 81, ">=") == "none"


def nft_rule(exprs: list, comment: str | None = None, sets: tuple = ()) -> tuple[list[str], list[str]]:
    """One rule in an accepting input chain (a second chain `other` drops everything), judged for tcp/80."""
    r: dict = {"family": "inet", "table": "t", "chain": "in", "handle": 2, "expr": exprs}
    if comment:
        r["comment"] = comment
    items = [{"table": {"family": "inet", "name": "t", "handle": 1}}, *sets,
             {"chain": {"family": "inet", "table": "t", "name": "in", "handle": 1, "type": "filter", "hook": "input",
                        "prio": 0, "policy": "accept"}},
             {"chain": {"family": "inet", "table": "t", "name": "other", "handle": 3}},
             {"rule": r}, {"rule": {"family": "inet", "table": "t", "chain": "other", "handle": 4,
                                    "expr": [{"drop": None}]}}]
    judged = judge(ruleset_from_nft({"nftables": items}), [("tcp", 80, 80)], **HOST)
    return describe(judged.decisions), judged.notes


def _m(left: object, right: object, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


D80 = _m(_pl("tcp", "dport"), 80)
NFT = "INPUT tcp/80: drop by `nft: table inet t chain in handle 2: {}`"


@pytest.mark.parametrize(("exprs", "shown"), [
    ([_m(_pl("ip", "daddr"), {"prefix": {"addr": "198.18.0.0", "len": 15}}),
      _m(_pl("tcp", "dport"), {"set": [80, {"range": [8000, 8080]}]}), {"counter": {"packets": 0, "bytes": 0}},
      {"drop": None}], "ip daddr 198.18.0.0/15 tcp dport { 80, 8000-8080 } counter drop"),
    ([_m({"ct": {"key": "state"}}, ["new", "untracked"]), D80, {"drop": None}],
     "ct state { new, untracked } tcp dport 80 drop"),
    ([{"vmap": {"key": _pl("tcp", "dport"), "data": {"set": [[80, {"drop": None}], [{"range": [1, 10]},
                                                                                     {"accept": None}]]}}}],
     "tcp dport vmap { 80 : drop, 1-10 : accept }"),
    ([D80, {"reject": {"type": "tcp reset"}}], "tcp dport 80 reject"),
    ([D80, {"continue": None}, {"drop": None}], "tcp dport 80 continue drop"),
])
def test_the_blocking_rule_is_shown_as_nft_lists_it(exprs, shown):
    got, _notes = nft_rule(exprs)
    assert got == [NFT.format(shown).replace("drop by", "reject by") if shown.endswith("reject") else NFT.format(shown)]


def test_a_rule_comment_is_part_of_its_name():
    assert nft_rule([D80, {"drop": None}], comment="keep out")[0] == [NFT.format('tcp dport 80 drop comment "keep out"')]


def test_rate_limits_and_sampling_are_counted_as_dropping_with_a_note():
    for stmt, shown in (({"limit": {"rate": 10, "per": "second", "inv": True}}, "limit rate over 10/second"),
                        ({"limit": {"rate": 10, "per": "second"}}, "limit rate 10/second")):
        got, notes = nft_rule([D80, stmt, {"drop": None}])
        assert got == [NFT.format(f"tcp dport 80 {shown} drop")]
        assert notes == [f"`nft: table inet t chain in handle 2: tcp dport 80 {shown} drop` drops some packets only "
                         f"({shown} (only some packets)); counted as dropping"]


def test_jumps_gotos_and_returns_lead_to_the_rule_that_decides():
    other = ["INPUT tcp/80: drop by `nft: table inet t chain other handle 4: drop`"]
    assert nft_rule([D80, {"log": {"prefix": "x"}}, {"jump": {"target": "other"}}])[0] == other
    assert nft_rule([D80, {"goto": {"target": "other"}}])[0] == other
    assert nft_rule([{"vmap": {"key": _pl("tcp", "dport"), "data": {"set": [[80, {"jump": {"target": "other"}}]]}}}]
                    )[0] == other
    assert nft_rule([D80, {"return": None}]) == ([], [])
    assert nft_rule([_m({"fib": {"flags": ["saddr", "iif"], "result": "oif"}}, False), D80, {"drop": None}]) == ([], [])


@pytest.mark.parametrize(("stmt", "what"), [
    ({"queue": {"num": 1}}, "queue"), ({"tproxy": {"port": 1}}, "tproxy"),
])
def test_a_verdict_not_modelled_is_cannot_judge(stmt, what):
    shown = f"nft: table inet t chain in handle 2: tcp dport 80 {what}"
    assert nft_rule([D80, stmt])[0] == [f"INPUT tcp/80: cannot judge: {what} in `{shown}` (may end in: drop by `{shown}`)"]


def test_unmodelled_expressions_are_named_in_the_doubt():
    got, _ = nft_rule([_m({"&": [_meta("mark"), 255]}, 0), D80, {"drop": None}])
    assert got[0].startswith("INPUT tcp/80: cannot judge: meta mark & 255 0 in `")
    got, _ = nft_rule([_m({"concat": [_pl("ip", "daddr"), _pl("tcp", "dport")]}, {"concat": ["198.18.1.2", 80]}),
                       {"drop": None}])
    assert got[0].startswith("INPUT tcp/80: cannot judge: ip daddr . tcp dport 198.18.1.2 . 80 in `")
    got, _ = nft_rule([_m({"payload": {"base": "th", "offset": 16, "len": 16}}, 80), {"drop": None}])
    assert got[0].startswith("INPUT tcp/80: cannot judge: @th,16,16 80 in `")
    got, _ = nft_rule([D80, {"xt": {"type": "target", "name": "TPROXY"}}])
    assert got[0].startswith("INPUT tcp/80: cannot judge: iptables match/target 'TPROXY' (xt target; its options are "
                             "only shown by iptables-nft-save) in `nft: table inet t chain in handle 2: tcp dport 80 "
                             "xt target TPROXY`; iptables target TPROXY in `")
    got, notes = nft_rule([D80, {"dnat": {"addr": "1.2.3.4"}}])
    assert got == [] and notes == ["`nft: table inet t chain in handle 2: tcp dport 80 dnat` translates the address "
                                   "(dnat); the path after it is judged as if untranslated"]


def _set(elem: object, name: str = "ports") -> dict:
    return {"set": {"family": "inet", "table": "t", "name": name, "type": "inet_service", "elem": elem}}


@pytest.mark.parametrize(("elem", "drops"), [
    ([22, {"elem": {"val": 80, "comment": "web"}}], True),   # an element with a comment
    ([22, {"range": [8000, 8001]}], False),
    ({"range": [70, 90]}, True),                                  # one element, not in a list
    ({"range": [81, 90]}, False),
    ([22, 443], False),
])
def test_named_sets(elem, drops):
    got, _ = nft_rule([_m(_pl("tcp", "dport"), "@ports"), {"drop": None}], sets=(_set(elem),))
    assert got == ([NFT.format("tcp dport @ports drop")] if drops else [])


def test_an_unknown_set_and_a_verdict_map_by_name():
    got, _ = nft_rule([_m(_pl("tcp", "dport"), "@nothere"), {"drop": None}])
    assert got[0].startswith("INPUT tcp/80: cannot judge: tcp dport @nothere in `")
    vmap = {"map": {"family": "inet", "table": "t", "name": "vm", "type": "inet_service", "map": "verdict",
                    "elem": [[80, {"drop": None}]]}}
    assert nft_rule([{"vmap": {"key": _pl("tcp", "dport"), "data": "@vm"}}], sets=(vmap,))[0] == [
        NFT.format("tcp dport vmap @vm")]


# --- iptables: what each match means for a client's tcp/80 packet to the host --------------------------------

def ipt_verdict(rule_tail: str, target: str = "-j DROP") -> str:
    got, notes = one(f"-A INPUT {rule_tail} {target}".replace("  ", " "))
    if got and "cannot judge" in got[0]:
        return "cannot judge"
    if got:
        kind = got[0].split(": ", 1)[1].split(" by ", 1)[0]
        if notes and "drops some packets only" in notes[0]:
            return f"some packets ({kind})"
        return kind
    if notes and "drops some sources only" in notes[0]:
        return "some sources"
    if notes:
        return "note: " + notes[0].split("` ", 1)[1]
    return "none"


@pytest.mark.parametrize(("tail", "expected"), [
    ("-p tcp", "drop"), ("-p 6", "drop"), ("--protocol tcp", "drop"), ("-p udp", "none"), ("-p 17", "none"),
    ("! -p udp", "drop"), ("! -p tcp", "none"), ("-p all", "drop"),
    ("-p tcp -m tcp --dport 80", "drop"), ("-p tcp -m tcp --dport 81", "none"), ("-p tcp --dport 79", "none"),
    ("-p tcp --dport 79:80", "drop"), ("-p tcp --dport 80:81", "drop"), ("-p tcp --dport 81:90", "none"),
    ("-p tcp --destination-port 80", "drop"), ("-p tcp ! --dport 80", "none"), ("-p tcp ! --dport 81", "drop"),
    ("-p tcp -m multiport --dports 22,80", "drop"), ("-p tcp -m multiport --dports 22,443", "none"),
    ("-p tcp -m multiport --destination-ports 70:90", "drop"),
    ("-p tcp --sport 1234", "some sources"), ("-p tcp --source-port 1234", "some sources"),
    ("-p tcp -m multiport --ports 80", "drop"), ("-p tcp -m multiport ! --ports 80", "none"),
    ("-m conntrack --ctstate NEW", "drop"), ("-m conntrack --ctstate INVALID", "none"),
    ("-m conntrack ! --ctstate INVALID", "drop"), ("-m state --state NEW,ESTABLISHED", "drop"),
    ("-p tcp --syn", "drop"), ("-p tcp ! --syn", "drop"),   # established packets count too
    ("-m comment --comment blocked", "drop"),
    ("-m addrtype --dst-type LOCAL", "drop"), ("-m addrtype --dst-type BROADCAST", "none"),
    ("-m addrtype ! --dst-type LOCAL", "none"), ("-m addrtype --src-type LOCAL", "cannot judge"),
    ("-m pkttype --pkt-type unicast", "drop"), ("-m pkttype --pkt-type broadcast", "none"),
    ("-m pkttype ! --pkt-type broadcast", "drop"),
    ("-m set --match-set bad src", "some sources"), ("-m set --match-set bad src,src", "some sources"),
    ("-m set --match-set bad dst", "cannot judge"),
    ("-p icmp -m icmp --icmp-type 8", "none"), ("-m icmp --icmp-type 8", "none"),
    ("-p tcp -m tcp --tcp-flags SYN,RST SYN", "cannot judge"), ("-p udp -m tcp --tcp-flags SYN,RST SYN", "none"),
    ("-m rpfilter --invert", "none"), ("-m rpfilter --validmark", "drop"), ("-m rpfilter", "drop"),
    ("-m iprange --dst-range 198.18.1.1-198.18.1.5", "drop"), ("-m iprange --dst-range 198.18.1.3-198.18.1.5", "none"),
    ("-m iprange --src-range 203.0.113.1-203.0.113.9", "some sources"),
    ("-m frobnicate --zap 3", "cannot judge"), ("-m frobnicate", "cannot judge"),
    ("-m recent --name x --rcheck --seconds 60 --hitcount 4", "cannot judge"),  # --rcheck: not modelled
    ("-m owner --uid-owner 0", "cannot judge"), ("-m mark --mark 0x1", "cannot judge"),
])
def test_each_iptables_match_for_a_tcp_packet_to_the_host(tail, expected):
    assert ipt_verdict(tail) == expected


@pytest.mark.parametrize(("tail", "expected"), [
    ("-m limit --limit 5/sec --limit-burst 10", "some packets (drop)"),
    ("-m hashlimit --hashlimit-above 5/sec --hashlimit-mode srcip --hashlimit-name x", "some packets (drop)"),
    ("-m connlimit --connlimit-above 10 --connlimit-mask 32 --connlimit-saddr", "some packets (drop)"),
    ("-m statistic --mode random --probability 0.5", "some packets (drop)"),
])
def test_rate_limits_in_iptables_drop_some_packets(tail, expected):
    assert ipt_verdict(tail) == expected


@pytest.mark.parametrize(("target", "expected"), [
    ("-j DROP", "drop"), ("-j REJECT --reject-with icmp-port-unreachable", "reject"), ("-j ACCEPT", "none"),
    ("-j RETURN", "none"), ("-j LOG --log-prefix x", "none"), ("-j MARK --set-mark 1", "none"),
    ("-j NFQUEUE --queue-num 1", "cannot judge"), ("-j NOSUCHCHAIN", "cannot judge"),
    ("--jump DROP", "drop"), ("-j drop", "drop"),
])
def test_each_iptables_target(target, expected):
    assert ipt_verdict("-p tcp --dport 80", target) == expected


def test_iptables_save_and_dash_s_forms():
    # a jump to a chain declared further down; a quoted comment with spaces; save-file comments and blanks
    save = ("# Generated by iptables-save v1.8.9\n*filter\n:INPUT ACCEPT [0:0]\n\n"
            "-A INPUT -j wall\n:wall - [0:0]\n"
            "-A wall -p tcp -m comment --comment \"keep them out\" -m tcp --dport 80 -j DROP\nCOMMIT\n")
    rule = '-A wall -p tcp -m comment --comment "keep them out" -m tcp --dport 80 -j DROP'
    assert describe(judge(ruleset_from_iptables(save), [("tcp", 80, 80)], **HOST).decisions) == [
        f"INPUT tcp/80: drop by `{rule}`"]
    # `iptables -S` prints the filter table; a `#nat` marker line starts the nat table
    dash_s = "-P INPUT ACCEPT\n-A INPUT -j later\n-N later\n-A later -p tcp --dport 443 -j DROP\n#nat\n" \
             "-P PREROUTING ACCEPT\n-A PREROUTING -p tcp --dport 80 -j DROP\n"
    rs = ruleset_from_iptables(dash_s)
    assert rs.sources == ["iptables-save"]
    assert sorted(c.table for c in rs.chains.values()) == ["filter", "filter", "nat"]
    assert describe(judge(rs, [("tcp", 80, 80), ("tcp", 443, 443)], **HOST).decisions) == [
        "PREROUTING tcp/80: drop by `-A PREROUTING -p tcp --dport 80 -j DROP`",
        "INPUT tcp/443: drop by `-A later -p tcp --dport 443 -j DROP`"]
    # a policy set on a chain of the save file, lower- or upper-case
    assert describe(judge(ruleset_from_iptables("*filter\n:INPUT DROP [0:0]\nCOMMIT\n"), [("tcp", 80, 80)],
                          **HOST).decisions) == ["INPUT tcp/80: drop by `iptables INPUT policy DROP`"]


@pytest.mark.parametrize(("short", "long"), [
    ("-s 0.0.0.0/0", "--source 0.0.0.0/0"), ("-s 203.0.113.0/24", "--source 203.0.113.0/24"),
    ("-d 198.18.1.2", "--destination 198.18.1.2"), ("-d 10.0.0.1", "--destination 10.0.0.1"),
    ("-i eth0", "--in-interface eth0"), ("-i lo", "--in-interface lo"), ("! -o eth0", "! --out-interface eth0"),
    ("-m conntrack --ctstate NEW", "--match conntrack --ctstate NEW"),
    ("-p tcp -m multiport --sports 1024:65535", "-p tcp -m multiport --source-ports 1024:65535"),
    ("-m connlimit --connlimit-upto 10", "-m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name x"),
    ("-p ipv6-icmp -m icmp6 --icmpv6-type 128", "-m icmp6 --icmpv6-type 128"),
    ("-m addrtype --src-type LOCAL", "-m addrtype --src-type LOCAL --limit-iface-in"),
])
def test_long_option_names_mean_what_the_short_ones_mean(short, long):
    assert ipt_verdict(long) == ipt_verdict(short)


def test_long_option_values_are_read():
    assert ipt_verdict("--source 203.0.113.0/24") == "some sources"
    assert ipt_verdict("--destination 198.18.1.2,10.0.0.1") == "drop"        # a list: any of them
    assert ipt_verdict("-d 10.0.0.1,10.0.0.2") == "none"
    assert ipt_verdict("--in-interface eth+") == "drop"
    assert ipt_verdict("-m iprange --src-range 203.0.113.1-203.0.113.9") == "some sources"
    assert ipt_verdict("-m iprange --dst-range 198.18.1.2") == "drop"          # a range of one address
    assert ipt_verdict("-m iprange --dst-range nonsense") == "cannot judge"
    assert ipt_verdict("-m conntrack --ctstate NEW", "--goto wall") == "cannot judge"   # wall is no chain here
    assert ipt_verdict("-m addrtype --src-type LOCAL") == "cannot judge"
    assert ipt_verdict("-m connlimit --connlimit-above 2 --connlimit-daddr") == "some packets (drop)"
