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
    # a login user whose sudo asks for the inventory's become password: root (which sudo lets become
    # postgres without one) runs the same command, so the password reaches sudo once, through the transport
    as_root = bool(getattr(target.transport, "sudo_with_password", False))
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


# ====================================================================== etcd (kubespray: a host service on [etcd])

#: kubespray's layout (roles/etcd, etcd_cert_dir /etc/ssl/etcd/ssl): etcdctl on an etcd host uses that
#: host's admin certificate; the client endpoint is https://<etcd_access_address>:2379
ETCD_CERT_DIR = "/etc/ssl/etcd/ssl"
ETCD_DECISIVE = (r"^Error:", r"connection refused", r"x509:|tls:|certificate", r"no such file or directory",
                 r"^sudo:", r"Failed to get")
#: etcdctl on the member's own host got no answer from that member: a measured state
ETCD_DOWN = re.compile(r"connection refused|context deadline exceeded|all SubConns are in TransientFailure|"
                       r"connection reset|EOF")
ETCD_CANNOT = re.compile(r"x509:|tls:|certificate|no such file or directory|permission denied|^sudo:", re.I | re.M)


@dataclass(frozen=True)
class EtcdAccess:
    cert_dir: str = ETCD_CERT_DIR
    cert: str = "admin-{host}.pem"
    key: str = "admin-{host}-key.pem"
    cacert: str = "ca.pem"
    client_port: int = 2379
    dial_timeout_s: float = 2.0
    command_timeout_s: float = 3.0


def etcd_endpoint_host(target: Any) -> str:
    """kubespray's etcd_access_address: access_ip, else ip, else the SSH address."""
    for key in ("etcd_access_address", "access_ip", "ip"):
        if target.vars.get(key):
            return str(target.vars[key])
    return str(target.address)


def etcdctl_command(target: Any, access: EtcdAccess, args: str) -> str:
    cert_dir = str(target.vars.get("etcd_cert_dir") or access.cert_dir).rstrip("/")
    host = etcd_endpoint_host(target)
    url = f"https://{'[' + host + ']' if ':' in host else host}:{int(access.client_port)}"

    def f(name: str) -> str:
        return shlex.quote(f"{cert_dir}/{name.format(host=target.name)}")
    return (f"ETCDCTL_API=3 etcdctl --cacert={f(access.cacert)} --cert={f(access.cert)} --key={f(access.key)} "
            f"--endpoints={shlex.quote(url)} --dial-timeout={access.dial_timeout_s:g}s "
            f"--command-timeout={access.command_timeout_s:g}s {args}")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def measure_etcd_member(target: Any, access: EtcdAccess, timeout: float) -> Member:
    """On one [etcd] host: `member list`, `endpoint health --cluster`, `endpoint status --cluster` through
    its own endpoint (as root: kubespray's certificates are root's). When its own member does not answer
    the list, the host's member is down and the cluster-wide views are not asked from here."""
    m = base_member(target)
    m.addresses.add(etcd_endpoint_host(target))
    m.inventory_addresses.add(etcd_endpoint_host(target))
    m.command = etcdctl_command(target, access, "member list -w json")
    res = target.run(HOST_FACTS + m.command, timeout=timeout, sudo=True)
    tags, rest = _host_lines(res.stdout)
    _absorb_host_tags(m, tags)
    m.rc, m.stderr = res.rc, res.stderr
    if res.rc != 0:
        line = decisive_line(res.stderr, ETCD_DECISIVE) or f"etcdctl exited {res.rc} without a message"
        m.reason = line
        if _tool_missing(res.rc, res.stderr, "etcdctl"):
            m.reason = f"etcdctl is not available on {target.name}: {line}"
        elif ETCD_DOWN.search(res.stderr) and not ETCD_CANNOT.search(res.stderr):
            m.state = DOWN
            m.reason = f"its member does not answer on {etcd_endpoint_host(target)}:{access.client_port} ({line})"
        return m
    listed = _json_or_none("\n".join(rest))
    if not isinstance(listed, dict) or "members" not in listed:
        m.reason = f"etcdctl member list printed something that is not the expected JSON: {res.stdout[:200]!r}"
        return m
    m.state = UP
    m.facts["members"] = listed.get("members") or []
    m.facts["member_id"] = (listed.get("header") or {}).get("member_id")
    for sub, key in (("endpoint health --cluster -w json", "health"), ("endpoint status --cluster -w json", "status")):
        r = target.run(etcdctl_command(target, access, sub), timeout=timeout, sudo=True)
        doc = _json_or_none(r.stdout)
        m.facts[key] = doc if isinstance(doc, list) else []
        if r.rc != 0 or not isinstance(doc, list):
            m.facts[f"{key}_stderr"] = r.stderr
            m.facts[f"{key}_rc"] = r.rc
    return m


def _url_host(url: str) -> str:
    rest = re.sub(r"^\w+://", "", str(url)).split("/", 1)[0]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest


def judge_etcd_cluster(hosts: Sequence[Member], min_members: int = 3, method: str = "") -> Judgement:
    """Members (from `member list`), each member's health as every answering [etcd] host sees it, the
    leader every member reports, quorum; the member that is down named with its host."""
    expected = (f">= {min_members} members, an odd number, every member healthy, one leader agreed by all, "
                "every [etcd] host a member")
    all_hosts = list(hosts)
    hosts, aliases = distinct_machines(all_hosts)
    up = [h for h in hosts if h.state == UP]
    down_hosts = [h for h in hosts if h.state == DOWN]
    unmeasured = [h for h in hosts if h.state == UNMEASURED]
    members: dict[int, dict[str, Any]] = {}
    for h in up:
        for mem in h.facts.get("members") or []:
            members.setdefault(int(mem.get("ID") or 0), mem)

    def host_of(mem: dict[str, Any]) -> Member | None:
        urls = list(mem.get("clientURLs") or []) + list(mem.get("peerURLs") or [])
        return next((h for h in hosts if any(h.known_as(_url_host(u)) for u in urls)), None)

    def label(mem: dict[str, Any]) -> str:
        h = host_of(mem)
        url = ", ".join(mem.get("clientURLs") or []) or "no client URL"
        name = mem.get("name") or f"(unnamed, not started) {mem.get('ID')}"
        return f"{name} ({url}{', host ' + h.name if h else ''})"

    health: dict[str, list[tuple[str, bool, str]]] = {}       # client URL -> [(seen from, healthy, error)]
    status: dict[str, dict[str, Any]] = {}
    for h in up:
        for e in h.facts.get("health") or []:
            health.setdefault(str(e.get("endpoint")), []).append((h.name, bool(e.get("health")), str(e.get("error") or "")))
        for e in h.facts.get("status") or []:
            status.setdefault(str(e.get("Endpoint")), e.get("Status") or {})
    problems: list[str] = []
    healthy: list[str] = []
    unknown: list[str] = []             # members no answering host could judge
    down_labels: list[str] = []
    for mid, mem in sorted(members.items(), key=lambda kv: str(kv[1].get("name"))):
        urls = mem.get("clientURLs") or []
        h = host_of(mem)
        views = [v for u in urls for v in health.get(u, [])]
        own_down = h is not None and h.state == DOWN
        if views and all(ok for _, ok, _ in views) and not own_down:
            healthy.append(mem.get("name") or str(mid))
            continue
        if not views and not own_down:
            unknown.append(label(mem))
            continue
        reasons = []
        if own_down and h is not None:
            reasons.append(f"on {h.name}, {h.reason}")
        failing = [(src, err) for src, ok, err in views if not ok]
        if failing:
            reasons.append("health check from " + ", ".join(sorted({s for s, _ in failing})) + ": "
                           + "; ".join(sorted({e or 'unhealthy' for _, e in failing})))
        errs = sorted({e for u in urls for e in (status.get(u) or {}).get("errors") or []})
        if errs:
            reasons.append(f"it answers but reports {', '.join(errs)}")
        down_labels.append(label(mem))
        problems.append(f"etcd member {label(mem)} is not healthy: {'; '.join(reasons)}")
    # hosts whose member is down and that no answering member listed (all members down, or no list read)
    for h in down_hosts:
        if not any(host_of(mem) is h for mem in members.values()):
            down_labels.append(h.name)
            problems.append(f"the etcd member on {h.name} is not healthy: {h.reason}")
    # the member count: from `member list`, else (no member answered it) the [etcd] hosts, all seen down
    n = len(members) if members else (len(hosts) if len(down_hosts) == len(hosts) else 0)
    alive = len(healthy)
    need = n // 2 + 1
    if n and alive + len(unknown) < need:
        problems.insert(0, f"quorum lost: {alive} of {n} etcd member(s) healthy, a quorum needs {need}; "
                           "the cluster accepts no writes")
    elif down_labels and n:
        problems.append(f"quorum still held by {alive} of {n}, but one more failure stops the cluster"
                        if alive == need else f"quorum held by {alive} of {n}")
    leaders = {int(s.get("leader") or 0) for s in status.values()}
    errors = sorted({e for s in status.values() for e in (s.get("errors") or [])})
    named = {mid: mem.get("name") for mid, mem in members.items()}
    if status and (0 in leaders or not leaders) and alive >= need:
        problems.append("a member reports no leader" + (f" ({', '.join(errors)})" if errors else ""))
    elif len(leaders - {0}) > 1:
        problems.append("members disagree on the leader: " + ", ".join(str(named.get(x, x)) for x in sorted(leaders - {0})))
    leader = next(iter(leaders - {0}), None) if len(leaders - {0}) == 1 else None
    if members:
        if n < min_members:
            problems.append(f"{n} etcd member(s), need at least {min_members}")
        if n % 2 == 0:
            problems.append(f"{n} is an even number of etcd members; it must be odd")
    for h in hosts:
        if h.state == UP and members and not any(host_of(mem) is h for mem in members.values()):
            problems.append(f"{h.name} is in [etcd] but no etcd member advertises its address "
                            f"({', '.join(sorted(h.addresses))})")
    strangers = [label(mem) for mem in members.values() if host_of(mem) is None]
    observed = (f"{n} member(s), {alive} healthy"
                + (f"; leader {named.get(leader, leader)}" if leader else "; no leader" if status else "")
                + (f"; not healthy: {', '.join(down_labels)}" if down_labels else "")
                + (f"; members on hosts outside [etcd]: {', '.join(strangers)}" if strangers else "")
                + _aliases_text(aliases))
    not_measured = [f"{h.name}: {h.reason}" for h in unmeasured] + [f"health of {u}: no answering [etcd] host "
                                                                     "could check it" for u in unknown]
    if not_measured and problems:
        problems.append("not measured: " + "; ".join(not_measured))
    evidence = {"hosts": {h.name: h.evidence() for h in all_hosts}, "same_machine": aliases,
                "members": {str(mem.get("name") or mid): {"id": f"{mid:x}", "client_urls": mem.get("clientURLs"),
                                                          "host": (host_of(mem).name if host_of(mem) else None)}
                            for mid, mem in members.items()},
                "leader": named.get(leader, leader) if leader else None, "healthy": healthy}
    if not problems and (not_measured or not up):
        why = "; ".join(not_measured) or "no [etcd] host answered"
        return Judgement(ok=False, observed=observed, expected=expected, method=method, measurable=False,
                         message=f"could not measure {why}", evidence=evidence)
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems), evidence=evidence)


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


# ====================================================================== RabbitMQ ([rmq-cluster] hosts)

RMQ_STATUS = "rabbitmqctl cluster_status --formatter json"
RMQ_GUEST = "rabbitmqctl authenticate_user guest guest"
RMQ_DECISIVE = (r"epmd reports:", r"unable to connect to epmd", r"Authentication failed", r"nodedown",
                r"^Error:", r"^sudo:")
#: the node on this host does not run (epmd knows no such node, or epmd itself is not there)
RMQ_DOWN = re.compile(r"not running at all|unable to connect to epmd \(port \d+\) on \S+: econnrefused|nodedown")
RMQ_CANNOT = re.compile(r"Authentication failed|nxdomain")


def measure_rabbitmq_member(target: Any, timeout: float) -> Member:
    """`rabbitmqctl cluster_status` (as root: Debian's wrapper runs it as the rabbitmq user, with the
    node's Erlang cookie) and whether the default guest/guest login is accepted."""
    m = base_member(target)
    m.command = RMQ_STATUS
    res = target.run(HOST_FACTS + RMQ_STATUS, timeout=timeout, sudo=True)
    tags, rest = _host_lines(res.stdout)
    _absorb_host_tags(m, tags)
    m.rc, m.stderr = res.rc, res.stderr
    if res.rc != 0:
        line = decisive_line(res.stderr, RMQ_DECISIVE) or f"rabbitmqctl exited {res.rc} without a message"
        m.reason = line
        if _tool_missing(res.rc, res.stderr, "rabbitmqctl"):
            m.reason = f"rabbitmqctl is not available on {target.name}: {line}"
        elif RMQ_DOWN.search(res.stderr) and not RMQ_CANNOT.search(res.stderr):
            m.state = DOWN
        return m
    doc = _json_or_none("\n".join(rest))
    if not isinstance(doc, dict) or "running_nodes" not in doc:
        m.reason = f"rabbitmqctl cluster_status printed something that is not the expected JSON: {res.stdout[:200]!r}"
        return m
    m.state = UP
    m.facts = {k: doc.get(k) for k in ("cluster_name", "running_nodes", "disk_nodes", "ram_nodes", "partitions",
                                       "alarms", "versions")}
    g = target.run(RMQ_GUEST, timeout=timeout, sudo=True)
    if g.rc == 0 and "Success" in g.stdout:
        m.facts["guest_login"] = "accepted"
    elif re.search(r"failed to authenticate|user_not_found|invalid credentials|not_allowed|refused",
                   g.stdout + g.stderr, re.I):
        m.facts["guest_login"] = "refused"
    else:
        m.facts["guest_login"] = f"not measured: {decisive_line(g.stderr, RMQ_DECISIVE) or g.rc}"
    return m


def _node_host(node: str) -> str:
    return str(node).split("@", 1)[-1]


def judge_rabbitmq_cluster(hosts: Sequence[Member], min_nodes: int = 3, method: str = "") -> Judgement:
    """One cluster across the [rmq-cluster] hosts: >= min_nodes running nodes, every member node running,
    no partition, no resource alarm, the default guest/guest login refused."""
    expected = (f">= {min_nodes} running nodes in one cluster, every node running, no partition or alarm, "
                "guest/guest refused")
    all_hosts = list(hosts)
    hosts, aliases = distinct_machines(all_hosts)
    up = [h for h in hosts if h.state == UP]
    down = [h for h in hosts if h.state == DOWN]
    unmeasured = [h for h in hosts if h.state == UNMEASURED]
    problems: list[str] = []
    for h in down:
        problems.append(f"{h.name}: RabbitMQ is not running ({h.reason})")
    views = {h.name: frozenset((h.facts.get("disk_nodes") or []) + (h.facts.get("ram_nodes") or [])) for h in up}
    if len(set(views.values())) > 1:
        problems.insert(0, "the [rmq-cluster] hosts do not form one cluster: " + "; ".join(
            f"{n} sees {', '.join(sorted(v))}" for n, v in views.items()))
    nodes = sorted(set().union(*views.values())) if views else []
    running = set().union(*[set(h.facts.get("running_nodes") or []) for h in up]) if up else set()
    down_names = {h.name for h in down} | {n for h in down for n in h.names}
    running -= {n for n in running if _node_host(n) in down_names}
    for node in nodes:
        if node not in running and _node_host(node) not in down_names:
            problems.append(f"cluster member {node} is not running (a disc/ram node of the cluster, not among the "
                            "running nodes)")
    for h in up:
        owner = [n for n in nodes if h.known_as(_node_host(n))]
        if nodes and not owner:
            problems.append(f"{h.name} is in [rmq-cluster] but none of the cluster's nodes runs on it")
    partitions = {n: p for h in up for n, p in (h.facts.get("partitions") or {}).items() if p}
    if partitions:
        problems.append("network partition: " + "; ".join(f"{n} cannot see {', '.join(p)}" for n, p in partitions.items()))
    alarms = sorted({json.dumps(a, sort_keys=True) if not isinstance(a, str) else a
                     for h in up for a in (h.facts.get("alarms") or [])})
    if alarms:
        problems.append(f"resource alarm(s) block publishers: {', '.join(alarms)}")
    if up and len(running) < min_nodes:
        problems.append(f"{len(running)} running node(s), need >= {min_nodes}")
    guest = {h.name: h.facts.get("guest_login") for h in up}
    if any(v == "accepted" for v in guest.values()):
        problems.append("the default guest/guest login is accepted (rabbitmqctl authenticate_user guest guest): "
                        "delete the guest user or give it a strong password")
    observed = (f"{len(nodes)} node(s) ({', '.join(nodes) or 'none read'}), running: {', '.join(sorted(running)) or 'none'}"
                + (f"; not running on: {', '.join(h.name for h in down)}" if down else "")
                + ("; guest/guest " + ("accepted" if "accepted" in guest.values() else
                                       "refused" if guest and all(v == "refused" for v in guest.values())
                                       else "not measured") if up else "")
                + _aliases_text(aliases))
    unknown_guest = [f"{n}: {v}" for n, v in guest.items() if v not in ("accepted", "refused")]
    evidence = {"hosts": {h.name: h.evidence() for h in all_hosts}, "same_machine": aliases, "nodes": nodes,
                "running": sorted(running)}
    if unmeasured and problems:
        problems.append("not measured: " + "; ".join(f"{h.name}: {h.reason}" for h in unmeasured))
    if not problems and (unmeasured or not up or (unknown_guest and len(unknown_guest) == len(guest))):
        why = "; ".join([f"{h.name}: {h.reason}" for h in unmeasured] + [f"guest login {g}" for g in unknown_guest])
        return Judgement(ok=False, observed=observed, expected=expected, method=method, measurable=False,
                         message=f"could not measure {why or 'any [rmq-cluster] host'}", evidence=evidence)
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems), evidence=evidence)
