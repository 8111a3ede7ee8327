"""PostgreSQL as a cluster: one primary and its streaming standbys, measured with psql on each member."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from typing import Any

from ..k8s.judgement import Judgement
from .members import (
    DOWN,
    HOST_FACTS,
    UNMEASURED,
    UP,
    Member,
    _absorb_host_tags,
    _aliases_text,
    _host_lines,
    _tool_missing,
    base_member,
    count_word,
    decisive_line,
    distinct_machines,
)

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
    # a login user whose sudo asks for the inventory's become password: root (which sudo lets become
    # postgres without one) runs the same command, so the password reaches sudo once, through the transport
    as_root = bool(getattr(getattr(target, "transport", None), "sudo_with_password", False))
    res = target.run(m.command, timeout=timeout, sudo=as_root)
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


def judge_pg_cluster(members: Sequence[Member], standbys: int = 2, max_lag_bytes: float = 1024 * 1024,
                     method: str = "") -> Judgement:
    """Exactly one primary; every other member in recovery, streaming from that primary (its WAL receiver
    and the primary's WAL sender both say so), replay not paused, replay within max_lag_bytes of the
    primary (1 MiB: wire-server-deploy's postgresql-verify-HA.yml calls a replica beyond it LAGGING);
    at least `standbys` such standbys among the inventory's members."""
    expected = (f"exactly one primary and >= {standbys} standby(s) in recovery streaming from it, replay running, "
                f"at most {max_lag_bytes:,.0f} bytes behind")
    problems: list[str] = []
    all_members = list(members)
    members, aliases = distinct_machines(all_members)
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
        for m in unmeasured:     # not asked on its host: what the primary's WAL senders say about it
            i = _match_sender(m, senders, claimed)
            if i is not None and senders[i].get("state") == "streaming":
                claimed.add(i)
                streaming.append(m.name)
                roles[m.name] += f" on its host; the primary streams to it ({senders[i].get('client_addr')})"
            elif i is None:
                problems.append(f"{m.name}: the primary {primary.name} has no WAL sender to it "
                                "(and its host could not be asked)")
            else:
                claimed.add(i)
                problems.append(f"{m.name}: the primary's WAL sender to it is {senders[i].get('state')!r}, not "
                                "streaming (and its host could not be asked)")
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
    observed = "; ".join(f"{n}: {r}" for n, r in roles.items()) + _aliases_text(aliases)
    if primary is not None:
        observed += f"; {len(streaming)} standby(s) streaming from {primary.name}"
        if others:
            observed += f"; other WAL clients of the primary (not counted): {', '.join(others)}"
    if unmeasured:
        note = "; ".join(f"{m.name}: {m.reason}" for m in unmeasured)
        if problems:
            problems.append(f"not measured: {note}")
    evidence = {"members": {m.name: m.evidence() for m in all_members}, "same_machine": aliases,
                "streaming_standbys": streaming,
                "other_wal_clients": others, "max_lag_bytes": max_lag_bytes}
    if unmeasured and len(problems) == 0:
        return Judgement(ok=False, observed=observed, expected=expected, method=method, measurable=False,
                         message="could not measure " + "; ".join(f"{m.name}: {m.reason}" for m in unmeasured),
                         evidence=evidence)
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems), evidence=evidence)


def _match_sender(s: Member, senders: list[dict[str, Any]], claimed: set[int]) -> int | None:
    """The primary's WAL sender serving member s: by client address, application_name or host name."""
    for i, snd in enumerate(senders):
        if i not in claimed and (s.known_as(snd.get("client_addr")) or s.known_as(snd.get("application_name"))
                                 or s.known_as(snd.get("client_hostname"))):
            return i
    return None


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
    match = _match_sender(s, senders, claimed)
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
