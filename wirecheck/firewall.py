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
"""

from __future__ import annotations

import functools
import ipaddress
import shlex
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
    chain: str
    text: str
    source: str                          # nftables / iptables / iptables-legacy ...
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


# ------------------------------------------------------------------------------------------------
# iptables-save


def _ipt_ports(spec: str) -> list[tuple[int, int]]:
    out = []
    for part in spec.split(","):
        lo, sep, hi = part.partition(":")
        a = int(lo) if lo else 0
        b = (int(hi) if hi else 65535) if sep else a
        out.append((a, b))
    return out


def _port_cond(ranges: list[tuple[int, int]], neg: bool) -> Cond:
    def cond(p: Packet) -> bool | Judged:
        inside = any(lo <= p.port <= hi for lo, hi in ranges)
        return inside != neg
    return cond


def _proto_cond(proto: str, neg: bool) -> Cond:
    proto = {"6": "tcp", "17": "udp", "1": "icmp"}.get(proto.lower(), proto.lower())

    def cond(p: Packet) -> bool | Judged:
        if proto == "all":
            return not neg
        return (p.proto == proto) != neg
    return cond


def _iface_cond(name: str, neg: bool, out: bool, what: str) -> Cond:
    def cond(p: Packet) -> bool | Judged:
        if out:
            if p.path == "in":
                return neg              # no output interface on the way in
            return Judged(MAYBE, what + " (the outgoing interface of forwarded/outbound traffic is not modelled)")
        if p.path == "out":
            return neg
        got = _some_all(p.l3_ifaces, lambda i: _iface_match(name, i), what)
        return (not got) if isinstance(got, bool) and neg else got
    return cond


def _state_cond(states: set[str], neg: bool) -> Cond:
    def cond(p: Packet) -> bool | Judged:
        return (p.ct in states) != neg
    return cond


def _daddr_cond(nets: list[str], neg: bool, what: str) -> Cond:
    def cond(p: Packet) -> bool | Judged:
        if any(n in ("0.0.0.0/0", "0/0", "::/0") for n in nets):
            return not neg
        if p.path == "out":
            return Judged(SOURCE, what)     # outbound: the peer's address, any peer
        got = _some_all(p.local_addresses, lambda a: _in_net(a, nets), what)
        return (not got) if isinstance(got, bool) and neg else got
    return cond


def _saddr_cond(nets: list[str], neg: bool, what: str) -> Cond:
    def cond(p: Packet) -> bool | Judged:
        if any(n in ("0.0.0.0/0", "0/0", "::/0") for n in nets) and not neg:
            return True
        if p.path == "out":
            got = _some_all(p.local_addresses, lambda a: _in_net(a, nets), what)
            return (not got) if isinstance(got, bool) and neg else got
        return Judged(SOURCE, what)
    return cond


def _const(value: bool | Judged) -> Cond:
    return lambda _p: value


def _not_l4(judged: Judged) -> Cond:
    return lambda p: False if p.proto in ("tcp", "udp") else judged


def _tcp_only(judged: Judged) -> Cond:
    return lambda p: False if p.proto != "tcp" else judged


#: targets that change nothing about the verdict
IPT_NONTERMINAL = {"LOG", "NFLOG", "ULOG", "MARK", "CONNMARK", "CT", "TRACE", "NOTRACK", "TCPMSS", "CLASSIFY",
                   "DSCP", "TOS", "TTL", "HL", "CHECKSUM", "SET", "AUDIT", "CONNSECMARK", "SECMARK", "IDLETIMER",
                   "LED", "TEE"}
IPT_NAT = {"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"}
#: options of a match module that take no value
IPT_FLAGS = {"--syn", "--rcheck", "--update", "--remove", "--set", "--rsource", "--rdest", "--invert",
             "--loose", "--validmark", "--accept-local", "--rttl", "--strict", "--log-uid", "--log-tcp-sequence",
             "--log-tcp-options", "--log-ip-options", "--ctdir", "--nfacct"}


def _ipt_rule(chain_key: str, words: list[str], text: str, source: str, prefix: str) -> Rule:
    rule = Rule(chain=chain_key, text=text, source=source)
    i = 0
    neg = False
    module = ""
    unknown_module_opts: list[str] = []

    def add(t: str, c: Cond) -> None:
        rule.conds.append((t, c))

    while i < len(words):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w == "!":
            neg = True
            i += 1
            continue
        n = 2
        shown = f"{'! ' if neg else ''}{w} {nxt}".strip()
        if w in ("-p", "--protocol"):
            add(shown, _proto_cond(nxt, neg))
            if not neg and nxt.lower() != "all":
                rule.l4 = {"6": "tcp", "17": "udp", "1": "icmp"}.get(nxt.lower(), nxt.lower())
        elif w in ("-s", "--source", "--src-range"):
            nets = nxt.split(",") if w != "--src-range" else [str(x) for x in _range_nets(nxt)]
            add(shown, _saddr_cond(nets, neg, f"{shown} (only some sources)") if nets else
                _const(Judged(MAYBE, shown)))
        elif w in ("-d", "--destination", "--dst-range"):
            nets = nxt.split(",") if w != "--dst-range" else [str(x) for x in _range_nets(nxt)]
            add(shown, _daddr_cond(nets, neg, shown) if nets else _const(Judged(MAYBE, shown)))
        elif w in ("-i", "--in-interface", "-o", "--out-interface"):
            add(shown, _iface_cond(nxt, neg, w in ("-o", "--out-interface"), shown))
        elif w in ("-m", "--match"):
            module = nxt
            if module not in ("tcp", "udp", "multiport", "conntrack", "state", "comment", "limit", "hashlimit",
                              "addrtype", "pkttype", "iprange", "set", "statistic", "connlimit", "recent", "icmp",
                              "icmp6", "rpfilter", "mark", "connmark", "physdev", "owner", "length", "ttl", "hl",
                              "policy", "socket", "tcpmss", "string", "u32", "bpf", "time", "quota", "mac",
                              "dscp", "tos", "ecn", "helper", "realm", "cgroup", "cpu", "devgroup", "esp", "ah",
                              "sctp", "dccp", "udplite", "geoip", "nfacct", "ipvs", "cluster", "osf"):
                unknown_module_opts.append(f"-m {module}")
        elif w in ("--dport", "--destination-port", "--dports", "--destination-ports"):
            ranges = _ipt_ports(nxt)
            rule.conds.append((shown, _port_cond(ranges, neg)))
            for a, b in ranges:
                _ranges_add(_CUTS, a, b)
        elif w in ("--sport", "--source-port", "--sports", "--source-ports"):
            add(shown, _const(Judged(SOURCE, f"{shown} (only some client ports)")))
        elif w == "--ports":          # multiport: source or destination
            ranges = _ipt_ports(nxt)
            for a, b in ranges:
                _ranges_add(_CUTS, a, b)
            inside = _port_cond(ranges, False)

            def ports_cond(p: Packet, inside: Cond = inside, neg: bool = neg, shown: str = shown) -> bool | Judged:
                if inside(p):
                    return not neg
                return Judged(SOURCE, f"{shown} (matches some client source ports)")
            add(shown, ports_cond)
        elif w in ("--ctstate", "--state"):
            add(shown, _state_cond({s.lower() for s in nxt.split(",")}, neg))
        elif w == "--syn":
            add(shown, lambda p, neg=neg: (p.proto == "tcp" and p.ct == "new") != neg)
            n = 1
        elif w in ("--comment", "--log-prefix", "--log-level", "--reject-with", "--nflog-group", "--nflog-prefix",
                   "--set-mark", "--set-xmark", "--to-destination", "--to-source", "--to-ports", "--to",
                   "--notrack", "--zone"):
            pass
        elif w in ("--limit", "--hashlimit-upto", "--hashlimit-above", "--connlimit-above", "--connlimit-upto",
                   "--probability", "--every", "--quota", "--hitcount", "--seconds"):
            add(shown, _const(Judged(SOME, f"-m {module} {shown} (only some packets)")))
        elif w in ("--limit-burst", "--hashlimit-burst", "--hashlimit-mode", "--hashlimit-name",
                   "--hashlimit-htable-expire", "--hashlimit-srcmask", "--connlimit-mask", "--mode", "--packet",
                   "--name", "--mask", "--hashlimit-htable-size", "--hashlimit-htable-max",
                   "--hashlimit-htable-gcinterval", "--connlimit-saddr", "--connlimit-daddr"):
            if w == "--connlimit-saddr" or w == "--connlimit-daddr":
                n = 1
        elif w in ("--dst-type", "--src-type"):
            types = {t.upper() for t in nxt.split(",")}
            if w == "--dst-type" and module == "addrtype":
                add(shown, lambda p, types=types, neg=neg: (bool(types & {"LOCAL", "UNICAST"})
                                                           if p.path != "out" else "UNICAST" in types) != neg)
            else:
                add(shown, _const(Judged(MAYBE, f"-m addrtype {shown}")))
        elif w == "--pkt-type":
            unicast = nxt.lower() == "unicast"
            add(shown, _const(unicast != neg))
        elif w == "--match-set":
            flags = words[i + 2] if i + 2 < len(words) else ""
            n = 3
            shown = f"{shown} {flags}"
            if flags and all(f == "src" for f in flags.split(",")):
                add(shown, _const(Judged(SOURCE, f"-m set {shown} (only some sources)")))
            else:
                add(shown, _const(Judged(MAYBE, f"-m set {shown} (ipset contents are not read)")))
        elif w in ("--icmp-type", "--icmpv6-type"):
            add(shown, _not_l4(Judged(MAYBE, shown)))
        elif w == "--tcp-flags":
            flags = f"{nxt} {words[i + 2] if i + 2 < len(words) else ''}"
            n = 3
            add(f"--tcp-flags {flags}", _tcp_only(Judged(MAYBE, f"--tcp-flags {flags}")))
        elif w in ("-j", "--jump", "-g", "--goto"):
            target = nxt
            up = target.upper()
            if up in ("ACCEPT", "DROP", "RETURN"):
                rule.action = Action(up.lower())
            elif up == "REJECT":
                rule.action = Action("reject")
            elif up in IPT_NONTERMINAL:
                rule.action = Action("continue")
            elif up in IPT_NAT:
                rule.action = Action("nat", what=up)
            elif target in _CHAIN_NAMES:
                rule.action = Action("goto" if w in ("-g", "--goto") else "jump", target=prefix + target)
            else:
                rule.action = Action("unknown", what=f"-j {target}")
            break               # iptables-save prints the target last: what follows are its options
        elif w.startswith("-"):
            # an option of a module we do not model (or a value-less flag)
            if w in IPT_FLAGS or not nxt or nxt.startswith("-") or nxt == "!":
                n = 1
                shown = f"{'! ' if neg else ''}{w}"
            if module in ("comment",):
                pass
            elif w in ("--rpfilter-invert",):
                pass
            elif module == "rpfilter":
                # legitimate clients pass the reverse-path check; --invert drops the ones that do not
                add(shown, _const(w != "--invert"))
            else:
                add(shown, _const(Judged(MAYBE, f"-m {module} {shown}" if module else shown)))
        else:
            n = 1
        i += n
        neg = False
    for m in unknown_module_opts:
        if not any(t.startswith(m) for t, _ in rule.conds):
            rule.conds.append((m, _const(Judged(MAYBE, m))))
    return _order(rule)


def _range_nets(spec: str) -> list[Any]:
    lo, _, hi = spec.partition("-")
    try:
        return list(ipaddress.summarize_address_range(ipaddress.ip_address(lo), ipaddress.ip_address(hi or lo)))
    except (ValueError, TypeError):
        return []


# parse-time context, module level: every parse holds _PARSING (checks may read hosts in threads)
_CUTS: set[int] = set()
_CHAIN_NAMES: set[str] = set()
_PARSING = threading.RLock()


def parse_iptables_save(text: str, source: str = "iptables", family: str = "ip") -> dict[str, Chain]:
    """``iptables-save`` (every table) into chains keyed ``source|family|table|chain``.  Also accepts
    ``iptables -S`` output (filter table; a ``#nat`` marker line starts the nat table)."""
    chains: dict[str, Chain] = {}
    table = "filter"
    lines = [ln.strip() for ln in text.splitlines()]
    # chain names per table first (a rule may jump to a chain declared later)
    names: dict[str, set[str]] = {}
    t = "filter"
    for line in lines:
        if line.startswith("*"):
            t = line[1:].strip()
        elif line.startswith("#nat"):
            t = "nat"
        elif line.startswith(":"):
            names.setdefault(t, set()).add(line[1:].split()[0])
        elif line.startswith(("-N ", "-P ")):
            names.setdefault(t, set()).add(line.split()[1])
    for line in lines:
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        if line.startswith("#nat"):
            table = "nat"
            continue
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        prefix = f"{source}|{family}|{table}|"

        def chain_of(name: str, prefix: str = prefix, table: str = table) -> Chain:
            key = prefix + name
            if key not in chains:
                c = Chain(key, name, family, table, source, type=IPT_TYPES.get(table, "filter"))
                hook = IPT_HOOKS.get(table, {}).get(name)
                if hook:
                    c.hook, c.prio = hook
                chains[key] = c
            return chains[key]
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        if line.startswith(":") and len(words) >= 2:
            c = chain_of(words[0][1:])
            if words[1] != "-":
                c.policy = words[1].lower()
        elif words[0] == "-P" and len(words) >= 3:
            chain_of(words[1]).policy = words[2].lower()
        elif words[0] == "-N" and len(words) >= 2:
            chain_of(words[1])
        elif words[0] == "-A" and len(words) >= 2:
            c = chain_of(words[1])
            _CHAIN_NAMES.clear()
            _CHAIN_NAMES.update(names.get(table, set()))
            c.rules.append(_ipt_rule(c.key, words[2:], line, source, prefix))
    return chains


# ------------------------------------------------------------------------------------------------
# nft -j list ruleset


def _nft_scalar_match(value: Any, right: Any, sets: dict[str, list[Any]]) -> bool | None:
    """value against an nft right-hand side; None when the right side is not understood."""
    if isinstance(right, str) and right.startswith("@"):
        elems = sets.get(right[1:])
        if elems is None:
            return None
        return _nft_scalar_match(value, {"set": elems}, sets)
    if isinstance(right, dict):
        if "set" in right:
            results = [_nft_scalar_match(value, el, sets) for el in right["set"]]
            if any(r is True for r in results):
                return True
            return None if any(r is None for r in results) else False
        if "range" in right:
            lo, hi = right["range"]
            if isinstance(value, int) and isinstance(lo, int) and isinstance(hi, int):
                return lo <= value <= hi
            if isinstance(value, str) and isinstance(lo, str):
                try:
                    return ipaddress.ip_address(lo) <= ipaddress.ip_address(value) <= ipaddress.ip_address(hi)
                except (ValueError, TypeError):
                    return None
            return None
        if "prefix" in right:
            try:
                net = _net(f"{right['prefix']['addr']}/{right['prefix']['len']}")
            except (TypeError, KeyError):
                return None
            a = _addr(str(value))
            if net is None or a is None:
                return None
            return a.version == net.version and a in net
        if "elem" in right:
            return _nft_scalar_match(value, right["elem"].get("val"), sets)
        return None
    if isinstance(right, list):
        return _nft_scalar_match(value, {"set": right}, sets)
    if isinstance(right, str) and isinstance(value, str):
        if right.endswith("*"):
            return value.startswith(right[:-1])
        return right == value
    if isinstance(right, (int, str)) and isinstance(value, (int, str)):
        if isinstance(right, str) and isinstance(value, int) and right.isdigit():
            return int(right) == value
        return right == value
    return None


def _collect_port_cuts(right: Any, sets: dict[str, list[Any]], cuts: set[int]) -> None:
    if isinstance(right, bool):
        return
    if isinstance(right, int):
        _ranges_add(cuts, right, right)
    elif isinstance(right, str) and right.startswith("@"):
        for el in sets.get(right[1:], []):
            _collect_port_cuts(el, sets, cuts)
    elif isinstance(right, dict):
        if "range" in right and all(isinstance(x, int) for x in right["range"]):
            _ranges_add(cuts, right["range"][0], right["range"][1])
        elif "set" in right:
            for el in right["set"]:
                _collect_port_cuts(el, sets, cuts)
        elif "elem" in right:
            _collect_port_cuts(right["elem"].get("val"), sets, cuts)
    elif isinstance(right, list):
        for el in right:
            _collect_port_cuts(el, sets, cuts)


_L4 = {"tcp", "udp", "udplite", "sctp", "dccp"}


def _nft_key(left: Any, family: str) -> Callable[[Packet], Any] | str:
    """A function giving the packet's value for an nft expression, or a kind word (source/some) or
    the text of what is not modelled ('?...')."""
    if isinstance(left, dict) and "payload" in left:
        pl = left["payload"]
        proto, fld = pl.get("protocol"), pl.get("field")
        if proto in _L4 | {"th"} and fld == "dport":
            def dport(p: Packet, proto: str = proto) -> Any:
                if proto != "th" and p.proto != proto:
                    return _NOT_THIS_PROTO
                if p.proto not in ("tcp", "udp"):
                    return _NOT_THIS_PROTO
                return p.port
            return dport
        if proto in _L4 | {"th"} and fld == "sport":
            return "source-port:" + str(proto)
        if proto in ("ip", "ip6") and fld == "saddr":
            return "source"
        if proto in ("ip", "ip6") and fld == "daddr":
            return "daddr"
        if proto == "ip" and fld == "protocol" or proto == "ip6" and fld == "nexthdr":
            return lambda p: p.proto
        if proto in _L4 | {"icmp", "icmpv6", "igmp", "esp", "ah", "comp"}:
            return "l4:" + str(proto)       # a header of another protocol: no match for tcp/udp packets
        return f"?{proto} {fld}"
    if isinstance(left, dict) and "meta" in left:
        key = left["meta"].get("key")
        if key == "l4proto":
            return lambda p: p.proto
        if key == "nfproto":
            return lambda p: {"ip": "ipv4", "ip6": "ipv6"}.get(p.family, p.family)
        if key == "protocol":
            return lambda p: {"ip": "ip", "ip6": "ip6", "arp": "arp"}.get(p.family, p.family)
        if key in ("iifname", "iif", "oifname", "oif", "iifkind", "ibrname", "ibriport", "obrname", "obriport"):
            return "iface:" + key
        if key == "pkttype":
            return lambda p: "host"
        return f"?meta {key}"
    if isinstance(left, dict) and "ct" in left:
        key = left["ct"].get("key")
        if key == "state":
            return lambda p: p.ct
        return f"?ct {key}"
    if isinstance(left, dict) and "fib" in left:
        fib = left["fib"]
        flags, result = set(fib.get("flags", [])), fib.get("result")
        if result == "type" and "daddr" in flags:
            return lambda p: "local" if p.path == "in" else "unicast"
        if result in ("oif", "oifname") and "saddr" in flags:
            return "fib-rpf"
        return f"?fib {result} {','.join(sorted(flags))}"
    for op in ("&", "|", "^", "<<", ">>"):
        if isinstance(left, dict) and isinstance(left.get(op), list) and left[op]:
            inner = _nft_key(left[op][0], family)
            return inner if isinstance(inner, str) and inner.startswith("l4:") else f"?{op}"
    if isinstance(left, dict) and ("numgen" in left or "jhash" in left or "symhash" in left):
        return "some"
    if isinstance(left, dict):
        return "?" + next(iter(left), "expression")
    return f"?{left}"


_NOT_THIS_PROTO = object()


def _nft_match(m: dict[str, Any], family: str, sets: dict[str, list[Any]], cuts: set[int]) -> Cond:
    left, right, op = m.get("left"), m.get("right"), m.get("op", "==")
    key = _nft_key(left, family)
    neg = op == "!="
    shown = _nft_expr_text(m)
    if isinstance(key, str):
        if key.startswith("?"):
            return _const(Judged(MAYBE, shown))
        if key == "source":
            def src(p: Packet) -> bool | Judged:
                if p.path == "out":
                    return _eval_addr(p, right, sets, neg, shown)
                return Judged(SOURCE, f"{shown} (only some sources)")
            return src
        if key.startswith("source-port:"):
            proto = key.split(":", 1)[1]
            return lambda p: False if proto not in ("th", p.proto) else Judged(SOURCE, f"{shown} (only some client ports)")
        if key == "daddr":
            def dst(p: Packet) -> bool | Judged:
                if p.path == "out":
                    return Judged(SOURCE, shown)
                return _eval_addr(p, right, sets, neg, shown)
            return dst
        if key == "some":
            return _const(Judged(SOME, f"{shown} (only some packets)"))
        if key.startswith("l4:"):
            # nft adds `meta l4proto <proto>` to a match on that protocol's header
            return lambda p, proto=key[3:]: False if p.proto != proto else Judged(MAYBE, shown)
        if key == "fib-rpf":
            # `fib saddr . iif oif missing drop`: legitimate clients have a route back
            return _const(Judged(MAYBE, shown)) if op not in ("==", "!=") else _const(neg)
        if key.startswith("iface:"):
            meta = key[6:]

            def iface(p: Packet, meta: str = meta) -> bool | Judged:
                if meta.startswith(("o",)):
                    if p.path == "in":
                        return neg if op in ("==", "!=") else Judged(MAYBE, shown)
                    return Judged(MAYBE, f"{shown} (the outgoing interface is not modelled)")
                if p.path == "out":
                    return neg
                if meta in ("iifkind",):
                    return Judged(MAYBE, shown)
                names = p.l2_ifaces if family in ("bridge", "netdev") else p.l3_ifaces
                if meta in ("ibrname",):
                    names = p.l3_ifaces
                if op not in ("==", "!=", "in"):
                    return Judged(MAYBE, shown)
                if isinstance(right, int) or meta in ("iif",) and not isinstance(right, (str, dict, list)):
                    return Judged(MAYBE, f"{shown} (interface index)")
                got = _some_all(names, lambda n: bool(_nft_scalar_match(n, right, sets)), shown)
                return (not got) if isinstance(got, bool) and neg else got
            return iface
    fn = key
    if "payload" in (left or {}) and left["payload"].get("field") == "dport":
        _collect_port_cuts(right, sets, cuts)

    def cond(p: Packet) -> bool | Judged:
        value = fn(p)
        if value is _NOT_THIS_PROTO:
            return False
        if op in ("==", "!=", "in"):
            if isinstance(right, dict) and "&" in str(right):
                return Judged(MAYBE, shown)
            if isinstance(value, str) and isinstance(right, list):
                got = value in right
            else:
                got = _nft_scalar_match(value, right, sets)
            if got is None:
                return Judged(MAYBE, shown)
            return got != neg
        if op in ("<", ">", "<=", ">=") and isinstance(value, int) and isinstance(right, int):
            return {"<": value < right, ">": value > right, "<=": value <= right, ">=": value >= right}[op]
        return Judged(MAYBE, shown)
    return cond


def _eval_addr(p: Packet, right: Any, sets: dict[str, list[Any]], neg: bool, shown: str) -> bool | Judged:
    if p.local_addresses is None:
        return Judged(MAYBE, f"{shown} (the host's addresses are not known)")
    results = [_nft_scalar_match(a, right, sets) for a in p.local_addresses]
    if any(r is None for r in results):
        return Judged(MAYBE, shown)
    if results and all(results):
        return not neg
    if not any(results):
        return neg
    return Judged(MAYBE, f"{shown} (true for some of the host's addresses only)")


def _nft_value_text(v: Any) -> str:
    if isinstance(v, dict):
        if "range" in v:
            return "-".join(str(x) for x in v["range"])
        if "set" in v:
            return "{ " + ", ".join(_nft_value_text(x) for x in v["set"]) + " }"
        if "prefix" in v:
            return f"{v['prefix'].get('addr')}/{v['prefix'].get('len')}"
        if "payload" in v:
            p = v["payload"]
            if "protocol" in p:
                return f"{p.get('protocol')} {p.get('field')}"
            return f"@{p.get('base')},{p.get('offset')},{p.get('len')}"
        if "meta" in v:
            return f"meta {v['meta'].get('key')}"
        if "ct" in v:
            return f"ct {v['ct'].get('key')}"
        if "fib" in v:
            return f"fib {' . '.join(v['fib'].get('flags', []))} {v['fib'].get('result')}"
        if "numgen" in v:
            g = v["numgen"]
            return f"numgen {g.get('mode')} mod {g.get('mod')}"
        if "elem" in v:
            return _nft_value_text(v["elem"].get("val"))
        if "concat" in v:
            return " . ".join(_nft_value_text(x) for x in v["concat"])
        if "&" in v:
            a, b = v["&"]
            return f"{_nft_value_text(a)} & {_nft_value_text(b)}"
        k = next(iter(v), "")
        return f"{k} {v[k]}" if k else "{}"
    if isinstance(v, list):
        if len(v) == 2 and isinstance(v[1], dict) and len(v[1]) == 1 and next(iter(v[1])) in _VERDICTS:
            return f"{_nft_value_text(v[0])} : {_nft_verdict_text(v[1])}"
        return "{ " + ", ".join(_nft_value_text(x) for x in v) + " }"
    return str(v)


def _nft_expr_text(m: dict[str, Any]) -> str:
    op = m.get("op", "==")
    return f"{_nft_value_text(m.get('left'))} {'' if op in ('==', 'in') else op + ' '}{_nft_value_text(m.get('right'))}"


_VERDICTS = ("accept", "drop", "reject", "return", "jump", "goto", "continue", "queue")


def _nft_verdict_text(v: dict[str, Any]) -> str:
    k = next(iter(v))
    if k in ("jump", "goto"):
        return f"{k} {v[k].get('target')}"
    return k


def _nft_stmt_text(e: dict[str, Any]) -> str:
    if "match" in e:
        return _nft_expr_text(e["match"])
    k = next(iter(e), "")
    if k in _VERDICTS:
        return _nft_verdict_text(e)
    if k == "vmap":
        return f"{_nft_value_text(e[k].get('key'))} vmap {_nft_value_text(e[k].get('data'))}"
    if k == "xt":
        return f"xt {e[k].get('type')} {e[k].get('name')}"
    if k in ("counter",):
        return "counter"
    if k == "limit":
        lim = e[k]
        return f"limit rate {'over ' if lim.get('inv') else ''}{lim.get('rate')}/{lim.get('per')}"
    return k


def _verdict_action(v: dict[str, Any], prefix: str) -> Action:
    k = next(iter(v))
    if k in ("jump", "goto"):
        return Action(k, target=prefix + str(v[k].get("target")))
    if k in ("accept", "drop", "reject", "return", "continue"):
        return Action(k)
    return Action("unknown", what=_nft_verdict_text(v))


#: nft statements that never end a packet's way through a chain
NFT_NONTERMINAL = {"counter", "log", "ct helper", "mangle", "meta", "ct", "set", "map", "notrack", "dup",
                   "flow", "secmark", "ct timeout", "ct expectation", "last", "xt_target_nonterminal",
                   "synproxy"}
NFT_NAT = {"dnat", "snat", "masquerade", "redirect"}


def _nft_rule(r: dict[str, Any], chain: Chain, sets: dict[str, list[Any]], cuts: set[int],
              prefix: str) -> Rule:
    exprs = r.get("expr", [])
    text = (f"nft: {chain.label} handle {r.get('handle')}: " + " ".join(_nft_stmt_text(e) for e in exprs)
            + (f" comment \"{r['comment']}\"" if r.get("comment") else ""))
    rule = Rule(chain=chain.key, text=text, source=chain.source)
    for e in exprs:
        if rule.action.kind != "continue":
            break               # statements after a verdict are never reached
        k = next(iter(e), "")
        if k == "match":
            rule.conds.append((_nft_expr_text(e["match"]), _nft_match(e["match"], chain.family, sets, cuts)))
            left = e["match"].get("left")
            if e["match"].get("op", "==") == "==" and isinstance(left, dict):
                if left.get("payload", {}).get("protocol") in _L4:
                    rule.l4 = left["payload"]["protocol"]
                elif left.get("meta", {}).get("key") == "l4proto" and isinstance(e["match"].get("right"), str):
                    rule.l4 = e["match"]["right"]
        elif k in ("limit", "quota") or k == "ct count":
            rule.conds.append((_nft_stmt_text(e), _const(Judged(SOME, f"{_nft_stmt_text(e)} (only some packets)"))))
        elif k in _VERDICTS:
            rule.action = _verdict_action(e, prefix)
        elif k == "vmap":
            vm = e["vmap"]
            key_expr, data = vm.get("key"), vm.get("data")
            if isinstance(data, str) and data.startswith("@"):
                elements = sets.get(data[1:])
            elif isinstance(data, dict) and "set" in data:
                elements = data["set"]
            else:
                elements = None
            shown = _nft_stmt_text(e)
            if elements is None:
                rule.action = Action("unknown", what=shown)
                continue
            pairs = []
            for el in elements:
                if isinstance(el, list) and len(el) == 2 and isinstance(el[1], dict):
                    pairs.append((el[0], _verdict_action(el[1], prefix)))
                    if isinstance(key_expr, dict) and key_expr.get("payload", {}).get("field") == "dport":
                        _collect_port_cuts(el[0], sets, cuts)
                else:
                    pairs.append((None, Action("unknown", what=shown)))
            rule.action = Action("vmap", vmap=(key_expr, pairs, shown))
        elif k == "reject":
            rule.action = Action("reject")
        elif k in NFT_NAT:
            rule.action = Action("nat", what=k)
        elif k == "xt":
            xt = e["xt"]
            rule.conds.append((f"xt {xt.get('name')}", _const(Judged(
                MAYBE, f"iptables match/target '{xt.get('name')}' (xt {xt.get('type')}; its options are only shown "
                       "by iptables-nft-save)"))))
            if xt.get("type") == "target":
                rule.action = Action("unknown", what=f"iptables target {xt.get('name')}")
        elif k in NFT_NONTERMINAL:
            continue
        else:
            # queue, fwd, tproxy, synproxy... : the packet may end here with a verdict we do not model
            rule.action = Action("unknown", what=_nft_stmt_text(e))
    return _order(rule)


def _nft_set_elements(s: dict[str, Any]) -> list[Any]:
    elems = s.get("elem", [])
    out = []
    for el in elems if isinstance(elems, list) else [elems]:
        if isinstance(el, dict) and "elem" in el:
            out.append(el["elem"].get("val"))
        else:
            out.append(el)
    return out


def parse_nft_json(ruleset: dict[str, Any], replace: dict[str, dict[str, Chain]] | None = None) -> dict[str, Chain]:
    """Every chain of every table and family, keyed ``nftables|family|table|chain``.

    replace maps "family|table" of a table that iptables-nft manages to the chains parsed from
    iptables-nft-save; where a chain's rule count agrees, each rule holding an opaque ``xt`` expression
    takes its iptables-nft-save line (which carries the options nft does not show)."""
    items = ruleset.get("nftables") if isinstance(ruleset, dict) else None
    if not isinstance(items, list):
        raise UnreadableRuleset("the output of `nft -j list ruleset` has no 'nftables' list")
    sets: dict[str, dict[str, list[Any]]] = {}
    for item in items:
        for kind in ("set", "map"):
            if kind in item:
                s = item[kind]
                elems = _nft_set_elements(s)
                if kind == "map" and isinstance(s.get("elem"), list):
                    elems = [el for el in s["elem"]]
                sets.setdefault(f"{s.get('family')}|{s.get('table')}", {})[str(s.get("name"))] = elems
    chains: dict[str, Chain] = {}
    managed = _managed_tables(items, replace or {})
    for item in items:
        if "chain" in item:
            c = item["chain"]
            key = f"nftables|{c.get('family')}|{c.get('table')}|{c.get('name')}"
            chain = Chain(key, str(c.get("name")), str(c.get("family")), str(c.get("table")),
                          "iptables" if f"{c.get('family')}|{c.get('table')}" in managed else "nftables")
            if c.get("hook"):
                chain.hook = str(c["hook"])
                prio = c.get("prio", 0)
                chain.prio = prio if isinstance(prio, int) else _NAMED_PRIO.get(str(prio), 0)
                chain.type = str(c.get("type", "filter"))
                chain.policy = str(c.get("policy", "accept"))
                dev = c.get("dev") or c.get("devices")
                if dev:
                    chain.devices = [dev] if isinstance(dev, str) else list(dev)
            chains[key] = chain
    for item in items:
        if "rule" not in item:
            continue
        r = item["rule"]
        fam_table = f"{r.get('family')}|{r.get('table')}"
        key = f"nftables|{fam_table}|{r.get('chain')}"
        chain = chains.get(key)
        if chain is None:
            continue
        chain.rules.append(_nft_rule(r, chain, sets.get(fam_table, {}), _CUTS, f"nftables|{fam_table}|"))
    if replace:
        for chain in chains.values():
            ipt = replace.get(f"{chain.family}|{chain.table}", {}).get(chain.name)
            if ipt is None:
                continue
            if len(ipt.rules) != len(chain.rules):
                continue        # rules cannot be paired: xt expressions stay "cannot judge"
            for n, rule in enumerate(chain.rules):
                if any(t.startswith("xt ") for t, _ in rule.conds) or rule.action.kind == "unknown" and \
                        rule.action.what.startswith("iptables target"):
                    new = ipt.rules[n]
                    new.chain = chain.key
                    new.source = "iptables"
                    _rekey(new, f"nftables|{chain.family}|{chain.table}|")
                    chain.rules[n] = new
                elif chain.source == "iptables":
                    rule.text = ipt.rules[n].text      # the operator's own syntax, same rule
                    rule.source = "iptables"
    return chains


def _managed_tables(items: list[dict[str, Any]], replace: dict[str, dict[str, Chain]]) -> set[str]:
    """family|table of the tables iptables-nft made: iptables-nft-save printed them and every base
    chain carries the builtin name, hook and priority iptables gives it (a native nft table that only
    shares the name, e.g. `table ip filter { chain input ... }`, is read as nftables)."""
    managed = set()
    for ft, ipt_chains in replace.items():
        table = ft.split("|", 1)[1]
        builtin = IPT_HOOKS.get(table)
        if builtin is None:
            continue
        ok = True
        for item in items:
            c = item.get("chain")
            if not c or f"{c.get('family')}|{c.get('table')}" != ft:
                continue
            if c.get("name") not in ipt_chains:
                ok = False
            if c.get("hook") and (builtin.get(str(c.get("name"))) or (None, None))[0] != c.get("hook"):
                ok = False
        if ok:
            managed.add(ft)
    return managed


def _rekey(rule: Rule, prefix: str) -> None:
    if rule.action.target:
        rule.action.target = prefix + rule.action.target.rsplit("|", 1)[-1]


_NAMED_PRIO = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100,
               "out": 100}


# ------------------------------------------------------------------------------------------------
# reading a host's whole view


@dataclass
class View:
    """What the host printed (None: tool absent; a str error: the tool failed)."""
    nft: dict[str, Any] | None = None
    nft_error: str | None = None
    nft_chains: str | None = None      # `nft list chains`: the devices of ingress/egress chains (nft < 1.0.7 JSON lacks them)
    saves: dict[str, str | None] = field(default_factory=dict)     # iptables-nft / ip6tables-nft / *-legacy
    save_errors: dict[str, str] = field(default_factory=dict)


def read_view(view: View) -> Ruleset:
    """The ruleset from what the host printed; UnreadableRuleset when nothing could be read."""
    with _PARSING:
        return _read_view(view)


def _read_view(view: View) -> Ruleset:
    _CUTS.clear()
    rs = Ruleset()
    if view.nft_error and not any(view.saves.get(k) is not None for k in view.saves):
        raise UnreadableRuleset(view.nft_error)
    replace: dict[str, dict[str, Chain]] = {}
    for name, family in (("iptables-nft", "ip"), ("ip6tables-nft", "ip6")):
        text = view.saves.get(name)
        if text:
            for chain in parse_iptables_save(text, "iptables", family).values():
                replace.setdefault(f"{family}|{chain.table}", {})[chain.name] = chain
    if view.nft is not None:
        rs.chains.update(parse_nft_json(view.nft, replace))
        devices = nft_chain_devices(view.nft_chains or "")
        for c in rs.chains.values():
            if c.hook not in ("ingress", "egress"):
                continue
            if c.devices is None and f"{c.family}|{c.table}|{c.name}" in devices:
                c.devices = devices[f"{c.family}|{c.table}|{c.name}"]
        rs.sources.append("nft -j list ruleset")
        for name in ("iptables-nft", "ip6tables-nft"):
            if view.saves.get(name) is not None:
                rs.sources.append(f"{name}-save")
    elif view.nft_error:
        rs.notes.append(f"nftables not read: {view.nft_error}")
    for name, family in (("iptables-legacy", "ip"), ("ip6tables-legacy", "ip6")):
        text = view.saves.get(name)
        if text and text.strip():
            rs.chains.update(parse_iptables_save(text, name, family))
            rs.sources.append(f"{name}-save")
    # a host with iptables but no nft: its iptables-save is the nft backend without the nft tool
    if view.nft is None and not view.nft_error:
        for name, family in (("iptables-nft", "ip"), ("ip6tables-nft", "ip6")):
            text = view.saves.get(name)
            if text:
                rs.chains.update(parse_iptables_save(text, "iptables", family))
                rs.sources.append(f"{name}-save")
    for name, err in view.save_errors.items():
        rs.notes.append(f"{name}-save failed: {err}")
    rs.cuts = set(_CUTS)
    return rs


def nft_chain_devices(text: str) -> dict[str, list[str]]:
    """family|table|chain -> devices, from `nft list chains` (``device "eth0"`` / ``devices = { a, b }``)."""
    import re

    out: dict[str, list[str]] = {}
    table = chain = None
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "table":
            table = f"{words[1]}|{words[2]}"
        elif len(words) >= 2 and words[0] == "chain" and table:
            chain = f"{table}|{words[1]}"
        elif chain and " hook " in line:
            m = re.search(r"\bdevices? = \{([^}]*)\}|\bdevice \"?([^\s\";]+)", line)
            if m:
                names = m.group(1).split(",") if m.group(1) is not None else [m.group(2)]
                out[chain] = [n.strip().strip('"') for n in names if n.strip()]
    return out


def ruleset_from_iptables(text: str, source: str = "iptables") -> Ruleset:
    """Only iptables text (tests; hosts without nft)."""
    with _PARSING:
        return _ruleset_from_iptables(text, source)


def _ruleset_from_iptables(text: str, source: str = "iptables") -> Ruleset:
    _CUTS.clear()
    rs = Ruleset(chains=parse_iptables_save(text, source), sources=[f"{source}-save"])
    rs.cuts = set(_CUTS)
    return rs


def ruleset_from_nft(ruleset: dict[str, Any]) -> Ruleset:
    """Only an nft JSON ruleset (tests)."""
    with _PARSING:
        return _ruleset_from_nft(ruleset)


def _ruleset_from_nft(ruleset: dict[str, Any]) -> Ruleset:
    _CUTS.clear()
    rs = Ruleset(chains=parse_nft_json(ruleset), sources=["nft -j list ruleset"])
    rs.cuts = set(_CUTS)
    return rs


# ------------------------------------------------------------------------------------------------
# walking


@dataclass(frozen=True)
class Outcome:
    verdict: str                 # accept / drop / reject / fall
    by: str = ""                 # rule or policy text
    hook: str = ""


@dataclass
class Walk:
    rs: Ruleset
    pkt: Packet
    ignore: Callable[[Chain], bool]
    unknown: list[str] = field(default_factory=list)       # "construct in `rule`"
    notes: list[str] = field(default_factory=list)

    def chain(self, key: str, depth: int = 0) -> frozenset[Outcome]:
        c = self.rs.chains.get(key)
        if c is None or self.ignore(c) or depth > 32:
            return frozenset({Outcome("fall")})
        return self._from(c, 0, depth)

    def _from(self, c: Chain, i: int, depth: int) -> frozenset[Outcome]:
        out: set[Outcome] = set()
        while i < len(c.rules):
            rule = c.rules[i]
            i += 1
            if rule.l4 is not None and rule.l4 != self.pkt.proto:
                continue
            m = _all_of(rule.conds, self.pkt)
            if m is False:
                continue
            action = rule.action
            if action.kind == "continue":
                continue
            if isinstance(m, Judged):
                if m.kind == SOURCE and action.kind in ("drop", "reject"):
                    self.notes.append(f"`{rule.text}` drops some sources only ({m.what}); not counted")
                    continue
                if m.kind in (SOURCE, SOME) and action.kind in ("accept", "jump", "goto", "nat", "return"):
                    continue        # does not accept every client: the others go on
                if m.kind == SOME and action.kind in ("drop", "reject"):
                    # drops some of Wire's packets (a rate, a random share): that is interference
                    self.notes.append(f"`{rule.text}` drops some packets only ({m.what}); counted as dropping")
                    return frozenset(out | self._act(c, rule, action, depth))
                self.unknown.append(f"{m.what} in `{rule.text}`")
                got = self._act(c, rule, action, depth)
                out |= {o for o in got if o.verdict != "fall" or action.kind not in ("jump", "vmap")}
                continue            # and the case where it does not match
            got = self._act(c, rule, action, depth)
            if Outcome("fall") in got and action.kind in ("jump", "vmap"):
                out |= {o for o in got if o.verdict != "fall"}
                continue            # back from the called chain: next rule
            out |= got
            return frozenset(out)
        out.add(Outcome("fall"))
        return frozenset(out)

    def _act(self, c: Chain, rule: Rule, action: Action, depth: int) -> frozenset[Outcome]:
        k = action.kind
        if k in ("accept", "nat"):
            if k == "nat":
                self.notes.append(f"`{rule.text}` translates the address ({action.what}); the path after it "
                                  "is judged as if untranslated")
            return frozenset({Outcome("accept", rule.text)})
        if k in ("drop", "reject"):
            return frozenset({Outcome(k, rule.text)})
        if k == "return":
            return frozenset({Outcome("fall")})
        if k in ("jump", "goto") and action.target:
            target = self.rs.chains.get(action.target)
            if target is None:
                self.unknown.append(f"{k} to a chain that was not read in `{rule.text}`")
                return frozenset({Outcome("accept", rule.text), Outcome("drop", rule.text)})
            return self.chain(action.target, depth + 1)
        if k == "vmap":
            key_expr, pairs, shown = action.vmap
            return self._vmap(c, rule, key_expr, pairs, shown, depth)
        self.unknown.append(f"{action.what} in `{rule.text}`")
        return frozenset({Outcome("accept", rule.text), Outcome("drop", rule.text), Outcome("fall")})

    def _vmap(self, c: Chain, rule: Rule, key_expr: Any, pairs: list[Any], shown: str, depth: int
              ) -> frozenset[Outcome]:
        out: set[Outcome] = set()
        hit = False
        for element, action in pairs:
            if element is None:
                self.unknown.append(f"{shown} in `{rule.text}`")
                return frozenset({Outcome("accept", rule.text), Outcome("drop", rule.text), Outcome("fall")})
            cond = _nft_match({"left": key_expr, "right": element, "op": "=="}, c.family, {}, set())
            m = cond(self.pkt)
            if m is False:
                continue
            if isinstance(m, Judged):
                self.unknown.append(f"{m.what} in `{rule.text}`")
                out |= self._act(c, rule, action, depth)
                continue
            out |= self._act(c, rule, action, depth)
            hit = True
            break
        if not hit:
            out.add(Outcome("fall"))
        return frozenset(out)


def _chain_applies(c: Chain, pkt: Packet) -> bool | Judged:
    fam = c.family
    if fam in ("ip", "ip6", "inet"):
        if pkt.family not in ("ip", "ip6") or fam != "inet" and fam != pkt.family:
            return False
    elif fam == "arp":
        if pkt.family != "arp":
            return False
    elif fam == "bridge":
        if pkt.family == "arp":
            return False
    if c.hook in ("ingress", "egress") and c.devices is None:
        return Judged(MAYBE, f"{c.hook} chain {c.label}, whose device nft does not show")
    if c.hook in ("ingress", "egress") and c.devices is not None:
        names = pkt.l2_ifaces
        return _some_all(names, lambda n: any(_iface_match(d, n) for d in c.devices or []),
                         f"{c.hook} chain on device {', '.join(c.devices)}")
    return True


def _where(c: Chain) -> str:
    return (c.hook or "").upper() + (f" ({c.family})" if c.family in ("bridge", "netdev", "arp") else "")


def walk_path(rs: Ruleset, pkt: Packet, ignore: Callable[[Chain], bool],
              ignore_policy: Callable[[Chain], str | None]) -> tuple[frozenset[Outcome], Walk]:
    """Every base chain on the packet's path, in hook then priority order."""
    hooks = PATHS[pkt.path]
    if pkt.family == "arp":
        hooks = ["ingress", "input"] if pkt.path == "in" else ["output", "egress"]
    order = [(hooks.index(c.hook), c.prio, c.key) for c in rs.base_chains()
             if c.hook in hooks and not ignore(c)]
    w = Walk(rs, pkt, ignore)
    states: set[Outcome] = {Outcome("accept")}       # the packet still on its way
    final: set[Outcome] = set()
    for _h, _prio, key in sorted(order):
        c = rs.chains[key]
        if c.type == "nat" and pkt.ct != "new":
            continue            # nat chains see the first packet of a connection only
        applies = _chain_applies(c, pkt)
        if applies is False:
            continue
        got = w.chain(key)
        results: set[Outcome] = set()
        for o in got:
            if o.verdict == "fall":
                reason = ignore_policy(c)
                if c.policy in ("drop", "reject") and reason is None:
                    results.add(Outcome(c.policy, c.policy_text(), _where(c)))
                else:
                    if c.policy in ("drop", "reject"):
                        w.notes.append(f"{c.policy_text()}: not held against the host ({reason})")
                    results.add(Outcome("accept"))
            elif o.verdict in ("drop", "reject"):
                results.add(Outcome(o.verdict, o.by, _where(c)))
            else:
                results.add(Outcome("accept"))
        if isinstance(applies, Judged):
            w.unknown.append(applies.what)
            results.add(Outcome("accept"))
        final |= {r for r in results if r.verdict != "accept"}
        if not any(r.verdict == "accept" for r in results):
            states = set()
            break
    if states:
        final.add(Outcome("accept"))
    return frozenset(final), w


# ------------------------------------------------------------------------------------------------
# judging required ports


@dataclass
class Decision:
    proto: str
    ports: tuple[int, int]
    verdict: str                 # drop / reject / cannot judge
    by: str                      # the rule or policy text (for cannot judge: what and where)
    hook: str                    # INPUT, PREROUTING, FORWARD, INGRESS, OUTPUT ...
    path: str = "in"
    family: str = "ip"


@dataclass
class Judgement:
    blocked: list[Decision] = field(default_factory=list)      # certain: this rule drops
    unknown: list[Decision] = field(default_factory=list)      # cannot judge
    notes: list[str] = field(default_factory=list)

    @property
    def decisions(self) -> list[Decision]:
        return self.blocked + self.unknown


def _segments(cuts: set[int], lo: int, hi: int) -> list[tuple[int, int]]:
    points = sorted({lo, hi + 1} | {c for c in cuts if lo < c <= hi})
    return [(points[i], points[i + 1] - 1) for i in range(len(points) - 1)]


def judge(rs: Ruleset, required: list[Required], *, paths: Iterable[str] = ("in",),
          families: Iterable[str] = ("ip",), l3_ifaces: Iterable[str] | None = None,
          l2_ifaces: Iterable[str] | None = None, local_addresses: Iterable[str] | None = None,
          ignore: Callable[[Chain], bool] | None = None,
          ignore_policy: Callable[[Chain], str | None] | None = None) -> Judgement:
    """Judge every required (proto, lo, hi) on every path for every family."""
    ignore = ignore or (lambda c: False)
    ignore_policy = ignore_policy or (lambda c: None)
    l3 = frozenset(l3_ifaces) if l3_ifaces is not None else None
    l2 = frozenset(l2_ifaces) if l2_ifaces is not None else l3
    local = frozenset(local_addresses) if local_addresses is not None else None
    out = Judgement()
    notes: list[str] = []
    for path in paths:
        for family in families:
            if family == "ip" and path in ("in", "out"):
                # the ARP exchange every IPv4 packet needs
                pkt = Packet("arp", "arp", 0, "new", path, l3, l2, local)
                final, w = walk_path(rs, pkt, ignore, ignore_policy)
                notes += w.notes
                if {o.verdict for o in final} != {"accept"}:
                    for proto, lo, hi in required:
                        _merge(out, proto, lo, hi, final, w.unknown, path, "arp")
            for proto, lo, hi in required:
                for a, b in _segments(rs.cuts, lo, hi):
                    # the first packet of a flow and the ones after it must all get through: a certain
                    # drop of either decides; otherwise either one's uncertainty does
                    results = []
                    for ct in ("new", "established"):
                        pkt = Packet(family, proto, a, ct, path, l3, l2, local)
                        final, w = walk_path(rs, pkt, ignore, ignore_policy)
                        notes += w.notes
                        results.append((final, w.unknown))
                    certain = [r for r in results if "accept" not in {o.verdict for o in r[0]}]
                    unsure = [r for r in results if {o.verdict for o in r[0]} - {"accept"}]
                    pick = certain[0] if certain else unsure[0] if unsure else results[0]
                    _merge(out, proto, a, b, pick[0], pick[1], path, family)
    out.notes = list(dict.fromkeys(notes))
    return out


def _merge(out: Judgement, proto: str, a: int, b: int, outcomes: frozenset[Outcome], unknown: list[str],
           path: str, family: str) -> None:
    verdicts = {o.verdict for o in outcomes}
    if verdicts == {"accept"}:
        return
    blocking = sorted((o for o in outcomes if o.verdict != "accept"), key=lambda o: (o.hook, o.by))
    if "accept" not in verdicts:
        first = blocking[0]
        dec = Decision(proto, (a, b), first.verdict, first.by, first.hook, path, family)
        target = out.blocked
    else:
        what = "; ".join(dict.fromkeys(unknown)) or "a construct on the way"
        may = "; ".join(dict.fromkeys(f"{o.verdict} by `{o.by}`" for o in blocking))
        dec = Decision(proto, (a, b), "cannot judge", f"{what} (may end in: {may})", blocking[0].hook or "?",
                       path, family)
        target = out.unknown
    last = target[-1] if target else None
    if last and (last.by, last.proto, last.hook, last.path, last.family, last.verdict) == \
            (dec.by, dec.proto, dec.hook, dec.path, dec.family, dec.verdict) and last.ports[1] + 1 == a:
        last.ports = (last.ports[0], b)
        return
    target.append(dec)


def describe(decisions: list[Decision]) -> list[str]:
    out = []
    for d in decisions:
        ports = f"{d.ports[0]}" if d.ports[0] == d.ports[1] else f"{d.ports[0]}-{d.ports[1]}"
        where = d.hook + (" (IPv6)" if d.family == "ip6" else "")
        if d.verdict == "cannot judge":
            out.append(f"{where} {d.proto}/{ports}: cannot judge: {d.by}")
        else:
            out.append(f"{where} {d.proto}/{ports}: {d.verdict} by `{d.by}`")
    return list(dict.fromkeys(out))


def port_set(decisions: Iterable[Decision]) -> dict[str, set[int]]:
    got: dict[str, set[int]] = {}
    for d in decisions:
        got.setdefault(d.proto, set()).update(range(d.ports[0], d.ports[1] + 1))
    return got
