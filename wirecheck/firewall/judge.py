"""Judging Wire's required port ranges from the walks: decisions and their texts."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .model import Chain, Packet, Required, Ruleset
from .walk import Outcome, walk_path

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
