"""iptables-save (and ``iptables -S``) text into chains."""

from __future__ import annotations

import ipaddress
import shlex
from typing import Any

from .model import (
    _CHAIN_NAMES,
    _CUTS,
    IPT_HOOKS,
    IPT_TYPES,
    MAYBE,
    SOME,
    SOURCE,
    Action,
    Chain,
    Cond,
    Judged,
    Packet,
    Rule,
    _iface_match,
    _in_net,
    _order,
    _ranges_add,
    _some_all,
)

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


def _tcp_only(judged: Judged) -> Cond:
    return lambda p: False if p.proto != "tcp" else judged


#: targets that change nothing about the verdict
IPT_NONTERMINAL = {"LOG", "NFLOG", "ULOG", "MARK", "CONNMARK", "CT", "TRACE", "NOTRACK", "TCPMSS", "CLASSIFY",
                   "DSCP", "TOS", "TTL", "HL", "CHECKSUM", "SET", "AUDIT", "CONNSECMARK", "SECMARK", "IDLETIMER",
                   "LED", "TEE"}
IPT_NAT = {"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"}


def _ipt_rule(words: list[str], text: str, prefix: str) -> Rule:
    rule = Rule(text=text)
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
        elif w in ("--limit", "--hashlimit-upto", "--hashlimit-above", "--connlimit-above", "--connlimit-upto",
                   "--probability", "--every", "--quota", "--hitcount", "--seconds"):
            add(shown, _const(Judged(SOME, f"-m {module} {shown} (only some packets)")))
        elif w in ("--limit-burst", "--hashlimit-burst", "--hashlimit-mode", "--hashlimit-name",
                   "--hashlimit-htable-expire", "--hashlimit-srcmask", "--connlimit-mask", "--mode", "--packet",
                   "--name", "--mask", "--hashlimit-htable-size", "--hashlimit-htable-max",
                   "--hashlimit-htable-gcinterval", "--connlimit-saddr", "--connlimit-daddr"):
            if w == "--connlimit-saddr" or w == "--connlimit-daddr":
                n = 1
        elif w == "--dst-type" and module == "addrtype":
            # --src-type (the client's address type) is not modelled: the generic branch below
            types = {t.upper() for t in nxt.split(",")}
            add(shown, lambda p, types=types, neg=neg: (bool(types & {"LOCAL", "UNICAST"})
                                                       if p.path != "out" else "UNICAST" in types) != neg)
        elif w == "--pkt-type":
            unicast = nxt.lower() == "unicast"
            add(shown, _const(unicast != neg))
        elif w == "--match-set":
            # iptables-save always prints the flags; a missing one must not swallow the `-j` after it
            flags = words[i + 2] if i + 2 < len(words) and not words[i + 2].startswith("-") else ""
            n = 3 if flags else 2
            shown = f"{shown} {flags}".strip()
            if flags and all(f == "src" for f in flags.split(",")):
                add(shown, _const(Judged(SOURCE, f"-m set {shown} (only some sources)")))
            else:
                add(shown, _const(Judged(MAYBE, f"-m set {shown} (ipset contents are not read)")))
        elif w in ("--icmp-type", "--icmpv6-type"):
            add(shown, _const(False))       # an ICMP type never matches Wire's TCP/UDP packets
        elif w == "--tcp-flags":
            flags = " ".join(words[i + 1:i + 3])
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
            # a value-less flag: iptables-save prints the next option (or `!`, or the end) right after it
            if not nxt or nxt.startswith("-") or nxt == "!":
                n = 1
                shown = f"{'! ' if neg else ''}{w}"
            if module == "comment":
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
        elif line.startswith("-N "):
            names.setdefault(t, set()).add(line.split()[1])
    for line in lines:
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        if line.startswith("#nat"):
            table = "nat"
            continue
        if not line or line.startswith("#"):       # blank, comment (COMMIT matches no branch below)
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
            # `:INPUT DROP [0:0]`; a user chain shows `-` (it has no policy: only base chains' policies apply)
            chain_of(words[0][1:]).policy = words[1].lower()
        elif words[0] == "-P" and len(words) >= 3:
            chain_of(words[1]).policy = words[2].lower()
        elif words[0] == "-N" and len(words) >= 2:
            chain_of(words[1])
        elif words[0] == "-A" and len(words) >= 2:
            c = chain_of(words[1])
            _CHAIN_NAMES.clear()
            _CHAIN_NAMES.update(names.get(table, set()))
            c.rules.append(_ipt_rule(words[2:], line, prefix))
    return chains


