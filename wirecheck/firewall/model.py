"""The firewall model: packets, rules, chains, rulesets, and the helpers every reader shares."""

from __future__ import annotations

import functools
import ipaddress
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Required = tuple[str, int, int]          # ("udp", 32768, 65535)

#: iptables tables: builtin chain -> (hook, priority), as iptables-legacy registers them
IPT_HOOKS: dict[str, dict[str, tuple[str, int]]] = {
    "raw": {"PREROUTING": ("prerouting", -300), "OUTPUT": ("output", -300)},
    "mangle": {"PREROUTING": ("prerouting", -150), "INPUT": ("input", -150), "FORWARD": ("forward", -150),
               "OUTPUT": ("output", -150), "POSTROUTING": ("postrouting", -150)},
    "nat": {"PREROUTING": ("prerouting", -100), "INPUT": ("input", 100), "OUTPUT": ("output", -100),
            "POSTROUTING": ("postrouting", 100)},
    "filter": {"INPUT": ("input", 0), "FORWARD": ("forward", 0), "OUTPUT": ("output", 0)},
    "security": {"INPUT": ("input", 50), "FORWARD": ("forward", 50), "OUTPUT": ("output", 50)},
}
IPT_TYPES = {"nat": "nat", "mangle": "filter", "raw": "filter", "filter": "filter", "security": "filter"}
#: the hooks a packet passes, per path; each hook is reached in these families
PATHS: dict[str, list[str]] = {
    "in": ["ingress", "prerouting", "input"],
    "forward": ["ingress", "prerouting", "forward", "postrouting"],
    "out": ["output", "postrouting", "egress"],
}

# a match is True, False, or one of these
MAYBE = "maybe"          # a construct we cannot judge
SOME = "some"            # matches some packets/clients only (rate, random, source port ...)
SOURCE = "source"        # matches only some source addresses


@dataclass(frozen=True)
class Judged:
    kind: str            # MAYBE / SOME / SOURCE
    what: str            # the construct, as text


@dataclass
class Packet:
    family: str                         # ip / ip6 (arp for the ARP packet of an IPv4 path)
    proto: str                          # tcp / udp / arp
    port: int
    ct: str                             # new / established
    path: str                           # in / forward / out
    l3_ifaces: frozenset[str] | None    # interfaces the packet is received on (ip layer); None = unknown
    l2_ifaces: frozenset[str] | None    # bridge ports / devices below them (bridge, netdev); None = unknown
    local_addresses: frozenset[str] | None   # the host's own addresses; None = unknown


Cond = Callable[[Packet], "bool | Judged"]


@dataclass
class Action:
    kind: str            # accept drop reject return jump goto continue nat unknown vmap
    target: str | None = None            # chain key for jump/goto
    vmap: Any = None                     # (key function, [(element matcher, Action)]) for vmap
    what: str = ""                       # for unknown: the construct


@dataclass
class Rule:
    text: str                            # as the tool printed it (iptables-save line, nft rule)
    conds: list[tuple[str, Cond]] = field(default_factory=list)   # (text, condition)
    action: Action = field(default_factory=lambda: Action("continue"))
    l4: str | None = None                # the one transport protocol the rule can match (a fast way past it)


@dataclass
class Chain:
    key: str                             # source|family|table|name
    name: str
    family: str
    table: str
    source: str
    hook: str | None = None
    prio: int = 0
    type: str = "filter"
    policy: str = "accept"
    devices: list[str] | None = None     # netdev/inet ingress chains
    rules: list[Rule] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.source == "nftables":
            return f"table {self.family} {self.table} chain {self.name}"
        return self.name if self.table == "filter" else f"{self.table} {self.name}"

    def policy_text(self) -> str:
        if self.source == "nftables":
            return f"nft: {self.label} (hook {self.hook} priority {self.prio}) policy {self.policy}"
        return f"{self.source} {self.label} policy {self.policy.upper()}"


@dataclass
class Ruleset:
    chains: dict[str, Chain] = field(default_factory=dict)
    cuts: set[int] = field(default_factory=set)        # port numbers where a rule's port set starts/ends
    sources: list[str] = field(default_factory=list)   # what was read, for the method text
    notes: list[str] = field(default_factory=list)

    def base_chains(self) -> list[Chain]:
        return [c for c in self.chains.values() if c.hook]


class UnreadableRuleset(RuntimeError):
    """The ruleset cannot be read at all (the caller reports the cause as an error)."""


# ------------------------------------------------------------------------------------------------
# value helpers


def _ranges_add(cuts: set[int], lo: int, hi: int) -> None:
    cuts.add(lo)
    cuts.add(hi + 1)


def _iface_match(pattern: str, name: str) -> bool:
    if pattern.endswith(("+", "*")):
        return name.startswith(pattern[:-1])
    return pattern == name


def _some_all(values: Iterable[str] | None, pred: Callable[[str], bool], what: str) -> bool | Judged:
    """pred over every value the packet may carry: all -> True, none -> False, else cannot judge."""
    if values is None:
        return Judged(MAYBE, what + " (the receiving interface/address is not known)")
    got = [pred(v) for v in values]
    if got and all(got):
        return True
    if not any(got):
        return False
    return Judged(MAYBE, what + " (true for some of the host's interfaces/addresses only)")


@functools.lru_cache(maxsize=4096)
def _net(text: str) -> Any:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


@functools.lru_cache(maxsize=256)
def _addr(text: str) -> Any:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _in_net(addr: str, nets: list[str]) -> bool:
    a = _addr(addr)
    for n in nets:
        net = _net(n)
        if a is not None and net is not None and a.version == net.version and a in net:
            return True
    return False


#: conditions cheapest to rule a packet out (protocol, destination port) are tried first
_FIRST = ("-p ", "! -p ", "--dport", "! --dport", "--dports", "! --dports", "--destination-port", "meta l4proto",
          "tcp dport", "udp dport", "th dport", "ip protocol")


def _order(rule: Rule) -> Rule:
    rule.conds.sort(key=lambda tc: 0 if tc[0].startswith(_FIRST) else 1)
    return rule


def _all_of(conds: list[tuple[str, Cond]], pkt: Packet) -> bool | Judged:
    """AND of conditions: False wins, then MAYBE, then SOME, then SOURCE."""
    judged: list[Judged] = []
    for _text, cond in conds:
        got = cond(pkt)
        if got is False:
            return False
        if isinstance(got, Judged):
            judged.append(got)
    for kind in (MAYBE, SOME, SOURCE):
        hits = [j for j in judged if j.kind == kind]
        if hits:
            return Judged(kind, "; ".join(j.what for j in hits))
    return True


# parse-time context, module level: every parse holds _PARSING (checks may read hosts in threads)
_CUTS: set[int] = set()
_CHAIN_NAMES: set[str] = set()
_PARSING = threading.RLock()
