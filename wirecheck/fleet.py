"""The machines behind an inventory's names, measured: each name's machine-id and boot id read on
its host (once per run, shared between pytest-xdist processes), else its resolved address. The
decisions are wirecheck.machines'."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from .machines import Identity, Machine, group_machines, identify
from .outcome import Outcome
from .transport import TransportError


def _resolved(t) -> tuple[str, int | None]:
    """The address a name connects to, resolved on this machine (names and numbers compare alike),
    and its SSH port."""
    if getattr(t, "local", False):
        return "this machine (local connection)", None
    port = getattr(t.transport, "port", None)
    try:
        infos = socket.getaddrinfo(str(t.address), None, proto=socket.IPPROTO_TCP)
        address = sorted({i[4][0] for i in infos})[0]
    except (OSError, UnicodeError, IndexError):
        address = str(t.address)
    return address, int(port) if port else None


def identity_of(t) -> Identity:
    """One inventory name's machine: machine-id and boot id read on the host, else its address."""
    try:
        ident = t.facts.identity()
    except (TransportError, Outcome) as exc:
        return identify(None, None, *_resolved(t), problem=str(exc).strip() or type(exc).__name__)
    return identify(ident.get("machine_id"), ident.get("boot_id"), *_resolved(t))


_MACHINES_LOCK = threading.Lock()


def machines(site, targets=None) -> list[Machine]:
    """The machines behind the inventory's names (each name asked once per run; see wirecheck.machines)."""
    targets = list(site.targets if targets is None else targets)
    with _MACHINES_LOCK:
        cache = site.__dict__.setdefault("_wc_identities", {})
        todo = [t for t in targets if t.name not in cache]
    if todo:
        with ThreadPoolExecutor(max_workers=min(16, len(todo))) as pool:
            got = dict(zip([t.name for t in todo], pool.map(identity_of, todo), strict=True))
        with _MACHINES_LOCK:
            cache.update(got)
    return group_machines((t.name, t.roles, cache[t.name]) for t in targets)


