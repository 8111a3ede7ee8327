"""Clustered datastores judged as clusters, from what every member says about itself.

Each member is measured on its own host over SSH with the tool the site has (psql, etcdctl,
rabbitmqctl); the judges then look at the set: one primary and its standbys, an etcd quorum and its
leader, the running RabbitMQ nodes. Plain Python, no pytest: ``measure_*`` run one command on one
target, ``judge_*`` are pure (members in, ``k8s.Judgement`` out).

A member whose server does not run (its socket is missing, the connection is refused) is a measured
fact about that member: the judges name it and fail. A member that could not be asked (host
unreachable, tool missing, sudo refused) is not measured: the judges say so and end in `error`
unless another member already showed a failure.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .k8s import Judgement

UP, DOWN, UNMEASURED = "up", "down", "unmeasured"
_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


def count_word(n: int) -> str:
    return _WORDS.get(n, str(n))


def decisive_line(stderr: str, patterns: Sequence[str]) -> str:
    """The line of a tool's stderr that says why it failed, with its indented continuation lines (psql
    puts its hint on a tab-indented line); warnings before it (e.g. `could not change directory`) are
    skipped. Falls back to the last non-empty line."""
    lines = stderr.splitlines()
    for pattern in patterns:
        for i, line in enumerate(lines):
            if re.search(pattern, line):
                more = []
                for nxt in lines[i + 1:]:
                    if nxt[:1] in ("\t", " ") and nxt.strip():
                        more.append(nxt.strip())
                    else:
                        break
                return " ".join([line.strip(), *more])
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


HOST_FACTS = "printf '@hostname %s\\n' \"$(hostname)\"; printf '@addresses %s\\n' \"$(hostname -I 2>/dev/null)\"; "


@dataclass
class Member:
    """One member as measured on its host."""

    name: str                               # inventory name
    addresses: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
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
    return m


def _absorb_host_tags(m: Member, tags: dict[str, str]) -> None:
    if tags.get("hostname"):
        m.names.add(tags["hostname"])
        m.names.add(tags["hostname"].split(".", 1)[0])
    for a in tags.get("addresses", "").split():
        with contextlib.suppress(ValueError):
            m.addresses.add(str(ipaddress.ip_address(a.split("%", 1)[0])))


def _tool_missing(rc: int | None, stderr: str, tool: str) -> bool:
    return rc == 127 or bool(re.search(rf"{tool}: (command )?not found", stderr))


# ====================================================================== PostgreSQL

PG_SQL = (
    "select json_build_object("
    "'version', current_setting('server_version_num')::int, "
    "'in_recovery', pg_is_in_recovery(), "
    "'replay_paused', case when pg_is_in_recovery() then pg_is_wal_replay_paused() end, "
    "'receive_lsn', pg_last_wal_receive_lsn(), "
    "'replay_lsn', pg_last_wal_replay_lsn(), "
    "'current_lsn', case when not pg_is_in_recovery() then pg_current_wal_lsn() end, "
    "'receiver', (select json_agg(json_build_object('status', status, 'sender_host', sender_host, "
    "'sender_port', sender_port, 'slot_name', slot_name)) from pg_stat_wal_receiver), "
    "'senders', (select json_agg(json_build_object('application_name', application_name, "
    "'client_addr', host(client_addr), 'client_hostname', client_hostname, 'state', state, "
    "'sync_state', sync_state, 'replay_lsn', replay_lsn, "
    "'lag_bytes', case when not pg_is_in_recovery() then pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) end, "
    "'replay_lag_s', extract(epoch from replay_lag))) from pg_stat_replication))"
)
#: psql's stderr lines that say why it failed, most decisive first
PG_DECISIVE = (r"psql: error:", r"FATAL:", r"^sudo:", r"psql: ", r"ERROR:")
#: the server does not run (or does not accept connections yet): a measured state of that member
PG_DOWN = re.compile(r"No such file or directory|Connection refused|the database system is (starting up|shutting down|"
                     r"in recovery mode|not yet accepting connections)|server closed the connection unexpectedly")


def pg_command(port: int) -> str:
    psql = f"psql -XAtq -v ON_ERROR_STOP=1 -p {int(port)} -d postgres -c {shlex.quote(PG_SQL)}"
    return HOST_FACTS + "sudo -n -u postgres " + psql


def measure_pg_member(target: Any, port: int, timeout: float) -> Member:
    """psql as the postgres user on the member itself (its local socket), one round trip."""
    m = base_member(target)
    m.command = pg_command(port)
    res = target.run(m.command, timeout=timeout)
    tags, rest = _host_lines(res.stdout)
    _absorb_host_tags(m, tags)
    m.rc, m.stderr = res.rc, res.stderr
    if res.rc == 0:
        text = "\n".join(rest).strip()
        try:
            m.facts = json.loads(text)
            m.state = UP
        except ValueError:
            m.reason = f"psql printed something that is not the expected JSON: {text[:200]!r}"
        return m
    line = decisive_line(res.stderr, PG_DECISIVE) or f"psql exited {res.rc} without a message"
    m.reason = line
    if _tool_missing(res.rc, res.stderr, "psql"):
        m.reason = f"psql is not available on {target.name}: {line}"
    elif "connection to server" in line and PG_DOWN.search(res.stderr):
        m.state = DOWN
    return m


def _lag_bytes(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def judge_pg_cluster(members: Sequence[Member], standbys: int = 2, max_lag_bytes: float = 16 * 1024 * 1024,
                     method: str = "") -> Judgement:
    """Exactly one primary; every other member in recovery, streaming from that primary (its WAL receiver
    and the primary's WAL sender both say so), replay not paused, replay within max_lag_bytes of the
    primary; at least `standbys` such standbys among the inventory's members."""
    expected = (f"exactly one primary and >= {standbys} standby(s) in recovery streaming from it, replay running, "
                f"at most {max_lag_bytes:,.0f} bytes behind")
    problems: list[str] = []
    up = [m for m in members if m.state == UP]
    down = [m for m in members if m.state == DOWN]
    unmeasured = [m for m in members if m.state == UNMEASURED]
    primaries = [m for m in up if m.facts.get("in_recovery") is False]
    in_recovery = [m for m in up if m.facts.get("in_recovery") is True]
    for m in down:
        problems.append(f"{m.name}: PostgreSQL is not running ({m.reason})")
    roles = {m.name: ("primary" if m in primaries else "standby (in recovery)") for m in up}
    roles.update({m.name: "not running" for m in down})
    roles.update({m.name: "not measured" for m in unmeasured})
    streaming: list[str] = []
    others: list[str] = []
    primary = None
    if len(primaries) > 1:
        problems.insert(0, f"{count_word(len(primaries))} primaries ({', '.join(m.name for m in primaries)}): "
                           "more than one member accepts writes (split brain)")
    elif not primaries and up:
        problems.insert(0, f"no primary: {', '.join(m.name for m in in_recovery)} "
                           f"{'is' if len(in_recovery) == 1 else 'are all'} in recovery, nothing accepts writes")
    if len(primaries) == 1:
        primary = primaries[0]
        senders = primary.facts.get("senders") or []
        claimed: set[int] = set()
        for s in in_recovery:
            why = _pg_standby_problem(s, primary, senders, claimed, max_lag_bytes)
            if why:
                problems.append(why)
            else:
                streaming.append(s.name)
        for i, snd in enumerate(senders):
            if i not in claimed:
                others.append(f"{snd.get('application_name') or '?'} from {snd.get('client_addr') or 'local socket'} "
                              f"({snd.get('state')})")
        if len(streaming) < standbys:
            problems.append(f"{len(streaming)} inventory standby(s) streaming from the primary {primary.name}, "
                            f"need {standbys}")
    elif len(primaries) > 1:
        for s in in_recovery:
            rcv = (s.facts.get("receiver") or [{}])[0]
            src = next((p.name for p in primaries if p.known_as(rcv.get("sender_host"))), rcv.get("sender_host"))
            roles[s.name] += f", streaming from {src}" if rcv.get("status") == "streaming" else ", not streaming"
    observed = "; ".join(f"{n}: {r}" for n, r in roles.items())
    if primary is not None:
        observed += f"; {len(streaming)} standby(s) streaming from {primary.name}"
        if others:
            observed += f"; other WAL clients of the primary (not counted): {', '.join(others)}"
    if unmeasured:
        note = "; ".join(f"{m.name}: {m.reason}" for m in unmeasured)
        if problems:
            problems.append(f"not measured: {note}")
    evidence = {"members": {m.name: m.evidence() for m in members}, "streaming_standbys": streaming,
                "other_wal_clients": others, "max_lag_bytes": max_lag_bytes}
    if unmeasured and len(problems) == 0:
        return Judgement(ok=False, observed=observed, expected=expected, method=method, measurable=False,
                         message="could not measure " + "; ".join(f"{m.name}: {m.reason}" for m in unmeasured),
                         evidence=evidence)
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems), evidence=evidence)


def _pg_standby_problem(s: Member, primary: Member, senders: list[dict[str, Any]], claimed: set[int],
                        max_lag_bytes: float) -> str:
    problems = []
    receivers = s.facts.get("receiver") or []
    rcv = receivers[0] if receivers else None
    if rcv is None:
        problems.append("no WAL receiver is running (not connected to any primary)")
    elif rcv.get("status") != "streaming":
        problems.append(f"its WAL receiver is {rcv.get('status')!r}, not streaming")
    elif not primary.known_as(rcv.get("sender_host")):
        problems.append(f"it streams from {rcv.get('sender_host')}, not from the primary {primary.name} "
                        f"({', '.join(sorted(primary.addresses))})")
    match = None
    for i, snd in enumerate(senders):
        if i in claimed:
            continue
        if s.known_as(snd.get("client_addr")) or s.known_as(snd.get("application_name")) \
                or s.known_as(snd.get("client_hostname")):
            match = i
            break
    if match is None:
        problems.append(f"the primary {primary.name} has no WAL sender to it")
    else:
        claimed.add(match)
        snd = senders[match]
        if snd.get("state") != "streaming":
            problems.append(f"the primary's WAL sender to it is {snd.get('state')!r}, not streaming")
        lag = _lag_bytes(snd.get("lag_bytes"))
        s.facts["lag_bytes_on_primary"] = lag
        if lag is not None and lag > max_lag_bytes:
            problems.append(f"replay is {lag:,.0f} bytes behind the primary, more than {max_lag_bytes:,.0f}")
    if s.facts.get("replay_paused"):
        problems.insert(0, "WAL replay is paused (resume it: select pg_wal_replay_resume())")
    return f"{s.name}: in recovery but " + "; ".join(problems) if problems else ""
