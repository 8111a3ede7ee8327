"""SPF (RFC 7208): parse a record into mechanisms and decide whether it authorises an address.

Authorisation is decided the way a receiving mail server does it: mechanisms are evaluated left to
right and the first match decides.  `ip4:`/`ip6:` match by network containment (exact address or
CIDR), never by text, so `ip4:1.2.3.45` does not authorise 1.2.3.4.  `a`, `mx`, `include:` and
`redirect=` are resolved through a lookup function (see `wirecheck.probes.dns.DnsLookup`), with the
RFC's limit of 10 DNS-querying terms.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

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
    if mechanism.cidr4 is not None and mechanism.cidr4 > 32:
        return "IPv4 prefix length above 32"
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
    result: str  # pass | fail | softfail | neutral | permerror | temperror
    mechanism: str | None  # the term that decided, as written ("ip4:1.2.3.0/24"), None for the default
    why: str  # in words, with the addresses compared
    steps: list[str] = field(default_factory=list)  # every term looked at, for the evidence

    @property
    def authorized(self) -> bool:
        return self.result == "pass"


class _Evaluation:
    def __init__(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, lookup: Lookup) -> None:
        self.ip = ip
        self.lookup = lookup
        self.dns_terms = 0
        self.steps: list[str] = []

    def count(self, term: str) -> None:
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise _PermError(f"more than {MAX_DNS_TERMS} DNS-querying terms (at {term!r})")

    def addresses(self, name: str) -> list[str]:
        rdtype = "A" if self.ip.version == 4 else "AAAA"
        answer = self.lookup(name, rdtype)
        if answer.status in UNMEASURED:
            raise _TempError(f"{name} {rdtype}: {answer.status} ({answer.error})")
        return answer.addresses

    def covered_by(self, addresses: list[str], mechanism: Mechanism) -> str | None:
        prefix = mechanism.cidr4 if self.ip.version == 4 else mechanism.cidr6
        for address in addresses:
            ip = ipaddress.ip_address(address)
            if ip.version != self.ip.version:
                continue
            network = ipaddress.ip_network(f"{ip}/{prefix if prefix is not None else ip.max_prefixlen}", strict=False)
            if self.ip in network:
                return str(network) if prefix is not None else address
        return None

    def check_host(self, domain: str, record: Spf, depth: int) -> tuple[str, str | None, str]:
        if depth > MAX_DNS_TERMS:
            raise _PermError("include/redirect nesting too deep")
        if record.errors:
            raise _PermError(f"record for {domain} is malformed: {'; '.join(record.errors)}")
        for mechanism in record.mechanisms:
            matched, detail = self.matches(domain, mechanism, depth)
            self.steps.append(f"{domain}: {mechanism.text} -> {'match' if matched else 'no match'} ({detail})")
            if matched:
                return mechanism.result, mechanism.text, detail
        if "redirect" in record.modifiers:
            target = _expand(record.modifiers["redirect"], domain)
            self.count(f"redirect={target}")
            inner = fetch_spf(target, self.lookup)
            if inner is None:
                raise _PermError(f"redirect={target}: no SPF record there")
            return self.check_host(target, inner, depth + 1)
        return "neutral", None, "no mechanism matched and there is no 'all' (default result neutral)"

    def matches(self, domain: str, mechanism: Mechanism, depth: int) -> tuple[bool, str]:
        name = mechanism.name
        target = _expand(mechanism.value, domain) if mechanism.value else domain
        if name == "all":
            return True, "'all' matches every address"
        if name in ("ip4", "ip6"):
            network = _network(mechanism)
            if self.ip.version != network.version:
                return False, f"{self.ip} is not IPv{network.version}"
            inside = self.ip in network
            return inside, f"{self.ip} {'is' if inside else 'is not'} in {network}"
        if name == "a":
            self.count(mechanism.text)
            addresses = self.addresses(target)
            hit = self.covered_by(addresses, mechanism)
            shown = ", ".join(addresses) or "no address"
            return hit is not None, f"{target} resolves to {shown}"
        if name == "mx":
            self.count(mechanism.text)
            answer = self.lookup(target, "MX")
            if answer.status in UNMEASURED:
                raise _TempError(f"{target} MX: {answer.status} ({answer.error})")
            exchanges = [str(rdata.exchange).rstrip(".") for rdata in answer.rdatas][:10]  # type: ignore[attr-defined]
            seen = []
            for exchange in exchanges:
                addresses = self.addresses(exchange)
                seen.append(f"{exchange} = {', '.join(addresses) or 'no address'}")
                if self.covered_by(addresses, mechanism):
                    return True, f"MX of {target}: {'; '.join(seen)}"
            return False, f"MX of {target}: {'; '.join(seen) or 'none'}"
        if name == "include":
            self.count(mechanism.text)
            inner = fetch_spf(target, self.lookup)
            if inner is None:
                raise _PermError(f"include:{target}: no SPF record there")
            result, _, detail = self.check_host(target, inner, depth + 1)
            return result == "pass", f"include:{target} gave {result} ({detail})"
        if name == "exists":
            self.count(mechanism.text)
            if "%" in mechanism.value:
                return False, "macro in exists: not evaluated"
            return bool(self.lookup(target, "A").addresses), f"exists:{target}"
        # ptr is deprecated (RFC 7208 §5.5) and depends on reverse DNS we do not control.
        self.count(mechanism.text)
        return False, "ptr is deprecated and not evaluated"


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


def _expand(value: str, domain: str) -> str:
    """Only the %{d} macro is expanded; other macros stay as written."""
    return value.replace("%{d}", domain).rstrip(".")


def fetch_spf(domain: str, lookup: Lookup) -> Spf | None:
    """The SPF record of `domain` (None if there is none). Raises on ambiguity or resolver trouble."""
    answer = lookup(domain, "TXT")
    if answer.status in UNMEASURED:
        raise _TempError(f"{domain} TXT: {answer.status} ({answer.error})")
    records = [text for text in answer.texts if is_spf(text)]
    if len(records) > 1:
        raise _PermError(f"{domain} has {len(records)} SPF records (RFC 7208 allows one)")
    return parse_spf(records[0]) if records else None


def spf_authorizes(spf: Spf, ip: str, domain: str, lookup: Lookup) -> SpfVerdict:
    """Would a receiver accept mail from `ip` for `domain` with this SPF record? (RFC 7208 check_host)"""
    evaluation = _Evaluation(ipaddress.ip_address(ip), lookup)
    try:
        result, mechanism, why = evaluation.check_host(domain, spf, 0)
    except _PermError as exc:
        return SpfVerdict("permerror", None, str(exc), evaluation.steps)
    except _TempError as exc:
        return SpfVerdict("temperror", None, str(exc), evaluation.steps)
    return SpfVerdict(result, mechanism, why, evaluation.steps)


def suggested_record(wire_ip: str) -> str:
    return f"v=spf1 a mx ip4:{wire_ip} -all"


def assess_spf(domain: str, wire_ip: str, lookup: DnsLookup, all_qualifier: str = "-") -> Assessment:
    """DNS-SPF: one SPF record on `domain` that authorises `wire_ip` and ends like the docs' record."""
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
        result.problems.append(f"{domain} has no SPF record (TXT found: {answer.texts or 'none'}): {publish}")
        return result
    if len(records) > 1:
        result.problems.append(f"{domain} has {len(records)} SPF records {records} (RFC 7208 allows one): keep one, {publish}")
        return result
    spf = parse_spf(records[0])
    result.evidence["record"] = records[0]
    result.evidence["mechanisms"] = [mechanism.text for mechanism in spf.mechanisms]
    if not spf.valid:
        result.problems.append(f"SPF record \"{records[0]}\" on {domain} is malformed ({'; '.join(spf.errors)}): {publish}")
        return result
    verdict = spf_authorizes(spf, wire_ip, domain, lookup)
    result.evidence["evaluation"] = verdict.steps
    result.evidence["result"] = verdict.result
    result.evidence["decided_by"] = verdict.mechanism
    result.observed = {"record": records[0], "result": verdict.result, "decided_by": verdict.mechanism}
    if verdict.result == "temperror":
        result.unmeasured.append(f"SPF evaluation for {domain}: {verdict.why}")
        return result
    if not verdict.authorized:
        lookalikes = [
            mechanism.text
            for mechanism in spf.mechanisms
            if mechanism.name == "ip4" and wire_ip in mechanism.value and mechanism.value != wire_ip
        ]
        hint = (
            f"; {', '.join(lookalikes)} only looks like {wire_ip} (different address)" if lookalikes else ""
        )
        decided = f"decided by '{verdict.mechanism}'" if verdict.mechanism else "nothing matched"
        result.problems.append(
            f"SPF record \"{records[0]}\" on {domain} does not authorise {wire_ip}: result {verdict.result}, "
            f"{decided} ({verdict.why}){hint}; found {', '.join(m.text for m in spf.mechanisms)}, "
            f"expected ip4:{wire_ip} (or a CIDR covering it, or a/mx resolving to it): {publish}"
        )
    if spf.all_qualifier != all_qualifier:
        ending = f"'{spf.all_qualifier}all'" if spf.all_qualifier else "no 'all' mechanism"
        result.problems.append(
            f"SPF record \"{records[0]}\" on {domain} ends with {ending}; the docs publish '{all_qualifier}all': {publish}"
        )
    return result
