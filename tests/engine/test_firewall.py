"""The firewall evaluator names the rule that blocks each required port."""

from __future__ import annotations

from wirecheck.firewall import describe, iptables_blocking, nft_blocking

REQUIRED = [("tcp", 22, 22), ("tcp", 80, 80), ("tcp", 443, 443), ("tcp", 3478, 3478), ("udp", 3478, 3478),
            ("udp", 32768, 65535)]


def test_open_host_has_no_blocking():
    assert iptables_blocking("-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n", REQUIRED, [])[0] == []


def test_drop_policy_blocks_what_no_rule_accepts():
    rules = "\n".join([
        "-P INPUT DROP", "-P FORWARD ACCEPT",
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
        "-A INPUT -p tcp -m multiport --dports 80,443,3478 -j ACCEPT",
        "-A INPUT -p udp -m udp --dport 3478 -j ACCEPT",
        "-A INPUT -p udp -m udp --dport 32768:50000 -j ACCEPT",
    ])
    blocked, _ = iptables_blocking(rules, REQUIRED, [])
    assert describe(blocked) == ["INPUT udp/50001-65535: drop by `iptables INPUT policy DROP`"]


def test_rules_in_user_chains_are_followed():
    rules = "\n".join([
        "-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-N wall",
        "-A INPUT -j wall",
        "-A wall -p udp -m udp --dport 40000:40999 -j DROP",
        "-A wall -p tcp -m tcp --dport 443 -j REJECT --reject-with tcp-reset",
    ])
    blocked, _ = iptables_blocking(rules, REQUIRED, [])
    assert describe(blocked) == [
        "INPUT tcp/443: reject by `-A wall -p tcp -m tcp --dport 443 -j REJECT --reject-with tcp-reset`",
        "INPUT udp/40000-40999: drop by `-A wall -p udp -m udp --dport 40000:40999 -j DROP`",
    ]


def test_source_specific_and_invalid_state_drops_are_harmless():
    rules = "\n".join([
        "-P INPUT ACCEPT", "-P FORWARD ACCEPT",
        "-A INPUT -m conntrack --ctstate INVALID -j DROP",
        "-A INPUT -s 203.0.113.7/32 -j DROP",
    ])
    assert iptables_blocking(rules, REQUIRED, [])[0] == []


def test_dockers_forward_policy_is_not_held_against_the_host():
    rules = "-P INPUT ACCEPT\n-P FORWARD DROP\n-N DOCKER\n-N DOCKER-USER\n-A FORWARD -j DOCKER-USER\n"
    blocked, notes = iptables_blocking(rules, REQUIRED, ["DOCKER", "DOCKER-USER"])
    assert blocked == [] and "Docker" in notes[0]
    blocked, _ = iptables_blocking("-P INPUT ACCEPT\n-P FORWARD DROP\n", REQUIRED, [])
    assert {d.hook for d in blocked} == {"FORWARD"}


def test_rule_we_cannot_evaluate_is_reported_as_may_block():
    rules = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-A INPUT -p udp -m owner --uid-owner 5 -j DROP\n"
    blocked, _ = iptables_blocking(rules, REQUIRED, [])
    assert blocked and all(d.verdict == "may-block" for d in blocked)


NFT = {"nftables": [
    {"table": {"family": "inet", "name": "filter"}},
    {"chain": {"family": "inet", "table": "filter", "name": "input", "type": "filter", "hook": "input",
               "prio": 0, "policy": "accept"}},
    {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 4, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}},
                   "right": {"range": [60000, 60010]}}}, {"drop": None}]}},
    {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 5, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                   "right": {"set": [80, 8080]}}}, {"reject": None}]}},
    # tables of iptables-nft are read through iptables -S, not twice
    {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "type": "filter", "hook": "input",
               "prio": 0, "policy": "drop"}},
]}


def test_nftables_rules_and_ranges():
    assert describe(nft_blocking(NFT, REQUIRED)) == [
        "INPUT tcp/80: reject by `nft: table inet filter chain input handle 5: tcp dport {80, 8080} reject`",
        "INPUT udp/60000-60010: drop by `nft: table inet filter chain input handle 4: udp dport 60000-60010 drop`",
    ]
