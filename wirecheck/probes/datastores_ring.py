"""Cassandra judged as a ring, from what `nodetool` says on each member (PROD-ACC-CASSANDRA).

Each [cassandra] host runs `nodetool status` and `nodetool describecluster` itself (JMX on its own
127.0.0.1:7199, as the Cassandra package sets it up). The ring that member sees must hold every
inventory member, each Up/Normal (`UN`), with one schema version and nothing unreachable: then
all members are in one ring (a node of another cluster could not gossip with this one). A member
whose nodetool cannot reach its own Cassandra ("Connection refused" on the JMX port) has no
Cassandra running: that is a measured failure of that member, not a measurement error.

The functions here are pure: the check in suites/acceptance/test_datastores.py runs the commands.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

STATUS_COMMAND = "nodetool status"
DESCRIBE_COMMAND = "nodetool describecluster"

_STATE_WORDS = {"U": "Up", "D": "Down", "N": "Normal", "L": "Leaving", "J": "Joining", "M": "Moving"}
_ROW = re.compile(r"^(?P<state>[UD][NLJM])\s+(?P<addr>\S+)\s+(?P<rest>.*)$")
_HOST_ID = re.compile(r"\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b")
_DC = re.compile(r"^Datacenter:\s*(\S+)")
#: nodetool's words when nothing listens on the JMX port: Cassandra is not running on that host
_NOT_RUNNING = re.compile(r"Failed to connect to '[^']*'.*Connection refused", re.I)


@dataclass(frozen=True)
class RingNode:
    state: str          # UN, DN, UJ ...
    address: str        # as nodetool prints it (IPv4/IPv6, without the storage port)
    host_id: str | None
    datacenter: str | None

    @property
    def state_words(self) -> str:
        return f"{_STATE_WORDS.get(self.state[0], '?')}/{_STATE_WORDS.get(self.state[1], '?')}"


@dataclass
class Cluster:
    name: str | None = None
    schema_versions: dict[str, list[str]] = field(default_factory=dict)
    unreachable: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    """ok, or the problems (decisive sentence first); `evidence` is what the report records."""

    ok: bool
    summary: str
    problems: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


def _bare(addr: str) -> str:
    """`198.18.8.3`, `/198.18.8.3:7000` or `[::1]:7000` -> the address alone."""
    addr = addr.strip().lstrip("/")
    if addr.startswith("["):
        return addr[1:].split("]", 1)[0]
    if addr.count(":") == 1:
        return addr.split(":", 1)[0]
    return addr


def parse_status(text: str) -> list[RingNode]:
    """The node rows of `nodetool status` (every datacenter)."""
    nodes: list[RingNode] = []
    dc = None
    for line in text.splitlines():
        if m := _DC.match(line.strip()):
            dc = m.group(1)
            continue
        if m := _ROW.match(line.strip()):
            hid = _HOST_ID.search(m["rest"])
            nodes.append(RingNode(m["state"], _bare(m["addr"]), hid.group(1) if hid else None, dc))
    return nodes


def parse_describecluster(text: str) -> Cluster:
    """Name, schema versions (version -> addresses) and UNREACHABLE addresses of `nodetool describecluster`."""
    out = Cluster()
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Name:") and out.name is None:
            out.name = line.split(":", 1)[1].strip()
        elif line.startswith("Schema versions:"):
            section = "schema"
        elif section == "schema" and ":" in line and line.endswith("]"):
            key, _, rest = line.partition(": [")
            addrs = [_bare(a) for a in rest.rstrip("]").split(",") if a.strip()]
            if key.strip() == "UNREACHABLE":
                out.unreachable.extend(addrs)
            else:
                out.schema_versions[key.strip()] = addrs
        elif line and not line.startswith(("UNREACHABLE", "Schema")) and line.endswith(":") and section:
            section = None
    return out


def not_running_reason(rc: int, stdout: str, stderr: str) -> str | None:
    """nodetool's own line when it found no Cassandra to talk to on this host, else None."""
    text = f"{stderr}\n{stdout}"
    if rc != 0 and _NOT_RUNNING.search(text):
        for line in text.splitlines():
            if _NOT_RUNNING.search(line):
                return line.strip()
        return text.strip()
    return None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def judge_ring(member: str, status_text: str, describe_text: str | None,
               members: Mapping[str, Sequence[str]], min_nodes: int) -> Verdict:
    """Judge the ring that `member` sees.

    members: inventory name -> the addresses that machine may appear under in the ring (the `ip`
    inventory variable, ansible_host, what the name resolves to). min_nodes: the catalog's count.
    """
    nodes = parse_status(status_text)
    cluster = parse_describecluster(describe_text) if describe_text else Cluster()
    evidence: dict[str, Any] = {
        "ring": [{"address": n.address, "state": n.state, "host_id": n.host_id, "datacenter": n.datacenter}
                 for n in nodes],
        "cluster_name": cluster.name,
        "schema_versions": cluster.schema_versions,
        "unreachable": cluster.unreachable,
    }
    if not nodes:
        return Verdict(False, "no node rows in `nodetool status`", ["cannot parse nodetool status"], evidence)
    by_addr = {n.address: n for n in nodes}
    name_of = {a: name for name, addrs in members.items() for a in addrs}

    def named(addr: str) -> str:
        return f"{name_of[addr]} ({addr})" if addr in name_of else addr

    problems: list[str] = []
    down = [n for n in nodes if n.state != "UN"]
    for n in down:
        problems.append(f"{named(n.address)} is {n.state} ({n.state_words})")
    missing = []
    for name, addrs in members.items():
        if not any(a in by_addr for a in addrs):
            missing.append(name)
            shown = ", ".join(a for a in addrs if _is_ip(a)) or "no known address"
            problems.append(f"{name} ({shown}) is not in the ring")
    if len(cluster.schema_versions) > 1:
        problems.append(f"{len(cluster.schema_versions)} schema versions (the nodes disagree on the schema)")
    for addr in cluster.unreachable:
        if not any(n.address == addr and n.state != "UN" for n in nodes):
            problems.append(f"{named(addr)} is unreachable for schema agreement")
    up = sum(1 for n in nodes if n.state == "UN")
    if up < min_nodes:
        problems.append(f"{up} node(s) Up/Normal, the requirement needs at least {min_nodes}")
    evidence.update(missing_members=missing, down=[n.address for n in down], up=up)
    summary = (f"{up} of {len(nodes)} node(s) UN in the ring seen by {member}"
               + (f" (cluster {cluster.name!r})" if cluster.name else ""))
    return Verdict(not problems, summary, problems, evidence)
