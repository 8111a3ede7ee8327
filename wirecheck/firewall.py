"""Does a host firewall drop or reject the traffic Wire needs?

Reads the rules as the kernel has them (``iptables -S`` and ``nft -j list ruleset``) and walks them
the way the kernel would for a new inbound connection from the internet to each required port:
first matching rule wins, jumps are followed, the chain policy applies at the end.  The answer
names the rule (or policy) that decides, so the operator knows what to change.

Matches we cannot interpret are treated conservatively: an ACCEPT we do not understand is not
taken as accepting, a DROP/REJECT we do not understand is reported as "may block".
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

Port = tuple[str, int]          # ("tcp", 443)


@dataclass
class Rule:
    chain: str
    text: str                   # as shown to the operator
    protocol: str | None = None
    ports: list[tuple[int, int]] | None = None      # destination port ranges; None = any
    verdict: str = ""           # accept, drop, reject, return, jump, goto, none
    target_chain: str | None = None
    skip: str | None = None     # why this rule cannot match a new connection from the internet
    unknown: list[str] = field(default_factory=list)

    def matches(self, proto: str, port: int) -> bool:
        if self.skip:
            return False
        if self.protocol and self.protocol not in (proto, "all"):
            return False
        if self.ports is not None and not any(lo <= port <= hi for lo, hi in self.ports):
            return False
        return True


@dataclass
class Chain:
    name: str
    policy: str | None = None   # accept / drop for base chains
    rules: list[Rule] = field(default_factory=list)
    source: str = "iptables"
    table: str = "filter"


@dataclass
class Decision:
    proto: str
    ports: tuple[int, int]
    verdict: str                # accept / drop / reject / may-block
    by: str                     # the rule or policy text
    hook: str                   # INPUT or FORWARD


def _port_ranges(spec: str) -> list[tuple[int, int]]:
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition(":")
        out.append((int(lo or 0), int(hi or 65535) if hi or part.endswith(":") else int(lo)))
    return out


def parse_iptables_save(text: str) -> dict[str, Chain]:
    """Parse ``iptables -S`` output of the filter table (stops at a '#nat' marker line)."""
    chains: dict[str, Chain] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#nat"):
            break
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if words[0] == "-P" and len(words) >= 3:
            chains.setdefault(words[1], Chain(words[1])).policy = words[2].lower()
        elif words[0] == "-N" and len(words) >= 2:
            chains.setdefault(words[1], Chain(words[1]))
        elif words[0] == "-A" and len(words) >= 2:
            chain = chains.setdefault(words[1], Chain(words[1]))
            chain.rules.append(_iptables_rule(words[1], words[2:], line))
    return chains


def _iptables_rule(chain: str, words: list[str], text: str) -> Rule:
    rule = Rule(chain=chain, text=text)
    i = 0
    negated = False
    while i < len(words):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w == "!":
            negated = True
            i += 1
            continue
        if w in ("-p", "--protocol"):
            rule.protocol = None if negated else nxt.lower()
            if negated:
                rule.unknown.append(f"! -p {nxt}")
            i += 2
        elif w in ("--dport", "--destination-port", "--dports", "--destination-ports"):
            if negated:
                rule.unknown.append(f"! {w} {nxt}")
            else:
                rule.ports = _port_ranges(nxt)
            i += 2
        elif w in ("-i", "--in-interface"):
            if nxt == "lo" and not negated:
                rule.skip = "loopback only"
            elif not negated:
                rule.unknown.append(f"-i {nxt}")     # interface-specific: may or may not be the public one
            i += 2
        elif w in ("-s", "--source"):
            if not negated and nxt not in ("0.0.0.0/0", "0/0"):
                rule.skip = f"only from {nxt}"
            i += 2
        elif w in ("--ctstate", "--state"):
            states = set(nxt.upper().split(","))
            if not negated and "NEW" not in states and "UNTRACKED" not in states:
                rule.skip = f"only {nxt} connections"
            i += 2
        elif w in ("-m", "--match"):
            i += 2
        elif w in ("-j", "--jump", "-g", "--goto"):
            target = nxt
            if target.upper() in ("ACCEPT", "DROP", "REJECT", "RETURN"):
                rule.verdict = target.lower()
            elif target.upper() in ("LOG", "NFLOG", "ULOG", "MARK", "CONNMARK", "CT", "TRACE", "NOTRACK"):
                rule.verdict = "none"
            else:
                rule.verdict = "goto" if w in ("-g", "--goto") else "jump"
                rule.target_chain = target
            i += 2
            while i < len(words) and not words[i].startswith("-") or (i < len(words) and words[i] in ("--reject-with",)):
                i += 1
        elif w.startswith("-"):
            # another match we do not model (e.g. --icmp-type, --uid-owner, -d, --limit)
            arg = nxt if nxt and not nxt.startswith("-") else ""
            if w not in ("--comment", "-d", "--destination", "-c", "--icmp-type", "--tcp-flags", "--syn",
                         "--reject-with", "--limit", "--limit-burst", "--log-prefix"):
                rule.unknown.append(f"{w} {arg}".strip())
            if w == "--tcp-flags":
                i += 3
            elif w == "--syn":
                i += 1
            else:
                i += 2 if arg else 1
        else:
            i += 1
        negated = False
    if not rule.verdict:
        rule.verdict = "none"
    return rule


def parse_nft_json(ruleset: dict[str, Any], skip_iptables_tables: bool = True) -> dict[str, Chain]:
    """Base and regular chains from ``nft -j list ruleset`` (inet/ip families), keyed family:table:chain."""
    chains: dict[str, Chain] = {}
    items = ruleset.get("nftables", []) if isinstance(ruleset, dict) else []
    for item in items:
        if "chain" in item:
            c = item["chain"]
            if c.get("family") not in ("ip", "inet"):
                continue
            if skip_iptables_tables and c.get("family") == "ip" and c.get("table") in (
                    "filter", "nat", "mangle", "raw", "security"):
                continue
            key = f"{c['family']}:{c['table']}:{c['name']}"
            chain = chains.setdefault(key, Chain(c["name"], source="nftables", table=f"{c['family']} {c['table']}"))
            if c.get("hook") in ("input", "forward") and c.get("type", "filter") == "filter":
                chain.policy = c.get("policy", "accept")
                chain.name = f"{c['family']} {c['table']} {c['name']} (hook {c['hook']})"
                chain.hook = c["hook"].upper()  # type: ignore[attr-defined]
    for item in items:
        if "rule" not in item:
            continue
        r = item["rule"]
        key = f"{r.get('family')}:{r.get('table')}:{r.get('chain')}"
        if key not in chains:
            continue
        chains[key].rules.append(_nft_rule(key, r))
    return chains


def _nft_ports(right: Any) -> list[tuple[int, int]] | None:
    if isinstance(right, int):
        return [(right, right)]
    if isinstance(right, dict):
        if "range" in right:
            lo, hi = right["range"]
            return [(int(lo), int(hi))]
        if "set" in right:
            out: list[tuple[int, int]] = []
            for el in right["set"]:
                got = _nft_ports(el)
                if got is None:
                    return None
                out += got
            return out
    if isinstance(right, list):
        return _nft_ports({"set": right})
    return None


def _nft_rule(key: str, r: dict[str, Any]) -> Rule:
    family, table, chain = key.split(":")
    text = f"nft: table {family} {table} chain {chain} handle {r.get('handle')}: " + (
        r.get("comment") or _nft_text(r.get("expr", [])))
    rule = Rule(chain=key, text=text)
    for e in r.get("expr", []):
        if "match" in e:
            m = e["match"]
            left, right, op = m.get("left", {}), m.get("right"), m.get("op", "==")
            neg = op == "!="
            if isinstance(left, dict) and "payload" in left:
                field_ = left["payload"].get("field")
                proto = left["payload"].get("protocol")
                if field_ == "dport" and proto in ("tcp", "udp", "th"):
                    if proto != "th":
                        rule.protocol = proto
                    ports = _nft_ports(right)
                    if ports is None or neg:
                        rule.unknown.append(f"{proto} dport {op} {right}")
                    else:
                        rule.ports = ports
                elif field_ == "saddr" and not neg:
                    rule.skip = f"only from {right}"
                elif field_ == "protocol" and not neg:
                    rule.protocol = str(right)
                else:
                    rule.unknown.append(f"{proto} {field_} {op} {right}")
            elif isinstance(left, dict) and "meta" in left:
                k = left["meta"].get("key")
                if k == "l4proto" and not neg and isinstance(right, str):
                    rule.protocol = right
                elif k in ("iifname", "iif") and right == "lo" and not neg:
                    rule.skip = "loopback only"
                elif k in ("iifname", "iif"):
                    rule.unknown.append(f"{k} {op} {right}")
                elif k == "nfproto":
                    pass
                else:
                    rule.unknown.append(f"meta {k} {op} {right}")
            elif isinstance(left, dict) and "ct" in left and left["ct"].get("key") == "state":
                states = {right} if isinstance(right, str) else set(right if isinstance(right, list) else right.get("set", []))
                if not neg and "new" not in states and "untracked" not in states:
                    rule.skip = f"only {','.join(sorted(states))} connections"
            else:
                rule.unknown.append(str(left)[:60])
        elif "accept" in e:
            rule.verdict = "accept"
        elif "drop" in e:
            rule.verdict = "drop"
        elif "reject" in e:
            rule.verdict = "reject"
        elif "return" in e:
            rule.verdict = "return"
        elif "jump" in e or "goto" in e:
            kind = "jump" if "jump" in e else "goto"
            rule.verdict = kind
            rule.target_chain = f"{family}:{table}:{e[kind]['target']}"
    if not rule.verdict:
        rule.verdict = "none"
    return rule


def _nft_text(exprs: list[dict[str, Any]]) -> str:
    parts = []
    for e in exprs:
        if "match" in e:
            m = e["match"]
            left = m.get("left", {})
            if "payload" in left:
                lt = f"{left['payload'].get('protocol')} {left['payload'].get('field')}"
            elif "meta" in left:
                lt = f"meta {left['meta'].get('key')}"
            elif "ct" in left:
                lt = f"ct {left['ct'].get('key')}"
            else:
                lt = "?"
            right = m.get("right")
            if isinstance(right, dict) and "range" in right:
                right = "-".join(str(x) for x in right["range"])
            elif isinstance(right, dict) and "set" in right:
                right = "{" + ", ".join(str(x) for x in right["set"]) + "}"
            parts.append(f"{lt} {'' if m.get('op', '==') == '==' else m.get('op') + ' '}{right}")
        else:
            for k in ("accept", "drop", "reject", "return", "counter"):
                if k in e:
                    parts.append(k)
            for k in ("jump", "goto"):
                if k in e:
                    parts.append(f"{k} {e[k]['target']}")
    return " ".join(parts)


def _walk(chains: dict[str, Chain], chain_key: str, proto: str, port: int, depth: int = 0
          ) -> tuple[str, str] | None:
    """First decisive rule for a packet in a chain: (verdict, rule text) or None to fall through."""
    chain = chains.get(chain_key)
    if chain is None or depth > 20:
        return None
    for rule in chain.rules:
        if not rule.matches(proto, port):
            continue
        if rule.unknown:
            if rule.verdict in ("drop", "reject"):
                return "may-block", f"{rule.text}  [matches we cannot evaluate: {', '.join(rule.unknown)}]"
            continue        # an ACCEPT/jump we cannot evaluate does not count as accepting
        if rule.verdict in ("accept", "drop", "reject"):
            return rule.verdict, rule.text
        if rule.verdict == "return":
            return None
        if rule.verdict in ("jump", "goto") and rule.target_chain:
            got = _walk(chains, rule.target_chain, proto, port, depth + 1)
            if got is not None:
                return got
            if rule.verdict == "goto":
                return None
    return None


def _segments(chains: dict[str, Chain], lo: int, hi: int) -> list[tuple[int, int]]:
    """Split [lo, hi] at every port boundary any rule uses, so each segment is judged once."""
    cuts = {lo, hi + 1}
    for chain in chains.values():
        for rule in chain.rules:
            for a, b in rule.ports or []:
                if lo <= a <= hi:
                    cuts.add(a)
                if lo <= b + 1 <= hi:
                    cuts.add(b + 1)
    points = sorted(cuts)
    return [(points[i], points[i + 1] - 1) for i in range(len(points) - 1)]


def evaluate(chains: dict[str, Chain], base: dict[str, str], required: list[tuple[str, int, int]],
             ignore_policy: dict[str, str] | None = None) -> list[Decision]:
    """Judge each required (proto, lo, hi) for each hook -> list of blocking decisions.

    base maps hook name (INPUT/FORWARD) to the key of its base chain in ``chains``.
    ignore_policy maps hook name to why its DROP policy is not held against the host.
    """
    blocked: list[Decision] = []
    ignore_policy = ignore_policy or {}
    for hook, key in base.items():
        chain = chains.get(key)
        if chain is None:
            continue
        for proto, lo, hi in required:
            for a, b in _segments(chains, lo, hi):
                got = _walk(chains, key, proto, a)
                if got is None:
                    policy = chain.policy or "accept"
                    if policy in ("drop", "reject") and hook not in ignore_policy:
                        got = (policy, f"{chain.source} {chain.name} policy {policy.upper()}")
                    else:
                        continue
                verdict, text = got
                if verdict == "accept":
                    continue
                if blocked and blocked[-1].by == text and blocked[-1].proto == proto and \
                        blocked[-1].hook == hook and blocked[-1].ports[1] + 1 == a:
                    blocked[-1].ports = (blocked[-1].ports[0], b)
                    continue
                blocked.append(Decision(proto, (a, b), verdict, text, hook))
    return blocked


def iptables_blocking(text: str, required: list[tuple[str, int, int]], ignored_chains: list[str]
                      ) -> tuple[list[Decision], list[str]]:
    chains = parse_iptables_save(text)
    notes = []
    for name in ignored_chains:
        chains.pop(name, None)
    ignore: dict[str, str] = {}
    if any(n.startswith("DOCKER") for n in parse_iptables_save(text)) and \
            (chains.get("FORWARD") and chains["FORWARD"].policy == "drop"):
        ignore["FORWARD"] = "set by Docker"
        notes.append("FORWARD policy DROP is Docker's own (DOCKER chains present); not held against the host")
    return evaluate(chains, {"INPUT": "INPUT", "FORWARD": "FORWARD"}, required, ignore), notes


def nft_blocking(ruleset: dict[str, Any], required: list[tuple[str, int, int]]) -> list[Decision]:
    chains = parse_nft_json(ruleset)
    decisions: list[Decision] = []
    for key, chain in chains.items():
        hook = getattr(chain, "hook", None)
        if hook in ("INPUT", "FORWARD"):
            decisions += evaluate(chains, {hook: key}, required)
    return decisions


def describe(decisions: list[Decision]) -> list[str]:
    out = []
    for d in decisions:
        ports = f"{d.ports[0]}" if d.ports[0] == d.ports[1] else f"{d.ports[0]}-{d.ports[1]}"
        out.append(f"{d.hook} {d.proto}/{ports}: {d.verdict} by `{d.by}`")
    return out
