"""DNS resolver: bounded lookups with dnspython that say what answered, how, and why not.

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

No pytest in here; `wirecheck.probes.spf` builds on `DnsLookup`. The decisions made on the answers
(address comparison, CAA, SRV) are in dns.py, which re-exports these names."""


from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

DEFAULT_PORT = 53
DEFAULT_TIMEOUT = 2.0
DEFAULT_TRIES = 2
MAX_CNAME_CHAIN = 12

Nameserver = tuple[str, int]


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
