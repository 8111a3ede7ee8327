"""The netfilter reader on rulesets: names the rule that blocks each required port, follows every
family, hook, table and chain kind, and says "cannot judge" for what it does not model (never "none").

The JSON below has the shape `nft -j list ruleset` (nftables 1.0.6) prints; tests/checks/
test_firewall_constructs.py runs the same constructs through real netfilter."""

from __future__ import annotations

from typing import Any

import pytest

from wirecheck.firewall import (
    UnreadableRuleset,
    View,
    describe,
    judge,
    nft_chain_devices,
    read_view,
    ruleset_from_iptables,
    ruleset_from_nft,
)

REQUIRED = [("tcp", 22, 22), ("tcp", 80, 80), ("tcp", 443, 443), ("tcp", 3478, 3478), ("udp", 3478, 3478),
            ("udp", 32768, 65535)]
HOST = {"l3_ifaces": ["eth0"], "local_addresses": ["198.18.1.2"]}


def ipt(*lines: str, **kw: Any) -> list[str]:
    return describe(judge(ruleset_from_iptables("\n".join(lines)), REQUIRED, **{**HOST, **kw}).decisions)


# --- iptables ----------------------------------------------------------------------------------


def test_open_host_has_no_blocking():
    assert ipt("-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT", paths=("in", "forward")) == []


def test_drop_policy_blocks_what_no_rule_accepts():
    got = ipt("-P INPUT DROP", "-P FORWARD ACCEPT",
              "-A INPUT -i lo -j ACCEPT",
              "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
              "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
              "-A INPUT -p tcp -m multiport --dports 80,443,3478 -j ACCEPT",
              "-A INPUT -p udp -m udp --dport 3478 -j ACCEPT",
              "-A INPUT -p udp -m udp --dport 32768:50000 -j ACCEPT")
    assert got == ["INPUT udp/50001-65535: drop by `iptables INPUT policy DROP`"]


def test_rules_in_user_chains_are_followed():
    got = ipt("-P INPUT ACCEPT", "-N wall", "-A INPUT -j wall",
              "-A wall -p udp -m udp --dport 40000:40999 -j DROP",
              "-A wall -p tcp -m tcp --dport 443 -j REJECT --reject-with tcp-reset")
    assert got == ["INPUT tcp/443: reject by `-A wall -p tcp -m tcp --dport 443 -j REJECT --reject-with tcp-reset`",
                   "INPUT udp/40000-40999: drop by `-A wall -p udp -m udp --dport 40000:40999 -j DROP`"]


def test_return_and_goto():
    got = ipt("-P INPUT ACCEPT", "-N a", "-N b", "-A INPUT -g a", "-A INPUT -p udp -j DROP",
              "-A a -p udp --dport 40000 -j RETURN", "-A a -j b", "-A b -p udp --dport 40001 -j DROP")
    # RETURN from a chain entered by goto goes back to INPUT's caller: the DROP after the goto is never seen
    assert got == ["INPUT udp/40001: drop by `-A b -p udp --dport 40001 -j DROP`"]


def test_source_specific_drops_are_noted_not_counted():
    judged = judge(ruleset_from_iptables("-P INPUT ACCEPT\n-A INPUT -s 203.0.113.7/32 -j DROP\n"
                                         "-A INPUT -m conntrack --ctstate INVALID -j DROP"), REQUIRED, **HOST)
    assert judged.decisions == []
    assert any("drops some sources only" in n for n in judged.notes)


def test_an_accept_for_some_sources_or_a_rate_does_not_accept_every_client():
    for match in ("-s 10.0.0.0/8", "-m limit --limit 5/sec", "-m set --match-set friends src",
                  "-p udp -m udp --sport 53", "-m hashlimit --hashlimit-upto 50/sec --hashlimit-name x"):
        got = ipt("-P INPUT DROP", "-A INPUT -p tcp --dport 22 -j ACCEPT", f"-A INPUT {match} -j ACCEPT")
        assert "INPUT udp/32768-65535: drop by `iptables INPUT policy DROP`" in got, (match, got)
    # a destination match on the host's own address accepts, another address does not
    assert ipt("-P INPUT DROP", "-A INPUT -d 198.18.1.2/32 -j ACCEPT") == []
    assert "INPUT tcp/80: drop by `iptables INPUT policy DROP`" in ipt("-P INPUT DROP", "-A INPUT -d 10.9.9.9 -j ACCEPT")


def test_drops_tied_to_an_interface():
    rules = ("-P INPUT ACCEPT", "-A INPUT -i eth0 -p udp --dport 40000:40999 -j DROP",
             "-A INPUT -i docker0 -p tcp --dport 443 -j DROP", "-A INPUT -i eth+ -p tcp --dport 80 -j DROP",
             "-A INPUT ! -i eth0 -p tcp --dport 22 -j DROP")
    assert ipt(*rules) == ["INPUT tcp/80: drop by `-A INPUT -i eth+ -p tcp --dport 80 -j DROP`",
                           "INPUT udp/40000-40999: drop by `-A INPUT -i eth0 -p udp --dport 40000:40999 -j DROP`"]
    assert ipt(*rules, l3_ifaces=["ens3"]) == ["INPUT tcp/22: drop by `-A INPUT ! -i eth0 -p tcp --dport 22 -j DROP`"]
    unknown = ipt(*rules, l3_ifaces=None)
    assert any(d.startswith("INPUT udp/40000-40999: cannot judge: -i eth0 (the receiving interface") for d in unknown)


def test_a_match_we_cannot_evaluate_is_cannot_judge_never_none():
    got = ipt("-P INPUT ACCEPT", "-A INPUT -p udp -m owner --uid-owner 5 -j DROP",
              "-A INPUT -p tcp -m frobnicate --zap 3 -j DROP", "-A INPUT -p tcp --dport 22 -j NFQUEUE --queue-num 1")
    assert "INPUT udp/32768-65535: cannot judge: -m owner --uid-owner 5 in `-A INPUT -p udp -m owner --uid-owner 5 " \
           "-j DROP` (may end in: drop by `-A INPUT -p udp -m owner --uid-owner 5 -j DROP`)" in got
    assert any("-m frobnicate" in d and d.startswith("INPUT tcp/80: cannot judge") for d in got)
    assert any("-j NFQUEUE" in d and d.startswith("INPUT tcp/22: cannot judge") for d in got)
    # an ACCEPT we cannot judge before an ACCEPT policy changes nothing: no doubt to report
    assert ipt("-P INPUT ACCEPT", "-A INPUT -m owner --uid-owner 5 -j ACCEPT") == []


def test_raw_mangle_and_nat_tables_are_read():
    text = "\n".join(["*raw", ":PREROUTING ACCEPT [0:0]", "-A PREROUTING -p udp -m udp --dport 3478 -j DROP", "COMMIT",
                      "*mangle", ":PREROUTING ACCEPT [0:0]", "-A PREROUTING -p tcp -m tcp --dport 443 -j DROP", "COMMIT",
                      "*nat", ":PREROUTING ACCEPT [0:0]", "-A PREROUTING -p tcp -m tcp --dport 80 -j DROP", "COMMIT",
                      "*filter", ":INPUT ACCEPT [0:0]", "COMMIT"])
    assert describe(judge(ruleset_from_iptables(text), REQUIRED, **HOST).decisions) == [
        "PREROUTING tcp/80: drop by `-A PREROUTING -p tcp -m tcp --dport 80 -j DROP`",
        "PREROUTING tcp/443: drop by `-A PREROUTING -p tcp -m tcp --dport 443 -j DROP`",
        "PREROUTING udp/3478: drop by `-A PREROUTING -p udp -m udp --dport 3478 -j DROP`"]


def test_established_packets_count_too():
    assert ipt("-P INPUT ACCEPT", "-A INPUT -p udp -m conntrack --ctstate ESTABLISHED -j DROP")[-1] == \
        "INPUT udp/32768-65535: drop by `-A INPUT -p udp -m conntrack --ctstate ESTABLISHED -j DROP`"


def test_forward_and_output_paths_and_dockers_policy():
    rs = ruleset_from_iptables("-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-N DOCKER\n"
                               "-A FORWARD -o docker0 -j DOCKER\n-A OUTPUT -p udp --dport 40000:40999 -j DROP")
    fwd = judge(rs, REQUIRED, paths=("forward",), **HOST)
    assert describe(fwd.decisions)[0] == "FORWARD tcp/22: drop by `iptables FORWARD policy DROP`"
    docker = judge(rs, REQUIRED, paths=("forward",), **HOST, ignore=lambda c: c.name == "DOCKER",
                   ignore_policy=lambda c: "set by Docker" if c.name == "FORWARD" else None)
    assert docker.decisions == [] and any("set by Docker" in n for n in docker.notes)
    out = judge(rs, [("udp", 32768, 65535)], paths=("out",), **HOST)
    assert describe(out.decisions) == ["OUTPUT udp/40000-40999: drop by `-A OUTPUT -p udp --dport 40000:40999 -j DROP`"]


# --- nftables ----------------------------------------------------------------------------------


def table(family: str, name: str) -> dict:
    return {"table": {"family": family, "name": name, "handle": 1}}


def chain(family: str, tbl: str, name: str, hook: str | None = None, prio: int = 0, policy: str = "accept",
          type_: str = "filter", **extra: Any) -> dict:
    c: dict[str, Any] = {"family": family, "table": tbl, "name": name, "handle": 1}
    if hook:
        c.update(type=type_, hook=hook, prio=prio, policy=policy, **extra)
    return {"chain": c}


def rule(family: str, tbl: str, ch: str, handle: int, *expr: dict) -> dict:
    return {"rule": {"family": family, "table": tbl, "chain": ch, "handle": handle, "expr": list(expr)}}


def dport(proto: str, right: Any, op: str = "==") -> dict:
    return {"match": {"op": op, "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": right}}


def meta(key: str, right: Any, op: str = "==") -> dict:
    return {"match": {"op": op, "left": {"meta": {"key": key}}, "right": right}}


def nft(*items: dict, **kw: Any) -> list[str]:
    return describe(judge(ruleset_from_nft({"nftables": list(items)}), REQUIRED, **{**HOST, **kw}).decisions)


DROP, ACCEPT = {"drop": None}, {"accept": None}


def test_native_table_named_filter_in_family_ip_is_read():
    got = nft(table("ip", "filter"), chain("ip", "filter", "input", "input"),
              rule("ip", "filter", "input", 4, dport("udp", {"range": [60000, 60010]}), DROP),
              rule("ip", "filter", "input", 5, dport("tcp", {"set": [80, 8080]}), {"reject": None}))
    assert got == ["INPUT tcp/80: reject by `nft: table ip filter chain input handle 5: tcp dport { 80, 8080 } reject`",
                   "INPUT udp/60000-60010: drop by `nft: table ip filter chain input handle 4: udp dport 60000-60010 "
                   "drop`"]


def test_every_hook_on_the_way_in_and_its_priority_order():
    items = [table("inet", "t"),
             chain("inet", "t", "pre", "prerouting", -300), rule("inet", "t", "pre", 2, dport("tcp", 443), DROP),
             chain("inet", "t", "in", "input", 10, policy="drop"),
             chain("inet", "t", "early", "input", -10), rule("inet", "t", "early", 3, ACCEPT),
             chain("inet", "t", "out", "output"), rule("inet", "t", "out", 4, DROP)]
    got = nft(*items)
    assert "PREROUTING tcp/443: drop by `nft: table inet t chain pre handle 2: tcp dport 443 drop`" in got
    # an accept in one base chain does not spare the packet the next one (priority 10, policy drop)
    assert "INPUT udp/32768-65535: drop by `nft: table inet t chain in (hook input priority 10) policy drop`" in got
    assert not any(d.startswith("OUTPUT") for d in got)


def test_netdev_ingress_applies_to_its_device_only():
    items = [table("netdev", "t"), chain("netdev", "t", "ing", "ingress", dev="eth0"),
             rule("netdev", "t", "ing", 2, dport("udp", {"range": [50000, 50009]}), DROP)]
    assert nft(*items) == ["INGRESS (netdev) udp/50000-50009: drop by `nft: table netdev t chain ing handle 2: udp "
                           "dport 50000-50009 drop`"]
    assert nft(*items, l3_ifaces=["ens3"]) == []
    # nft 1.0.6 leaves the device out of its JSON: `nft list chains` has it, and without it: cannot judge
    items[1] = chain("netdev", "t", "ing", "ingress")
    assert nft(*items)[0].startswith("INGRESS (netdev) udp/50000-50009: cannot judge: ingress chain")
    view = View(nft={"nftables": items}, nft_chains="table netdev t {\n\tchain ing {\n\t\ttype filter hook ingress "
                                                   "device \"ens3\" priority filter; policy accept;\n\t}\n}\n")
    assert judge(read_view(view), REQUIRED, **HOST).decisions == []


def test_bridge_and_arp_families():
    assert nft(table("bridge", "t"), chain("bridge", "t", "in", "input"),
               rule("bridge", "t", "in", 2, dport("udp", 33000), DROP)) == [
        "INPUT (bridge) udp/33000: drop by `nft: table bridge t chain in handle 2: udp dport 33000 drop`"]
    arp = nft(table("arp", "t"), chain("arp", "t", "in", "input", policy="drop"))
    assert arp[0] == "INPUT (arp) tcp/22: drop by `nft: table arp t chain in (hook input priority 0) policy drop`"


def test_ip6_chains_judge_ipv6_only():
    items = [table("ip6", "t"), chain("ip6", "t", "in", "input"), rule("ip6", "t", "in", 2, dport("tcp", 443), DROP)]
    assert nft(*items) == []
    assert nft(*items, families=("ip", "ip6")) == [
        "INPUT (IPv6) tcp/443: drop by `nft: table ip6 t chain in handle 2: tcp dport 443 drop`"]


def test_verdict_maps_sets_jumps_and_gotos():
    items = [table("inet", "t"), chain("inet", "t", "in", "input"), chain("inet", "t", "sub"), chain("inet", "t", "g"),
             {"set": {"family": "inet", "table": "t", "name": "blocked", "type": "inet_service", "flags": ["interval"],
                      "elem": [{"range": [60000, 60100]}]}},
             {"map": {"family": "inet", "table": "t", "name": "m", "type": "inet_service", "map": "verdict",
                      "elem": [[443, {"drop": None}]]}},
             rule("inet", "t", "in", 2, {"vmap": {"key": {"payload": {"protocol": "udp", "field": "dport"}},
                                                  "data": {"set": [[{"range": [40000, 40010]}, DROP],
                                                                   [3478, ACCEPT]]}}}),
             rule("inet", "t", "in", 3, {"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}},
                                                  "data": "@m"}}),
             rule("inet", "t", "in", 4, {"jump": {"target": "sub"}}),
             rule("inet", "t", "in", 5, dport("tcp", 22), {"goto": {"target": "g"}}),
             rule("inet", "t", "in", 6, dport("tcp", {"set": [22, 80]}), DROP),
             rule("inet", "t", "sub", 7, dport("udp", "@blocked"), DROP),
             rule("inet", "t", "g", 8, {"return": None})]
    assert nft(*items) == [
        "INPUT tcp/80: drop by `nft: table inet t chain in handle 6: tcp dport { 22, 80 } drop`",
        "INPUT tcp/443: drop by `nft: table inet t chain in handle 3: tcp dport vmap @m`",
        "INPUT udp/40000-40010: drop by `nft: table inet t chain in handle 2: udp dport vmap { 40000-40010 : drop, "
        "3478 : accept }`",
        "INPUT udp/60000-60100: drop by `nft: table inet t chain sub handle 7: udp dport @blocked drop`"]


def test_constructs_nobody_listed():
    numgen = {"match": {"op": "==", "left": {"numgen": {"mode": "random", "mod": 2, "offset": 0}}, "right": 0}}
    ctmark = {"match": {"op": "==", "left": {"ct": {"key": "mark"}}, "right": 5}}
    base = [table("inet", "t"), chain("inet", "t", "in", "input")]
    # a random share or a rate of Wire's packets dropped is interference: the rule is named
    assert nft(*base, rule("inet", "t", "in", 2, dport("udp", 40000), numgen, DROP)) == [
        "INPUT udp/40000: drop by `nft: table inet t chain in handle 2: udp dport 40000 numgen random mod 2 0 drop`"]
    over = {"limit": {"rate": 10, "per": "second", "inv": True}}
    assert nft(*base, rule("inet", "t", "in", 2, dport("udp", 40000), over, DROP)) == [
        "INPUT udp/40000: drop by `nft: table inet t chain in handle 2: udp dport 40000 limit rate over 10/second drop`"]
    got = nft(*base, rule("inet", "t", "in", 2, ctmark, DROP))
    assert got and all(": cannot judge: ct mark 5 in `nft: table inet t chain in handle 2: ct mark 5 drop`" in d
                       for d in got)
    weird = nft(*base, rule("inet", "t", "in", 3, {"queue": {"num": 1}}),
                rule("inet", "t", "in", 4, {"match": {"op": "==", "left": {"osf": {"key": "name"}}, "right": "Linux"}},
                     DROP))
    assert weird and all("cannot judge" in d for d in weird)


def test_xt_matches_take_their_options_from_iptables_nft_save():
    items = [table("ip", "filter"), chain("ip", "filter", "INPUT", "input"),
             rule("ip", "filter", "INPUT", 2, meta("l4proto", "udp"), {"xt": {"type": "match", "name": "multiport"}},
                  {"counter": None}, DROP)]
    save = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -m multiport --dports 40000:40999 -j DROP\nCOMMIT\n"
    with_save = judge(read_view(View(nft={"nftables": items}, saves={"iptables-nft": save})), REQUIRED, **HOST)
    assert describe(with_save.decisions) == [
        "INPUT udp/40000-40999: drop by `-A INPUT -p udp -m multiport --dports 40000:40999 -j DROP`"]
    without = describe(judge(read_view(View(nft={"nftables": items})), REQUIRED, **HOST).decisions)
    assert without and all("cannot judge: iptables match/target 'multiport'" in d for d in without)


def test_a_native_table_sharing_iptables_name_stays_native():
    items = [table("ip", "filter"), chain("ip", "filter", "input", "input"),
             rule("ip", "filter", "input", 2, dport("tcp", 443), DROP)]
    save = "*filter\n:input ACCEPT [0:0]\n-A input -p tcp -m tcp --dport 443 -j DROP\nCOMMIT\n"
    got = describe(judge(read_view(View(nft={"nftables": items}, saves={"iptables-nft": save})), REQUIRED,
                         **HOST).decisions)
    assert got == ["INPUT tcp/443: drop by `nft: table ip filter chain input handle 2: tcp dport 443 drop`"]


def test_legacy_tables_are_read_beside_nft():
    legacy = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n"
    rs = read_view(View(nft={"nftables": []}, saves={"iptables-legacy": legacy}))
    assert "iptables-legacy-save" in rs.sources
    assert describe(judge(rs, [("tcp", 443, 443)], **HOST).decisions) == [
        "INPUT tcp/443: drop by `iptables-legacy INPUT policy DROP`"]


def test_a_ruleset_that_cannot_be_read_is_an_error_not_none():
    with pytest.raises(UnreadableRuleset, match="cannot talk"):
        read_view(View(nft_error="`nft -j list ruleset` failed on h: netlink: cannot talk"))
    with pytest.raises(UnreadableRuleset):
        read_view(View(nft={"something": []}))


def test_chain_devices_from_nft_list_chains():
    text = ("table netdev t {\n\tchain ing {\n\t\ttype filter hook ingress devices = { eth0, eth1 } priority filter; "
            "policy accept;\n\t}\n\tchain one {\n\t\ttype filter hook ingress device \"ens3\" priority 0;\n\t}\n}\n"
            "table inet x {\n\tchain y {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n")
    assert nft_chain_devices(text) == {"netdev|t|ing": ["eth0", "eth1"], "netdev|t|one": ["ens3"]}


def test_a_match_on_another_protocols_header_does_not_blur_the_policy():
    icmp = {"match": {"op": "==", "left": {"payload": {"protocol": "icmp", "field": "type"}}, "right": "echo-request"}}
    flags = {"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, 2]}, "right": 2}}
    got = nft(table("inet", "t"), chain("inet", "t", "in", "input", policy="drop"),
              rule("inet", "t", "in", 2, icmp, ACCEPT), rule("inet", "t", "in", 3, dport("tcp", 22), ACCEPT),
              rule("inet", "t", "in", 4, flags, ACCEPT))
    assert "INPUT udp/32768-65535: drop by `nft: table inet t chain in (hook input priority 0) policy drop`" in got
    assert any(d.startswith("INPUT tcp/80: cannot judge: ") for d in got)     # tcp flags: not modelled
