"""Does a host's packet filter drop or reject the traffic Wire needs?

Reads netfilter as the kernel holds it: ``nft -j list ruleset`` (every family: ip, ip6, inet, arp,
bridge, netdev; every table whatever its name; every base chain, hook and priority; verdict maps,
named and anonymous sets, jumps and gotos), the rules of iptables-nft's tables as ``iptables-nft-save``
prints them (where nft shows only an opaque ``xt`` match), and iptables-legacy's tables from
``iptables-legacy-save`` (the legacy backend is invisible to nft).

A packet of Wire's traffic (a new and an established one, per port range) is walked through every base
chain on its way (netdev/inet ingress, bridge, prerouting, input; forward and postrouting for forwarded
traffic; output, postrouting and egress outbound) in priority order, the way the kernel does: the first
matching rule of a chain decides for that chain, jumps and gotos are followed, the chain policy applies at
its end, a drop anywhere is final.

Every match is judged as one of: matches, does not match, matches only some clients (a source address or
port, a rate limit, a random number: an ACCEPT of that kind does not accept every client), or cannot be
judged (a construct this module does not model). Where a construct cannot be judged, both outcomes are
followed; when they disagree the answer is "cannot judge: <construct> in <rule>", never "no firewall".

The package, by the order a reading goes: model (packets, rules, chains and shared helpers), iptables
(iptables-save text), nft (nft JSON), view (a host's printouts combined), walk (a packet through the
chains), judge (Wire's port ranges into decisions and texts).
"""

from __future__ import annotations

from .iptables import parse_iptables_save
from .judge import Decision, Judgement, describe, judge, port_set
from .model import (
    IPT_HOOKS,
    IPT_TYPES,
    MAYBE,
    PATHS,
    SOME,
    SOURCE,
    Action,
    Chain,
    Judged,
    Packet,
    Required,
    Rule,
    Ruleset,
    UnreadableRuleset,
)
from .nft import parse_nft_json
from .view import View, nft_chain_devices, read_view, ruleset_from_iptables, ruleset_from_nft
from .walk import Outcome, Walk, walk_path

__all__ = [
    "IPT_HOOKS", "IPT_TYPES", "MAYBE", "PATHS", "SOME", "SOURCE", "Action", "Chain", "Decision", "Judged",
    "Judgement", "Outcome", "Packet", "Required", "Rule", "Ruleset", "UnreadableRuleset", "View", "Walk",
    "describe", "judge", "nft_chain_devices", "parse_iptables_save", "parse_nft_json", "port_set",
    "read_view", "ruleset_from_iptables", "ruleset_from_nft", "walk_path",
]
