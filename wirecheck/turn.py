"""Which addresses are TURN servers' addresses: the ones clients are given, not the ones we log in to.

Every TURN check (ACC-TURN-STUN, NET-PORT-TURN-3478 before and after the install, CALL-TURN-URIS)
probes or compares the addresses chosen here, and records each one with the reason it was chosen:

1. ``--turn-ip`` (repeatable): the operator's word wins;
2. ``turn_servers`` in the inventory (a list);
3. per restund/coturn host: ``restund_public_ip`` (what restund advertises to clients), else
   ``public_ip``; a host with neither falls back to the TURN hosts in brig's values
   (``brig.turnStatic.v2``: what clients are actually handed) when the caller could read them,
   else to its ``ansible_host`` (said so in the reason: that is only right when it is public);
4. no TURN hosts: the demo's ``wire_ip`` (the playbook DNATs 3478 to coturn), else brig's values.

No pytest and no network in here; callers pass the values they read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TURN_ROLES = ("restund", "coturn")
PUBLIC_VARS = ("restund_public_ip", "public_ip")


@dataclass(frozen=True)
class TurnAddress:
    address: str
    source: str  # why this address, in words ("restund_public_ip of restund01")

    def evidence(self) -> dict[str, str]:
        return {"address": self.address, "source": self.source}


def _turn_ips(site) -> list[str]:
    return [str(ip) for ip in (site.option("turn_ip") or [])]


def host_public_address(target) -> TurnAddress | None:
    """The address a restund/coturn host gives its clients, from its inventory variables (None: none set)."""
    for key in PUBLIC_VARS:
        value = target.vars.get(key)
        if value:
            return TurnAddress(str(value), f"{key} of {target.name}")
    return None


def target_turn_address(target, site) -> TurnAddress | None:
    """The TURN address of one inventory host, for the per-host port checks; None when the host is no TURN
    host of its own (the caller then probes its usual address)."""
    turn_ips = _turn_ips(site)
    if set(TURN_ROLES) & set(target.roles):
        public = host_public_address(target)
        if len(turn_ips) == 1 and len(site.targets_with_role(*TURN_ROLES)) == 1:
            return TurnAddress(turn_ips[0], f"--turn-ip (the only TURN host is {target.name})")
        return public
    if site.profile == "demo" or "deploy_node" in target.roles:
        if len(turn_ips) == 1:
            return TurnAddress(turn_ips[0], "--turn-ip")
        if site.wire_ip:
            return TurnAddress(site.wire_ip, "wire_ip (the demo forwards 3478 to coturn)")
    return None


def turn_addresses(site, values_hosts: Sequence[str] | None = None,
                   values_source: str = "brig.turnStatic.v2") -> list[TurnAddress]:
    """Every TURN address clients are given (order as in the module docstring), without duplicates.
    `values_hosts`: the hosts of brig's TURN URIs when the caller read them (None: not read)."""
    chosen: list[TurnAddress] = []
    turn_ips = _turn_ips(site)
    if turn_ips:
        chosen = [TurnAddress(ip, "--turn-ip") for ip in turn_ips]
    elif isinstance(site.vars.get("turn_servers"), list) and site.vars["turn_servers"]:
        chosen = [TurnAddress(str(ip), "turn_servers in the inventory") for ip in site.vars["turn_servers"]]
    else:
        hosts = sorted(site.targets_with_role(*TURN_ROLES), key=lambda t: t.name)
        unnamed = []
        for host in hosts:
            public = host_public_address(host)
            if public is not None:
                chosen.append(public)
            else:
                unnamed.append(host)
        if unnamed and values_hosts:
            chosen += [TurnAddress(h, f"{values_source} (no restund_public_ip for "
                                      f"{', '.join(t.name for t in unnamed)})") for h in values_hosts]
        elif unnamed:
            chosen += [TurnAddress(t.address, f"ansible_host of {t.name} (no restund_public_ip or public_ip in the "
                                              "inventory: right only if clients reach it there)") for t in unnamed]
        if not hosts:
            if site.profile == "demo" and site.wire_ip:
                chosen = [TurnAddress(site.wire_ip, "wire_ip (the demo forwards 3478 to coturn)")]
            elif values_hosts:
                chosen = [TurnAddress(h, values_source) for h in values_hosts]
    unique: dict[str, TurnAddress] = {}
    for entry in chosen:
        unique.setdefault(entry.address, entry)
    return list(unique.values())
