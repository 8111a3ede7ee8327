"""DNS probe: bounded lookups with dnspython that say what answered, how, and why not.

`resolve()` asks the given resolvers (or the system's, from /etc/resolv.conf) itself, one query at a
time, so every lookup is bounded by `timeout * tries * len(resolvers)` and the result tells apart

* ``ok``        the name has records of the type (after following CNAMEs, which are kept in order),
* ``nxdomain``  the name (or the end of its CNAME chain) does not exist,
* ``nodata``    the name exists but has no record of that type,
* ``timeout``   no resolver answered in time,
* ``servfail`` / ``refused``  resolvers answered but could not or would not resolve,
* ``unreachable`` nothing listens on the resolver's port (ICMP port unreachable: "connection refused"),
  or no route to it,
* ``error``     anything else (bad name, socket error).

A dead resolver (one that never answered, or whose port is closed) is found once per run and
resolver (`ResolverHealth`, shared by the processes of a pytest-xdist run through the run directory):
the first lookup that meets it waits out its time limit, the other lookups of the run are not sent to
it and say why at once.  So a run against a dead resolver costs one lookup's time limit
(timeout x tries), not one per check.

No pytest in here; `wirecheck.probes.spf` builds on `DnsLookup`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver

DEFAULT_PORT = 53
DEFAULT_TIMEOUT = 2.0
DEFAULT_TRIES = 2
MAX_CNAME_CHAIN = 12

Nameserver = tuple[str, int]


class NameserverError(ValueError):
    """A resolver given by the user cannot be parsed."""


def parse_nameserver(text: str) -> Nameserver:
    """'192.0.2.1', '192.0.2.1:5353', '2001:db8::1' or '[2001:db8::1]:5353' -> (address, port)."""
    value = text.strip()
    host, port = value, DEFAULT_PORT
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise NameserverError(f"bad nameserver {text!r}: missing ']'")
        host, rest = value[1:close], value[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise NameserverError(f"bad nameserver {text!r}: expected ':port' after ']'")
            port = _port(rest[1:], text)
    elif value.count(":") == 1:
        host, port_text = value.split(":")
        port = _port(port_text, text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise NameserverError(f"bad nameserver {text!r}: {host!r} is not an IP address") from None
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise NameserverError(f"bad nameserver {whole!r}: port must be 1-65535")
    return int(text)


def format_nameserver(nameserver: Nameserver) -> str:
    host, port = nameserver
    shown = f"[{host}]" if ":" in host else host
    return shown if port == DEFAULT_PORT else f"{shown}:{port}"


# pragma: no mutate start  (I/O plumbing, not a decision: proven against dnsmasq and sockets in test_dns_probe.py)
def system_nameservers() -> list[Nameserver]:
    """The resolvers of this machine (/etc/resolv.conf), as (address, 53)."""
    try:
        resolver = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return []
    return [(str(ns), DEFAULT_PORT) for ns in resolver.nameservers]
# pragma: no mutate end


@dataclass
class Answer:
    """What a lookup found, with enough detail to act on."""

    name: str
    rdtype: str
    status: str  # ok | nxdomain | nodata | timeout | servfail | refused | unreachable | error
    records: list[str] = field(default_factory=list)  # the final RRset in presentation format
    cname_chain: list[str] = field(default_factory=list)  # CNAME targets followed, in order
    resolver: str | None = None  # the resolver whose answer this is
    ttl: int | None = None  # smallest TTL along the chain
    error: str = ""  # why not ok, in words
    tried: list[str] = field(default_factory=list)  # "resolver: outcome" for every attempt
    elapsed: float = 0.0
    rdatas: list[object] = field(default_factory=list, repr=False)  # dnspython rdata objects

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def canonical_name(self) -> str:
        return self.cname_chain[-1] if self.cname_chain else self.name

    @property
    def addresses(self) -> list[str]:
        """A/AAAA answers as address strings (empty for other types)."""
        if self.rdtype not in ("A", "AAAA"):
            return []
        return [str(rdata) for rdata in self.rdatas]

    @property
    def texts(self) -> list[str]:
        """TXT answers, each record's character strings joined (RFC 7208 §3.3)."""
        if self.rdtype != "TXT":
            return []
        return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in self.rdatas]  # type: ignore[attr-defined]

    def describe(self) -> str:
        """One line: 'webapp.example.com A -> 1.2.3.4 (CNAME lb.example.net) [ttl 600, via 1.1.1.1]'."""
        chain = f" (CNAME {' -> '.join(self.cname_chain)})" if self.cname_chain else ""
        where = f"via {self.resolver}" if self.resolver else "no resolver answered"
        if self.ok:
            shown = ", ".join(self.records)
            return f"{self.name} {self.rdtype} -> {shown}{chain} [ttl {self.ttl}, {where}]"
        return f"{self.name} {self.rdtype}: {self.status}{chain} ({self.error}) [{where}]"

    def evidence(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.rdtype,
            "status": self.status,
            "records": self.records,
            "cname_chain": self.cname_chain,
            "resolver": self.resolver,
            "ttl": self.ttl,
            "error": self.error,
        }


# pragma: no mutate start  (I/O plumbing, not a decision: proven against dnsmasq and sockets in test_dns_probe.py)
class ResolverHealth:
    """Which resolvers are dead in this run, and why: learnt once per resolver, then known to every lookup.

    The first lookup to reach a resolver whose state is unknown asks it alone (other threads, and the
    other processes of the run, wait for that answer); a resolver that gave no answer to all its tries,
    or whose port is closed, is dead for the rest of the run."""

    def __init__(self) -> None:
        self._state: dict[Nameserver, str] = {}      # "" alive, else "timeout: why" / "unreachable: why"
        self._locks: dict[Nameserver, threading.Lock] = {}
        self._guard = threading.Lock()

    def _file(self, server: Nameserver) -> str | None:
        from wirecheck.transport import shared_dir

        where = shared_dir()
        host, port = server
        return os.path.join(where, f"dns-resolver-{host.replace(':', '_')}-{port}") if where else None

    def state(self, server: Nameserver) -> str | None:
        """None (unknown), "" (answered), or "kind: why" (dead)."""
        with self._guard:
            if server in self._state:
                return self._state[server]
        path = self._file(server)
        if path and os.path.exists(path):
            with contextlib.suppress(OSError), open(path, encoding="utf-8") as fh:
                value = fh.read()
                with self._guard:
                    self._state[server] = value
                return value
        return None

    def set(self, server: Nameserver, value: str) -> None:
        with self._guard:
            self._state[server] = value
        path = self._file(server)
        if path:
            with contextlib.suppress(OSError), open(path, "w", encoding="utf-8") as fh:
                fh.write(value)

    @contextlib.contextmanager
    def first_contact(self, server: Nameserver):
        """Held while the first lookup of the run asks an unknown resolver (threads and processes)."""
        with self._guard:
            lock = self._locks.setdefault(server, threading.Lock())
        with lock:
            path = self._file(server)
            if path:
                from wirecheck.transport import file_lock

                with file_lock(path + ".lock"):
                    yield
            else:
                yield

    def forget(self) -> None:
        with self._guard:
            self._state.clear()


#: the run's resolver states (DnsLookup uses it; resolve() alone does not)
HEALTH = ResolverHealth()


def _send(query: dns.message.Message, host: str, port: int, timeout: float) -> dns.message.Message:
    """One UDP exchange (TCP when truncated) over a connected socket: a closed port then raises
    ConnectionRefusedError at once instead of looking like silence."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        sock.setblocking(False)     # dnspython waits with select() up to the timeout, on its own sockets too
        response = dns.query.udp(query, host, port=port, timeout=timeout, ignore_unexpected=True, sock=sock)
    if response.flags & dns.flags.TC:
        response = dns.query.tcp(query, host, port=port, timeout=timeout)
    return response


def resolve(
    name: str,
    rdtype: str = "A",
    nameservers: Sequence[Nameserver] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    tries: int = DEFAULT_TRIES,
    health: ResolverHealth | None = None,
) -> Answer:
    """Look `name` up as `rdtype`, following CNAMEs, asking `nameservers` (default: the system's).

    Each resolver gets `tries` attempts of `timeout` seconds (UDP, TCP when the answer is truncated);
    the first usable answer (NOERROR or NXDOMAIN) wins.  SERVFAIL/REFUSED move on to the next resolver.
    """
    started = time.monotonic()
    rdtype = rdtype.upper()
    servers = list(nameservers) if nameservers else system_nameservers()
    try:
        qname = dns.name.from_text(name)
        wanted = dns.rdatatype.from_text(rdtype)
    except (dns.exception.DNSException, ValueError) as exc:
        return Answer(name=name, rdtype=rdtype, status="error", error=f"invalid query: {exc}")
    answer = Answer(name=name.rstrip("."), rdtype=rdtype, status="error")
    if not servers:
        answer.error = "no resolver configured (empty /etc/resolv.conf and no --nameserver)"
        return answer
    current = qname
    for _hop in range(MAX_CNAME_CHAIN):
        response, server = _ask(current, wanted, servers, timeout, max(1, tries), answer, health)
        if response is None:
            break
        answer.resolver = format_nameserver(server)
        current, rrset, ttls = _follow(response, current, wanted, answer.cname_chain)
        if rrset is not None:
            answer.status = "ok"
            answer.rdatas = list(rrset)
            answer.records = sorted(rdata.to_text() for rdata in rrset)
            answer.ttl = min(ttls + [rrset.ttl])
            answer.error = ""
            break
        answer.ttl = min(ttls) if ttls else None
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            answer.status = "nxdomain"
            answer.error = f"{current.to_text(omit_final_dot=True)} does not exist (NXDOMAIN)"
            break
        if current != qname and not _has_owner(response, current):
            # The resolver handed back a CNAME without chasing it (not recursive): chase it ourselves.
            qname = current
            continue
        answer.status = "nodata"
        answer.error = f"{current.to_text(omit_final_dot=True)} exists but has no {rdtype} record (NODATA)"
        break
    else:
        answer.error = f"CNAME chain longer than {MAX_CNAME_CHAIN} or looping"
    answer.elapsed = time.monotonic() - started
    return answer


def _has_owner(response: dns.message.Message, owner: dns.name.Name) -> bool:
    return any(rrset.name == owner for rrset in response.answer) or bool(response.authority)


def _follow(
    response: dns.message.Message, qname: dns.name.Name, wanted: int, chain: list[str]
) -> tuple[dns.name.Name, object | None, list[int]]:
    """Walk CNAMEs in the answer section from qname; return the last name, the wanted RRset, TTLs."""
    current = qname
    ttls: list[int] = []
    for _ in range(MAX_CNAME_CHAIN):
        rrset = response.get_rrset(response.answer, current, dns.rdataclass.IN, wanted)
        if rrset is not None:
            return current, rrset, ttls
        if wanted == dns.rdatatype.CNAME:
            break
        cname = response.get_rrset(response.answer, current, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is None:
            break
        ttls.append(cname.ttl)
        current = cname[0].target
        text = current.to_text(omit_final_dot=True)
        if text in chain:
            break
        chain.append(text)
    return current, None, ttls


def _ask(
    qname: dns.name.Name,
    rdtype: int,
    servers: Sequence[Nameserver],
    timeout: float,
    tries: int,
    answer: Answer,
    health: ResolverHealth | None = None,
) -> tuple[dns.message.Message | None, Nameserver]:
    """One question to the resolvers in turn; None when none gave a usable answer (sets answer.status)."""
    outcomes: list[str] = []
    for attempt in range(tries):
        for server in servers:
            shown = format_nameserver(server)
            query = dns.message.make_query(qname, rdtype, use_edns=True)
            if health is not None:
                state = health.state(server)
                if state is None:
                    with health.first_contact(server):
                        state = health.state(server)
                        if state is None:      # this lookup is the run's first to ask it: all its tries here
                            response, state = _first_contact(query, server, timeout, tries, answer, outcomes)
                            health.set(server, state)
                            if response is not None:
                                return response, server
                            continue
                if state:                      # dead: not asked again in this run
                    if attempt == 0:
                        kind, _, why = state.partition(": ")
                        outcomes.append(kind)
                        answer.tried.append(f"{shown}: not asked: {why} earlier in this run")
                    continue
            response, kind = _attempt(query, server, timeout, answer)
            if response is not None:
                return response, server
            outcomes.append(kind)
    if "servfail" in outcomes:
        answer.status = "servfail"
        answer.error = "resolvers answered SERVFAIL (upstream or DNSSEC failure)"
    elif "refused" in outcomes:
        answer.status = "refused"
        answer.error = "resolvers refused the query"
    elif outcomes and all(outcome == "timeout" for outcome in outcomes):
        answer.status = "timeout"
        shown = ", ".join(format_nameserver(server) for server in servers)
        answer.error = f"no answer from {shown} in {tries} tries of {timeout:g}s"
        if any(": not asked: " in t for t in answer.tried):
            answer.error += " (found silent earlier in this run; not asked again)"
    elif outcomes and all(outcome in ("timeout", "unreachable") for outcome in outcomes):
        answer.status = "unreachable"
        answer.error = "; ".join(dict.fromkeys(t for t in answer.tried if "refused" in t or "unreachable" in t
                                               or "no answer" in t))
    else:
        answer.status = "error"
        answer.error = "; ".join(answer.tried[-len(servers) :]) or "no resolver reachable"
    return None, servers[0]


def _attempt(
    query: dns.message.Message, server: Nameserver, timeout: float, answer: Answer
) -> tuple[dns.message.Message | None, str]:
    """One try at one resolver -> (a usable response, "") or (None, outcome)."""
    host, port = server
    shown = format_nameserver(server)
    try:
        response = _send(query, host, port, timeout)
    except dns.exception.Timeout:
        answer.tried.append(f"{shown}: no answer within {timeout:g}s")
        return None, "timeout"
    except ConnectionRefusedError:
        answer.tried.append(f"{shown}: connection refused (nothing listens on port {port}: ICMP port unreachable)")
        return None, "unreachable"
    except OSError as exc:
        if exc.errno in (101, 113):  # ENETUNREACH, EHOSTUNREACH
            answer.tried.append(f"{shown}: unreachable ({exc.strerror})")
            return None, "unreachable"
        answer.tried.append(f"{shown}: {type(exc).__name__}: {exc}")
        return None, "error"
    except dns.exception.DNSException as exc:
        answer.tried.append(f"{shown}: {type(exc).__name__}: {exc}")
        return None, "error"
    rcode = response.rcode()
    answer.tried.append(f"{shown}: {dns.rcode.to_text(rcode)}")
    if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return response, ""
    return None, "servfail" if rcode == dns.rcode.SERVFAIL else "refused"


def _first_contact(
    query: dns.message.Message, server: Nameserver, timeout: float, tries: int, answer: Answer,
    outcomes: list[str],
) -> tuple[dns.message.Message | None, str]:
    """The run's first question to a resolver, with all its tries -> (response, "" alive | "kind: why" dead)."""
    shown = format_nameserver(server)
    kinds: list[str] = []
    for _ in range(tries):
        response, kind = _attempt(query, server, timeout, answer)
        if response is not None:
            return response, ""
        kinds.append(kind)
        outcomes.append(kind)
        if kind == "unreachable":
            return None, f"unreachable: {answer.tried[-1].removeprefix(shown + ': ')}"
        if kind != "timeout":          # it answered (SERVFAIL, REFUSED) or failed otherwise: not dead
            return None, ""
    return None, f"timeout: no answer within {tries} tries of {timeout:g}s"


class DnsLookup:
    """Resolver settings bundled, with a per-instance cache and a count of queries (SPF needs one)."""

    def __init__(
        self,
        nameservers: Sequence[Nameserver] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        tries: int = DEFAULT_TRIES,
    ) -> None:
        self.nameservers = list(nameservers) if nameservers else system_nameservers()
        self.timeout = timeout
        self.tries = tries
        self.queries = 0
        self._cache: dict[tuple[str, str], Answer] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    @property
    def resolvers_text(self) -> str:
        return ", ".join(format_nameserver(ns) for ns in self.nameservers) or "(none)"

    def __call__(self, name: str, rdtype: str = "A") -> Answer:
        key = (name.lower().rstrip("."), rdtype.upper())
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # threads asking the same question (CAA parents) wait for one lookup
            if key not in self._cache:
                with self._guard:
                    self.queries += 1
                self._cache[key] = resolve(name, rdtype, self.nameservers, self.timeout, self.tries, HEALTH)
            return self._cache[key]

    def many(self, names: Iterable[str], rdtype: str = "A") -> dict[str, Answer]:
        """Look several names up at once (in threads), so N timeouts cost one timeout, not N."""
        unique = list(dict.fromkeys(names))
        if len(unique) <= 1:
            return {name: self(name, rdtype) for name in unique}
        # daemon threads, not a pool: a check stopped while they wait (--max-run-time) returns at once, and
        # neither the check nor the process waits for a resolver that does not answer
        import queue

        todo: queue.SimpleQueue[str] = queue.SimpleQueue()
        for name in unique:
            todo.put(name)
        answers: dict[str, Answer] = {}

        def work() -> None:
            while True:
                try:
                    name = todo.get_nowait()
                except queue.Empty:
                    return
                answers[name] = self(name, rdtype)

        threads = [threading.Thread(target=work, name="wirecheck-dns", daemon=True)
                   for _ in range(min(8, len(unique)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {name: answers[name] for name in unique}
# pragma: no mutate end


def address_set(answer: Answer) -> set[str]:
    """Normalised addresses of an A/AAAA answer (so '::0001' and '::1' compare equal)."""
    return {str(ipaddress.ip_address(address)) for address in answer.addresses}


UNMEASURED = ("timeout", "servfail", "refused", "unreachable", "error")


@dataclass
class Assessment:
    """What a check needs to give a verdict: problems to fix, lookups that failed, and evidence."""

    problems: list[str] = field(default_factory=list)  # each names the record to change
    unmeasured: list[str] = field(default_factory=list)  # lookups that gave no answer (-> error)
    observed: object = None
    expected: object = None
    evidence: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unmeasured


def _via(answer: Answer) -> str:
    chain = f" via CNAME {' -> '.join(answer.cname_chain)}" if answer.cname_chain else ""
    return f"{chain} (resolver {answer.resolver or 'none'})"


def assess_points_to(answers: dict[str, Answer], expected: set[str], rdtype: str = "A") -> Assessment:
    """Every name must resolve, after CNAMEs, to exactly the `expected` addresses."""
    want = ", ".join(sorted(expected))
    result = Assessment(expected={name: sorted(expected) for name in answers})
    observed: dict[str, object] = {}
    for name, answer in answers.items():
        result.evidence[name] = answer.evidence()
        if answer.status in UNMEASURED:
            observed[name] = answer.status
            result.unmeasured.append(f"{name} {rdtype}: {answer.status} ({answer.error})")
            continue
        if answer.status == "nxdomain":
            observed[name] = "NXDOMAIN"
            end = answer.canonical_name
            if answer.cname_chain:
                result.problems.append(
                    f"{name}{_via(answer)} ends at {end}, which does not exist: "
                    f"create `{end}. IN {rdtype} {want}`"
                )
            else:
                result.problems.append(
                    f"{name} does not exist (NXDOMAIN from {answer.resolver}): create `{name}. IN {rdtype} {want}`"
                )
            continue
        if answer.status == "nodata":
            observed[name] = f"no {rdtype} record"
            end = answer.canonical_name
            result.problems.append(
                f"{name}{_via(answer)} has no {rdtype} record: add `{end}. IN {rdtype} {want}`"
            )
            continue
        found = address_set(answer)
        observed[name] = sorted(found)
        if found != expected:
            holder = answer.canonical_name
            shown = ", ".join(sorted(found))
            change = f"change `{holder}. IN {rdtype}` from {shown} to {want}"
            if answer.cname_chain:
                change += f" (or point the CNAME chain of {name} elsewhere)"
            result.problems.append(f"{name} resolves to {shown}{_via(answer)}, expected {want}: {change}")
    result.observed = observed
    return result


def assess_exist_and_agree(answers: dict[str, Answer], rdtype: str = "A") -> Assessment:
    """Without the address to compare against: every name must resolve, and all to one same address set.
    A name that does not exist is a problem whatever the address (as Wire's verify_dns.yml has it)."""
    result = assess_points_to(answers, set(), rdtype)
    result.problems = [p for p in result.problems if " resolves to " not in p]   # no expected address here
    found = {name: frozenset(address_set(a)) for name, a in answers.items() if a.ok}
    groups: dict[frozenset[str], list[str]] = {}
    for name, addresses in found.items():
        groups.setdefault(addresses, []).append(name)
    if len(groups) > 1:
        shown = "; ".join(f"{', '.join(sorted(addrs))} ({', '.join(names)})" for addrs, names in
                          sorted(groups.items(), key=lambda kv: -len(kv[1])))
        result.problems.append(f"the names do not agree on one address: {shown}; every name must point to "
                               "the one public address of the node (wire_ip)")
    result.problems = [p.replace(f" IN {rdtype} `", f" IN {rdtype} <wire_ip>`") for p in result.problems]
    result.expected = "every name exists, all with the same address"
    return result


# CAA (RFC 8659, with RFC 8657's accounturi/validationmethods), judged as the issuing CA judges it.
# Let's Encrypt (Boulder, va/caa.go) knows the tags below; any other tag with the critical flag (128, and
# Let's Encrypt also reads flag 1 as critical) forbids issuance.  Unknown parameters are ignored; a
# parameter list that does not parse makes the record authorise nothing; issuer names compare exactly.
CA_KNOWN_CAA_TAGS = {"issue", "issuewild", "iodef"}
ACME_ACCOUNT_INPUT = "acme_account_uri"  # the inventory variable naming cert-manager's ACME account URI
CAA_CRITICAL_FLAGS = 128 | 1
_CAA_PARAM_TAG = re.compile(r"^[A-Za-z0-9](?:-*[A-Za-z0-9])*$")
_CAA_PARAM_VALUE = re.compile(r"^[\x21-\x3a\x3c-\x7e]*$")
_ACME_METHOD = re.compile(r"^[A-Za-z0-9-]+$")


@dataclass(frozen=True)
class CaaEntry:
    flags: int
    tag: str  # as published (case kept)
    value: str
    text: str  # presentation format, as in the evidence

    @classmethod
    def parse(cls, text: str) -> CaaEntry:
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.CAA, text)
        return cls(rdata.flags, rdata.tag.decode("ascii", "replace"),  # type: ignore[attr-defined]
                   rdata.value.decode("utf-8", "replace"), text)  # type: ignore[attr-defined]


@dataclass
class IssueValue:
    """An issue/issuewild value (RFC 8659 §4.2): issuer domain name ("" = nobody) and parameters."""

    issuer: str
    parameters: dict[str, str] = field(default_factory=dict)
    malformed: str = ""  # why the parameters do not parse (the record then authorises nothing)


def parse_issue_value(value: str) -> IssueValue:
    parts = value.split(";")  # ';' cannot occur in a parameter tag or value
    parsed = IssueValue(parts[0].strip(" \t"))
    rest = parts[1:]
    if len(rest) == 1 and not rest[0].strip(" \t"):
        return parsed
    for parameter in rest:
        tag, equals, text = parameter.partition("=")
        tag, text = tag.strip(" \t"), text.strip(" \t")
        if not equals:
            parsed.malformed = f"parameter {parameter.strip()!r} is not tag=value"
        elif not _CAA_PARAM_TAG.match(tag):
            parsed.malformed = f"parameter tag {tag!r} has characters RFC 8659 does not allow"
        elif not _CAA_PARAM_VALUE.match(text):
            parsed.malformed = f"parameter value {text!r} has characters RFC 8659 does not allow"
        if parsed.malformed:
            return parsed
        parsed.parameters[tag] = text
    return parsed


@dataclass
class CaaDecision:
    allowed: bool | None  # None: depends on the ACME account, which is not known
    why: str
    record: str | None = None  # the record that decided (allowed) or the closest candidate


@dataclass
class CaaPolicy:
    """The CAA record set that governs a name (RFC 8659 §3: the first set found climbing up)."""

    name: str
    owner: str | None  # where the relevant set was found; None when there is no CAA anywhere
    records: list[str]
    unmeasured: str = ""  # a lookup on the way failed

    def decide(self, issuer: str, wildcard: bool = False, challenge: str = "http-01",
               account_uri: str | None = None) -> CaaDecision:
        """May `issuer` issue for the name, validating with `challenge` for the ACME account `account_uri`
        (None: not known)?  RFC 8659 §4 and RFC 8657, as Let's Encrypt applies them."""
        if self.owner is None:
            return CaaDecision(True, f"no CAA record on {self.name} or its parents (any CA may issue)")
        entries = []
        for text in self.records:
            try:
                entries.append(CaaEntry.parse(text))
            except (dns.exception.DNSException, ValueError) as exc:
                return CaaDecision(False, f"CAA record '{text}' at {self.owner} cannot be parsed ({exc})")
        for entry in entries:
            if entry.tag.lower() not in CA_KNOWN_CAA_TAGS and entry.flags & CAA_CRITICAL_FLAGS:
                return CaaDecision(False, f"CAA record '{entry.text}' at {self.owner} carries the critical flag on "
                                          f"tag {entry.tag!r}, which {issuer} does not know, so it refuses to issue",
                                   entry.text)
        issue = [entry for entry in entries if entry.tag.lower() == "issue"]
        wild = [entry for entry in entries if entry.tag.lower() == "issuewild"]
        relevant, tag = (wild, "issuewild") if wildcard and wild else (issue, "issue")
        if not relevant:
            return CaaDecision(True, f"CAA at {self.owner} has no {tag} property (no restriction on issuance)")
        refusals: list[str] = []
        needs_account: CaaEntry | None = None
        for entry in relevant:
            value = parse_issue_value(entry.value)
            if value.issuer != issuer:
                refusals.append(f"'{entry.text}' names {value.issuer or 'no CA'}")
                continue
            if value.malformed:
                refusals.append(f"'{entry.text}' names {issuer} but {value.malformed}, so it authorises nothing")
                continue
            methods = value.parameters.get("validationmethods")
            if methods is not None:
                listed = methods.split(",")
                if not all(_ACME_METHOD.match(method) for method in listed):
                    refusals.append(f"'{entry.text}': validationmethods={methods} is malformed, so it authorises "
                                    "nothing")
                    continue
                if challenge not in listed:
                    refusals.append(f"'{entry.text}' allows {issuer} only with validation method(s) {methods}; "
                                    f"cert-manager validates with {challenge}")
                    continue
            wanted_account = value.parameters.get("accounturi")
            if wanted_account is not None:
                if account_uri is None:
                    needs_account = needs_account or entry
                    continue
                if wanted_account != account_uri:
                    refusals.append(f"'{entry.text}' allows {issuer} only for ACME account {wanted_account}; "
                                    f"cert-manager's account is {account_uri}")
                    continue
            return CaaDecision(True, f"CAA '{entry.text}' at {self.owner} allows {issuer}"
                                     + (f" with {challenge}" if methods else "")
                                     + (f" for account {account_uri}" if wanted_account else ""), entry.text)
        if needs_account is not None:
            wanted = parse_issue_value(needs_account.value).parameters["accounturi"]
            return CaaDecision(None, f"CAA '{needs_account.text}' at {self.owner} allows {issuer} only for the ACME "
                                     f"account {wanted}; the account cert-manager uses is not known, so whether "
                                     "issuance succeeds cannot be told", needs_account.text)
        return CaaDecision(False, f"CAA at {self.owner} does not let {issuer} issue with {challenge} ({tag} "
                                  f"records: {'; '.join(refusals)})")

    def allows(self, issuer: str, wildcard: bool = False) -> tuple[bool, str]:
        """May `issuer` issue (HTTP-01, no account restriction honoured as unknown -> False)?"""
        decision = self.decide(issuer, wildcard)
        return bool(decision.allowed), decision.why


def caa_policy(name: str, lookup: DnsLookup) -> CaaPolicy:
    labels = name.rstrip(".").split(".")
    for index in range(len(labels)):
        owner = ".".join(labels[index:])
        answer = lookup(owner, "CAA")
        if answer.status in UNMEASURED:
            return CaaPolicy(name, None, [], unmeasured=f"{owner} CAA: {answer.status} ({answer.error})")
        if answer.ok:
            # A CAA set reached through a CNAME belongs to the alias (RFC 8659 §3).
            return CaaPolicy(name, owner, answer.records)
    return CaaPolicy(name, None, [])


def assess_srv(owner: str, target: str, port: int, answer: Answer) -> Assessment:
    """DNS-FED-SRV: the SRV record at `owner` points at `target`:`port` with a weight above 0."""
    example = f"`{owner}. 600 IN SRV 0 10 {port} {target}.`"
    result = Assessment(expected=f"SRV {owner} -> {target}:{port}, weight > 0")
    result.evidence["srv"] = answer.evidence()
    if answer.status in UNMEASURED:
        result.unmeasured.append(f"{owner} SRV: {answer.status} ({answer.error})")
        return result
    if not answer.ok:
        result.observed = answer.status
        result.problems.append(f"no SRV record at {owner} ({answer.error}): publish {example}")
        return result
    result.observed = answer.records
    for rdata in answer.rdatas:
        found = str(rdata.target).rstrip(".").lower()  # type: ignore[attr-defined]
        shown = rdata.to_text()  # type: ignore[attr-defined]
        wrong = []
        if rdata.port != port:  # type: ignore[attr-defined]
            wrong.append(f"port {rdata.port}, need {port}")  # type: ignore[attr-defined]
        if rdata.weight <= 0:  # type: ignore[attr-defined]
            wrong.append("weight 0, need > 0")
        if found != target.lower():
            wrong.append(f"target {found}, need {target}")
        if wrong:
            result.problems.append(f"SRV {owner} \"{shown}\": {'; '.join(wrong)}: change it to {example}")
    if answer.ttl is not None and answer.ttl > 86400:
        result.notes.append(f"TTL {answer.ttl}s is above the 86400s the docs suggest once stable")
    return result


def assess_caa(policies: dict[str, CaaPolicy], issuer: str, challenge: str = "http-01",
               account_uri: str | None = None) -> Assessment:
    """IMP-CAA: for every name, the governing CAA set (if any) lets `issuer` issue the way cert-manager asks
    (ACME `challenge`, ACME account `account_uri`; None = not known).  An account restriction that cannot
    be compared is unmeasured (with the input that would decide it), never a pass."""
    result = Assessment(expected=f"no CAA record, or one allowing {issuer} with {challenge}")
    observed: dict[str, object] = {}
    refused: dict[tuple[str, str | None], list[str]] = {}  # names sharing one decision are told once
    undecided: dict[str, list[str]] = {}
    for name, policy in policies.items():
        result.evidence[name] = {"caa_owner": policy.owner, "records": policy.records}
        if policy.unmeasured:
            observed[name] = "lookup failed"
            result.unmeasured.append(policy.unmeasured)
            continue
        decision = policy.decide(issuer, wildcard=name.startswith("*."), challenge=challenge,
                                 account_uri=account_uri)
        result.evidence[name]["decision"] = decision.why  # type: ignore[index]
        observed[name] = policy.records if policy.owner else "no CAA"
        if decision.allowed is None:
            undecided.setdefault(decision.why, []).append(name)
        elif not decision.allowed:
            refused.setdefault((decision.why, policy.owner), []).append(name)
    for why, names in undecided.items():
        result.unmeasured.append(f"{', '.join(names)}: {why}: give the account URI as {ACME_ACCOUNT_INPUT} in the "
                                 "inventory (the ClusterIssuer's status.acme.uri)")
    for (why, owner), names in refused.items():
        result.problems.append(f"{', '.join(names)}: {why}: add `{owner}. IN CAA 0 issue \"{issuer}\"` (or remove "
                               "the restriction)")
    result.observed = observed
    return result


# pragma: no mutate start  (I/O plumbing, not a decision: proven against dnsmasq and sockets in test_dns_probe.py)
def tcp_reachable(address: str, port: int, timeout: float) -> tuple[bool, str]:
    """Can a TCP connection be opened? -> (ok, 'connected' | 'refused' | 'timeout' | error text)."""
    import socket

    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True, "connected"
    except ConnectionRefusedError:
        return False, "refused"
    except TimeoutError:
        return False, f"no answer within {timeout:g}s"
    except OSError as exc:
        return False, str(exc)
# pragma: no mutate end


def assess_aaaa(answers: dict[str, Answer], port: int, timeout: float) -> Assessment:
    """IMP-AAAA: a name with AAAA records must answer on those addresses (else clients stall on IPv6)."""
    result = Assessment(expected=f"no AAAA records, or IPv6 addresses that accept TCP {port}")
    observed: dict[str, object] = {}
    for name, answer in answers.items():
        result.evidence[name] = answer.evidence()
        if answer.status in UNMEASURED:
            observed[name] = answer.status
            result.unmeasured.append(f"{name} AAAA: {answer.status} ({answer.error})")
            continue
        if not answer.ok:
            observed[name] = "no AAAA"
            continue
        observed[name] = answer.addresses
        for address in answer.addresses:
            ok, how = tcp_reachable(address, port, timeout)
            result.evidence[f"{name} [{address}]:{port}"] = how
            if not ok:
                result.problems.append(
                    f"{name} has AAAA {address}{_via(answer)} but TCP [{address}]:{port} fails ({how}): "
                    f"remove `{answer.canonical_name}. IN AAAA {address}` or make IPv6 ingress work"
                )
    result.observed = observed
    return result


# pragma: no mutate start  (I/O plumbing, not a decision: proven against dnsmasq and sockets in test_dns_probe.py)
def caa_policies(names: Sequence[str], lookup: DnsLookup) -> dict[str, CaaPolicy]:
    """`caa_policy` for several names at once (in threads; parents are shared through the cache)."""
    unique = list(dict.fromkeys(names))
    if not unique:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(unique))) as pool:
        return dict(zip(unique, pool.map(lambda name: caa_policy(name, lookup), unique), strict=True))
# pragma: no mutate end
