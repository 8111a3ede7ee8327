"""DNS probe: the decisions made on lookups, for the DNS and TLS checks.

Lookups themselves (bounded, saying what answered and why not) are dns_resolver's: `resolve`,
`DnsLookup`, `Answer`; this module re-exports them, so import from here.  Here: the --nameserver
option's parser, address comparison (`assess_points_to`, `assess_exist_and_agree`), SRV, AAAA
reachability, and CAA judged as the issuing CA judges it.  The judges are pure (answers in,
`Assessment` out) except the TCP connect of `tcp_reachable` and the CAA lookups of `caa_policies`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from .dns_resolver import (
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    DEFAULT_TRIES,
    HEALTH,
    MAX_CNAME_CHAIN,
    Answer,
    DnsLookup,
    Nameserver,
    ResolverHealth,
    format_nameserver,
    resolve,
    system_nameservers,
)

__all__ = [  # this module's names and those of the modules it re-exports
    "ACME_ACCOUNT_INPUT", "Answer", "Assessment", "CAA_CRITICAL_FLAGS", "CA_KNOWN_CAA_TAGS",
    "CaaDecision", "CaaEntry", "CaaPolicy", "DEFAULT_PORT", "DEFAULT_TIMEOUT", "DEFAULT_TRIES",
    "DnsLookup", "HEALTH", "IssueValue", "MAX_CNAME_CHAIN", "Nameserver", "NameserverError",
    "ResolverHealth", "UNMEASURED", "address_set", "assess_aaaa", "assess_caa", "assess_exist_and_agree",
    "assess_points_to", "assess_srv", "caa_policies", "caa_policy", "format_nameserver",
    "parse_issue_value", "parse_nameserver", "resolve", "system_nameservers", "tcp_reachable",
]


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
