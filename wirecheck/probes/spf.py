"""SPF (RFC 7208): does a domain's record authorise an address, as a receiving mail server decides it?

The evaluation is pyspf's `query.check()` (strict RFC 7208 check_host: macros, include/redirect/exists,
the limits of 10 DNS-querying terms and 2 void lookups), with its DNS function replaced by our
resolver (`wirecheck.probes.dns.DnsLookup`: the --nameserver setting, bounded timeouts), so every
query it makes is answered by the resolvers the run names and noted for the evidence.  `parse_spf`
only lists the terms (for the evidence and the "looks like the address" hint); it decides nothing.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import spf as pyspf

from wirecheck.probes.dns import UNMEASURED, Answer, Assessment, DnsLookup

MAX_DNS_TERMS = 10  # RFC 7208 §4.6.4
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
_MECHANISM = re.compile(
    r"^(?P<qualifier>[+\-~?]?)(?P<name>[a-z0-9]+)(?::(?P<value>[^/]*))?(?:/(?P<cidr4>\d+))?(?://(?P<cidr6>\d+))?$",
    re.IGNORECASE,
)
_MODIFIER = re.compile(r"^(?P<name>[a-z][a-z0-9_.\-]*)=(?P<value>.*)$", re.IGNORECASE)

Lookup = Callable[[str, str], Answer]


@dataclass(frozen=True)
class Mechanism:
    qualifier: str  # "+", "-", "~", "?"
    name: str  # all, include, a, mx, ptr, ip4, ip6, exists
    value: str = ""  # domain or address, "" when absent
    cidr4: int | None = None
    cidr6: int | None = None
    text: str = ""  # as written in the record

    @property
    def result(self) -> str:
        return QUALIFIERS[self.qualifier]


@dataclass
class Spf:
    text: str
    mechanisms: list[Mechanism] = field(default_factory=list)
    modifiers: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def all_qualifier(self) -> str | None:
        """The qualifier of the final `all` ('-' for '-all'), None without an `all` mechanism."""
        for mechanism in self.mechanisms:
            if mechanism.name == "all":
                return mechanism.qualifier
        return None


def is_spf(text: str) -> bool:
    return text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")


def parse_spf(text: str) -> Spf:
    """Split an SPF record into mechanisms and modifiers; syntax problems go to `errors`."""
    spf = Spf(text=text)
    terms = text.split()
    if not terms or terms[0].lower() != "v=spf1":
        spf.errors.append("record does not start with 'v=spf1'")
        return spf
    for term in terms[1:]:
        modifier = _MODIFIER.match(term)
        if modifier and ":" not in term.split("=", 1)[0]:
            key = modifier["name"].lower()
            if key in spf.modifiers and key in ("redirect", "exp"):
                spf.errors.append(f"modifier {key!r} appears twice")
            spf.modifiers[key] = modifier["value"]
            continue
        match = _MECHANISM.match(term)
        if not match or match["name"].lower() not in MECHANISMS:
            spf.errors.append(f"unknown or malformed term {term!r}")
            continue
        name = match["name"].lower()
        value = match["value"] or ""
        mechanism = Mechanism(
            qualifier=match["qualifier"] or "+",
            name=name,
            value=value,
            cidr4=int(match["cidr4"]) if match["cidr4"] else None,
            cidr6=int(match["cidr6"]) if match["cidr6"] else None,
            text=term,
        )
        problem = _check_mechanism(mechanism)
        if problem:
            spf.errors.append(f"{term!r}: {problem}")
            continue
        spf.mechanisms.append(mechanism)
    return spf


def _check_mechanism(mechanism: Mechanism) -> str:
    if mechanism.name in ("ip4", "ip6"):
        if not mechanism.value:
            return "needs an address"
        try:
            network = _network(mechanism)
        except ValueError as exc:
            return str(exc)
        if (mechanism.name == "ip4") != (network.version == 4):
            return f"{mechanism.value} is not an IPv{mechanism.name[-1]} address"
    elif mechanism.name in ("include", "exists") and not mechanism.value:
        return "needs a domain"
    elif mechanism.name == "all" and (mechanism.value or mechanism.cidr4 is not None):
        return "'all' takes no argument"
    if mechanism.name != "ip6" and mechanism.cidr4 is not None and mechanism.cidr4 > 32:
        return "IPv4 prefix length above 32"  # (ip6:ADDR/LEN: LEN is the IPv6 length, checked by _network)
    if mechanism.cidr6 is not None and mechanism.cidr6 > 128:
        return "IPv6 prefix length above 128"
    return ""


def _network(mechanism: Mechanism) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    address = ipaddress.ip_address(mechanism.value)
    if mechanism.name == "ip6":
        prefix = mechanism.cidr6 if mechanism.cidr6 is not None else mechanism.cidr4
        prefix = 128 if prefix is None else prefix
    else:
        prefix = 32 if mechanism.cidr4 is None else mechanism.cidr4
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


@dataclass
class SpfVerdict:
    """pyspf's answer to RFC 7208 check_host(): the result, the term that decided it, and the lookups made."""

    result: str  # pass | fail | softfail | neutral | none | permerror | temperror
    mechanism: str | None  # the top-level term that decided ("ip4:1.2.3.0/24", "include:x"), None for the default
    why: str  # pyspf's explanation (for errors: what was wrong)
    steps: list[str] = field(default_factory=list)  # every DNS query made, with its answer, for the evidence
    dns_terms: int = 0  # terms that counted toward the limit of 10
    void_lookups: int = 0  # lookups that found nothing (limit 2)

    @property
    def authorized(self) -> bool:
        return self.result == "pass"


class _Recorder:
    """pyspf's DNS function backed by our resolver (the --nameserver setting, bounded timeouts, caching),
    noting every query for the evidence. A lookup that got no answer is pyspf's TempError."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.steps: list[str] = []

    def __call__(self, name: str, qtype: str, strict: object = True, timeout: object = None) -> list:
        answer = self.lookup(name, qtype)
        if answer.status in UNMEASURED:
            self.steps.append(f"{name} {qtype}: {answer.status} ({answer.error})")
            raise pyspf.TempError(f"DNS {name} {qtype}: {answer.status} ({answer.error})")
        if not answer.ok:
            self.steps.append(f"{name} {qtype}: {answer.status} (void)")
            return []
        self.steps.append(f"{name} {qtype}: {', '.join(answer.records)}")
        key = (name, qtype)
        values: list = []
        for rdata in answer.rdatas:
            if qtype in ("A", "AAAA"):
                values.append((key, rdata.address))  # type: ignore[attr-defined]
            elif qtype == "MX":
                values.append((key, (rdata.preference, rdata.exchange.to_text(True))))  # type: ignore[attr-defined]
            elif qtype == "PTR":
                values.append((key, rdata.target.to_text(True)))  # type: ignore[attr-defined]
            elif qtype in ("TXT", "SPF"):
                values.append((key, list(rdata.strings)))  # type: ignore[attr-defined]
        return values


_BOUND = threading.local()


def _dns_lookup(name: str, qtype: str, strict: object = True, timeout: object = None) -> list:
    """Installed as pyspf.DNSLookup: asks the resolver bound to this thread, never the system's."""
    recorder = getattr(_BOUND, "recorder", None)
    if recorder is None:
        raise pyspf.TempError(f"DNS {name} {qtype}: no resolver bound for this SPF evaluation")
    return recorder(name, qtype, strict, timeout)


pyspf.DNSLookup = _dns_lookup


def spf_authorizes(record: Spf | str | None, ip: str, domain: str, lookup: Lookup,
                   sender_local: str = "postmaster") -> SpfVerdict:
    """RFC 7208 check_host(ip, domain, sender) by pyspf (strict): would a receiver accept mail from `ip` for
    `domain`?  `record` is the domain's SPF text (None: pyspf fetches it); every further lookup (include,
    redirect, a, mx, exists with macros expanded, ptr, exp) goes through `lookup`."""
    text = record.text if isinstance(record, Spf) else record
    recorder = _Recorder(lookup)
    query = pyspf.query(i=ip, s=f"{sender_local}@{domain}", h=domain, strict=True)
    previous = getattr(_BOUND, "recorder", None)
    _BOUND.recorder = recorder
    try:
        result, _code, explanation = query.check(spf=text)
    except Exception as exc:  # pyspf's own assertion (recursion) or a bug: not a verdict on the record
        return SpfVerdict("error", None, f"pyspf failed: {type(exc).__name__}: {exc}", recorder.steps)
    finally:
        _BOUND.recorder = previous
    why = explanation or ""
    if result in ("permerror", "temperror") and getattr(query, "prob", None):
        why = str(query.prob)
        if query.mech:
            why += f" (at {', '.join(str(m) for m in query.mech)})"
    return SpfVerdict(result, query.mechanism if result not in ("permerror", "temperror") else None, why,
                      recorder.steps, query.lookups, query.void_lookups)


@dataclass
class PolicyEnd:
    qualifier: str | None  # of the `all` that ends the policy; None without one
    where: str  # the domain whose record holds it
    problem: str = ""  # why the end could not be followed
    unmeasured: bool = False  # the problem is a lookup without answer


def effective_all(record: Spf, domain: str, lookup: Lookup, limit: int = MAX_DNS_TERMS) -> PolicyEnd:
    """The `all` that ends the policy, following `redirect=` (RFC 7208 §6.1: redirect applies only when
    the record has no `all`)."""
    seen = [domain]
    for hops in range(limit + 1):
        if record.all_qualifier is not None or "redirect" not in record.modifiers:
            return PolicyEnd(record.all_qualifier, seen[-1])
        if hops == limit:
            break
        query = pyspf.query(i="192.0.2.1", s=f"postmaster@{seen[-1]}", h=seen[-1], strict=True)
        query.d = seen[-1]
        try:
            target = query.expand_domain(record.modifiers["redirect"])
        except pyspf.PermError as exc:
            return PolicyEnd(None, seen[-1], f"redirect={record.modifiers['redirect']} cannot be expanded ({exc})")
        if target.lower() in (name.lower() for name in seen):
            return PolicyEnd(None, target, f"redirect loop through {target}")
        answer = lookup(target, "TXT")
        if answer.status in UNMEASURED:
            return PolicyEnd(None, target, f"{target} TXT: {answer.status} ({answer.error})", unmeasured=True)
        records = [text for text in answer.texts if is_spf(text)]
        if len(records) != 1:
            return PolicyEnd(None, target, f"redirect={target} finds {len(records)} SPF records (need one)")
        seen.append(target)
        record = parse_spf(records[0])
    return PolicyEnd(None, seen[-1], f"more than {limit} redirects")


def suggested_record(wire_ip: str) -> str:
    return f"v=spf1 a mx ip4:{wire_ip} -all"


def assess_spf(domain: str, wire_ip: str, lookup: DnsLookup, all_qualifier: str = "-",
               sender_local: str = "postmaster") -> Assessment:
    """DNS-SPF: one SPF record on `domain`; RFC 7208 evaluation (pyspf) gives `pass` for `wire_ip`; the policy
    ends like the docs' record (`-all`), following `redirect=`.

    temperror (a lookup got no answer) is unmeasured; permerror (the published records cannot be
    interpreted: syntax, more than 10 DNS-querying terms, more than 2 void lookups, an include without
    a record) is a problem: receivers see exactly that record and treat the domain's SPF as broken."""
    result = Assessment(expected=f"an SPF record authorising {wire_ip} (docs: {suggested_record(wire_ip)})")
    answer = lookup(domain, "TXT")
    result.evidence["txt"] = answer.evidence()
    publish = f"publish `{domain}. IN TXT \"{suggested_record(wire_ip)}\"`"
    if answer.status in UNMEASURED:
        result.unmeasured.append(f"{domain} TXT: {answer.status} ({answer.error})")
        return result
    records = [text for text in answer.texts if is_spf(text)]
    result.observed = records or f"no SPF record ({answer.status}; TXT: {answer.texts or 'none'})"
    if not records:
        found = ", ".join(f'"{text}"' for text in answer.texts) or "none"
        result.problems.append(f"{domain} has no SPF record (TXT records found: {found}): {publish}")
        return result
    if len(records) > 1:
        shown = ", ".join(f'"{text}"' for text in records)
        result.problems.append(f"{domain} has {len(records)} SPF records ({shown}); RFC 7208 allows one and "
                               f"receivers treat two as a permanent error: keep one, {publish}")
        return result
    spf = parse_spf(records[0])
    result.evidence["record"] = records[0]
    result.evidence["terms"] = [mechanism.text for mechanism in spf.mechanisms] + [
        f"{key}={value}" for key, value in spf.modifiers.items()]
    verdict = spf_authorizes(records[0], wire_ip, domain, lookup, sender_local)
    result.evidence["evaluation"] = {
        "by": f"pyspf {pyspf.__version__} check_host (strict), sender {sender_local}@{domain}, client {wire_ip}",
        "result": verdict.result, "decided_by": verdict.mechanism, "explanation": verdict.why,
        "dns_terms": verdict.dns_terms, "void_lookups": verdict.void_lookups, "dns_queries": verdict.steps}
    result.observed = {"record": records[0], "result": verdict.result, "decided_by": verdict.mechanism}
    quoted = f"SPF record \"{records[0]}\" on {domain}"
    if verdict.result in ("temperror", "error"):
        result.unmeasured.append(f"RFC 7208 evaluation of the {quoted} for {wire_ip} did not finish "
                                 f"({verdict.result}): {verdict.why}")
        return result
    if verdict.result == "permerror":
        counts = (f"{verdict.dns_terms} DNS-querying terms counted (limit {MAX_DNS_TERMS}), {verdict.void_lookups} "
                  f"void lookups (limit {pyspf.MAX_VOID_LOOKUPS})")
        result.problems.append(f"the {quoted} is broken: RFC 7208 evaluation ends in permerror ({verdict.why}; "
                               f"{counts}), so receivers cannot use it for {wire_ip} or any other sender: {publish}")
        return result
    if not verdict.authorized:
        lookalikes = [
            mechanism.text
            for mechanism in spf.mechanisms
            if mechanism.name == "ip4" and wire_ip in mechanism.value and mechanism.value != wire_ip
        ]
        hint = f"; {', '.join(lookalikes)} only looks like {wire_ip} (different address)" if lookalikes else ""
        decided = f"decided by '{verdict.mechanism}'" if verdict.mechanism else "no term matched"
        result.problems.append(
            f"the {quoted} does not authorise {wire_ip}: RFC 7208 evaluation gives {verdict.result}, {decided}{hint}; "
            f"expected pass through ip4:{wire_ip} (or a CIDR covering it, or a/mx resolving to it): {publish}"
        )
    end = effective_all(spf, domain, lookup)
    qualifier, where, problem = end.qualifier, end.where, end.problem
    result.evidence["policy_ends"] = {"all": f"{qualifier}all" if qualifier else None, "record_of": where}
    if end.unmeasured:
        result.unmeasured.append(f"the end of the {quoted} (through redirect=) could not be read: {problem}")
    elif qualifier != all_qualifier:
        ending = f"'{qualifier}all'" if qualifier else "no 'all' mechanism" + (f" ({problem})" if problem else "")
        via = f" (the record of {where}, reached through redirect=)" if where != domain else ""
        result.problems.append(
            f"the {quoted} ends with {ending}{via}; the docs publish '{all_qualifier}all', so that receivers reject "
            f"mail from other addresses: {publish}"
        )
    return result
