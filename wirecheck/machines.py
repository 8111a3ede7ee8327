"""Machines, not inventory names.

An inventory may list one machine under several names (``cas1`` in [cassandra] and ``es1`` in
[elasticsearch] pointing at the same VM). Sizing, colocation sums and counts go per machine: the
machine carries the roles of all its names, and it counts once toward "three VMs".

A machine is known by its ``/etc/machine-id`` together with the kernel's boot id
(``/proc/sys/kernel/random/boot_id``): two names reading both the same are one running system.
The boot id tells cloned VMs apart that kept the template's machine-id (each boots on its own;
IMP-HOSTNAME-UNIQUE reports the shared machine-id). Where the machine-id could not be read, the
address the name resolves to (and the SSH port) stands in, and the evidence says so.

Everything here is pure: the callers measure, these functions decide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MACHINE_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Identity:
    key: tuple[str, ...]   # ("machine-id", id, boot id) or ("address", address, port)
    how: str               # for the evidence: how this name was identified

    @property
    def by_address(self) -> bool:
        return self.key[0] == "address"


def identify(machine_id: str | None, boot_id: str | None, address: str, port: int | None = None,
             problem: str | None = None) -> Identity:
    """The identity of one inventory name from what its host reported (``problem``: why nothing
    could be read, e.g. the host did not answer)."""
    mid = (machine_id or "").strip().lower()
    boot = (boot_id or "").strip().lower()
    if problem is None and MACHINE_ID.match(mid):
        how = f"machine-id {mid}" + (f", boot id {boot}" if boot else "")
        return Identity(("machine-id", mid, boot), how)
    if problem is None:
        problem = (f"/etc/machine-id holds {mid!r}, not a machine-id" if mid
                   else "/etc/machine-id is empty or missing")
    where = f"{address}:{port}" if port else address
    return Identity(("address", address, str(port or 22)), f"address {where} (machine-id not read: {problem})")


@dataclass
class Machine:
    identity: Identity
    names: list[str] = field(default_factory=list)
    roles: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        return " = ".join(self.names)

    @property
    def merged(self) -> bool:
        return len(self.names) > 1


def group_machines(entries: Iterable[tuple[str, Sequence[str], Identity]]) -> list[Machine]:
    """(inventory name, its roles, its identity) -> the machines, each with all names and roles."""
    by_key: dict[tuple[str, ...], Machine] = {}
    for name, roles, ident in entries:
        m = by_key.setdefault(ident.key, Machine(ident))
        m.names.append(name)
        m.roles.update(roles)
    for m in by_key.values():
        m.names.sort()
    return sorted(by_key.values(), key=lambda m: m.names[0])


def machine_of(name: str, machines: Iterable[Machine]) -> Machine:
    for m in machines:
        if name in m.names:
            return m
    raise KeyError(name)


def count_machines(machines: Iterable[Machine], roles: Iterable[str]) -> list[Machine]:
    """The machines carrying any of ``roles`` (each once, whatever names it has)."""
    wanted = set(roles)
    return [m for m in machines if m.roles & wanted]


def merged_names(machines: Iterable[Machine]) -> dict[str, list[str]]:
    """For the evidence: machine label -> its names, for machines listed under more than one name."""
    return {m.label: list(m.names) for m in machines if m.merged}
