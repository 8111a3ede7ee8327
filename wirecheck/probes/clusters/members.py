"""What every clustered datastore shares: a Member (what one member says about itself, with the host it
runs on), telling machines apart, the line of a tool's stderr that says why it failed, and `combine`,
one verdict from several measuring paths.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..k8s.judgement import Judgement

UP, DOWN, UNMEASURED = "up", "down", "unmeasured"
_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


def count_word(n: int) -> str:
    return _WORDS.get(n, str(n))


def decisive_line(stderr: str, patterns: Sequence[str]) -> str:
    """The line of a tool's stderr that says why it failed, with its tab-indented continuation lines (psql
    puts its hint on one); warnings before it (e.g. `could not change directory`) are
    skipped. Falls back to the last non-empty line."""
    lines = stderr.splitlines()
    for pattern in patterns:
        for i, line in enumerate(lines):
            if re.search(pattern, line):
                more = []
                for nxt in lines[i + 1:]:
                    if nxt[:1] == "\t" and nxt.strip():
                        more.append(nxt.strip())
                    else:
                        break
                return " ".join([line.strip().lstrip("* "), *more])
    rest = [ln.strip() for ln in lines if ln.strip()]
    return rest[-1] if rest else ""


def _host_lines(stdout: str) -> tuple[dict[str, str], list[str]]:
    """`@key value` lines (hostname, addresses) and the other lines of a member command's output."""
    tags, other = {}, []
    for line in stdout.splitlines():
        if line.startswith("@") and " " in line:
            key, value = line[1:].split(" ", 1)
            tags[key] = value.strip()
        elif line.startswith("@"):
            tags[line[1:]] = ""
        else:
            other.append(line)
    return tags, other


HOST_FACTS = ("printf '@hostname %s\\n' \"$(hostname)\"; printf '@addresses %s\\n' \"$(hostname -I 2>/dev/null)\"; "
              "printf '@machine-id %s\\n' \"$(cat /etc/machine-id 2>/dev/null)\"; ")


@dataclass
class Member:
    """One member as measured on its host."""

    name: str                               # inventory name
    addresses: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    inventory_addresses: set[str] = field(default_factory=set)
    hostname: str = ""
    machine_id: str = ""
    state: str = UNMEASURED                 # up | down | unmeasured
    reason: str = ""                        # why down / unmeasured: the tool's decisive line
    facts: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    rc: int | None = None
    stderr: str = ""

    def known_as(self, value: str | None) -> bool:
        if not value:
            return False
        return value in self.addresses or value in self.names

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "addresses": sorted(self.addresses)}
        if self.reason:
            out["reason"] = self.reason
        if self.rc is not None:
            out["rc"] = self.rc
        if self.stderr.strip():
            out["stderr"] = self.stderr          # whole: the decisive line alone may hide context
        if self.facts:
            out["facts"] = self.facts
        return out


def base_member(target: Any) -> Member:
    m = Member(name=target.name, addresses={str(target.address)}, names={target.name})
    for key in ("ip", "access_ip", "ansible_host"):
        if target.vars.get(key):
            m.addresses.add(str(target.vars[key]))
    m.inventory_addresses = set(m.addresses)
    return m


def distinct_machines(members: Sequence[Member]) -> tuple[list[Member], dict[str, str]]:
    """Members as machines: an inventory name whose host is the same machine as an earlier one (its
    inventory address among the other's own addresses, or the same machine-id and hostname) is that
    machine again, reported as an alias and not counted twice. Addresses that several members have
    (docker0's 172.17.0.1, a link-local) are not used to tell members apart."""
    from collections import Counter

    seen = Counter(a for m in members for a in m.addresses - m.inventory_addresses)
    for m in members:
        m.addresses = {a for a in m.addresses if a in m.inventory_addresses or seen[a] == 1}
    unique: list[Member] = []
    aliases: dict[str, str] = {}
    for m in members:
        twin = next((u for u in unique if (m.inventory_addresses & u.addresses) or (u.inventory_addresses & m.addresses)
                     or (m.machine_id and m.machine_id == u.machine_id and m.hostname == u.hostname)), None)
        if twin is None:
            unique.append(m)
        else:
            aliases[m.name] = twin.name
    return unique, aliases


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _aliases_text(aliases: dict[str, str]) -> str:
    return "".join(f"; {a} is the same machine as {b} (counted once)" for a, b in aliases.items())


def member_or_unreached(target: Any, measured: Any) -> Member:
    """A member whose host could not be asked (SSH failed, the command timed out) is not measured."""
    if isinstance(measured, Exception):
        m = base_member(target)
        m.reason = f"not reached: {measured}"
        return m
    return measured


def _absorb_host_tags(m: Member, tags: dict[str, str]) -> None:
    m.machine_id = tags.get("machine-id", "")
    if tags.get("hostname"):
        m.hostname = tags["hostname"]
        m.names.add(tags["hostname"])
        m.names.add(tags["hostname"].split(".", 1)[0])
    for a in tags.get("addresses", "").split():
        with contextlib.suppress(ValueError):
            m.addresses.add(str(ipaddress.ip_address(a.split("%", 1)[0])))


def _tool_missing(rc: int | None, stderr: str, tool: str) -> bool:
    return rc == 127 or bool(re.search(rf"{tool}: (command )?not found", stderr))


def combine(paths: Sequence[tuple[str, Judgement]]) -> Judgement:
    """One verdict from several measuring paths (etcdctl on the hosts, the Kubernetes API), each named:
    a failure measured on any path fails; else a path that could not measure makes it an error."""
    if len(paths) == 1:
        name, j = paths[0]
        return Judgement(ok=j.ok, observed=f"{name}: {j.observed}", expected=j.expected, method=f"{name}: {j.method}",
                         message=f"{name}: {j.message}" if j.message else "",
                         evidence={"paths": [name], name: j.evidence}, measurable=j.measurable)
    failed = [(n, j) for n, j in paths if j.measurable and not j.ok]
    unmeasured = [(n, j) for n, j in paths if not j.measurable]
    shown = failed or unmeasured
    return Judgement(ok=not failed and not unmeasured, observed="; ".join(f"{n}: {j.observed}" for n, j in paths),
                     expected=paths[0][1].expected, method="; ".join(f"{n}: {j.method}" for n, j in paths),
                     message="; ".join(f"{n}: {j.message}" for n, j in shown if j.message),
                     evidence={"paths": [n for n, _ in paths], **{n: j.evidence for n, j in paths}},
                     measurable=bool(failed) or not unmeasured)
