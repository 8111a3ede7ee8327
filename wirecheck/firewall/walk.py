"""Walking a packet through every base chain on its way, the way the kernel does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .model import (
    MAYBE,
    PATHS,
    SOME,
    SOURCE,
    Action,
    Chain,
    Judged,
    Packet,
    Rule,
    Ruleset,
    _all_of,
    _iface_match,
    _some_all,
)
from .nft import _nft_match

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
    through = True                   # the packet still on its way
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
            through = False
            break
    if through:
        final.add(Outcome("accept"))
    return frozenset(final), w


