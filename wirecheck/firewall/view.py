"""A host's whole view (nft JSON, iptables-nft and iptables-legacy printouts) read into one ruleset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .iptables import parse_iptables_save
from .model import _CUTS, _PARSING, Chain, Ruleset, UnreadableRuleset
from .nft import parse_nft_json

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


def _ruleset_from_iptables(text: str, source: str) -> Ruleset:
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


