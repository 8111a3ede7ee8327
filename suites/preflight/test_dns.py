"""DNS before install (demo-wiab.md › DNS Requirements; helm-prod.md › How to set up DNS records;
configure-federation.md › DNS setup for federation).

Lookups go to the resolvers given with --nameserver (IP or IP:port, repeatable) or the system's,
with bounded timeouts; every answer in the evidence says which resolver gave it and which CNAME
chain it followed.  A resolver that does not answer makes a requirement `error`, never `fail`.
"""

from __future__ import annotations

import ipaddress
import shlex

from wirecheck import cannot_measure, expect, fail, not_applicable, not_evaluated, record, requirement
from wirecheck.coordination import register_commands
from wirecheck.outcome import current
from wirecheck.probes.dns import (
    ACME_ACCOUNT_INPUT,
    UNMEASURED,
    Assessment,
    DnsLookup,
    address_set,
    assess_aaaa,
    assess_caa,
    assess_exist_and_agree,
    assess_points_to,
    assess_srv,
    caa_policies,
)
from wirecheck.probes.spf import assess_spf
from wirecheck.public_ip import effective_wire_ip

# Used until the catalog carries these parameters (keys as proposed for catalog.yaml).
DEMO_NAMES = ["nginz-https", "nginz-ssl", "assets", "webapp", "account", "teams", "sftd"]
PROD_CORE_NAMES = ["nginz-https", "nginz-ssl", "webapp", "assets", "account"]
PROD_ALTERNATIVES = {"assets": "s3"}
FEDERATOR_SERVICE = "_wire-server-federator._tcp"
_LOOKUPS: dict[tuple, DnsLookup] = {}


# --- shared helpers -------------------------------------------------------------------------------


def _truthy(value: object) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "yes", "1", "on")


def _lookup(site) -> DnsLookup:
    """One lookup cache per resolver setting for the whole run (checks share answers)."""
    timeout = float(site.option("dns_timeout") or 2.0)
    tries = int(site.option("dns_tries") or 2)
    key = (tuple(site.nameservers), timeout, tries)
    if key not in _LOOKUPS:
        _LOOKUPS[key] = DnsLookup(site.nameservers or None, timeout=timeout, tries=tries)
    return _LOOKUPS[key]


def _method(lookup: DnsLookup, what: str) -> str:
    return f"dnspython {what} via {lookup.resolvers_text} (timeout {lookup.timeout:g}s x {lookup.tries} tries)"


def _domain(site) -> str:
    if not site.domain:
        not_evaluated("the Wire domain is not known", option="--domain (or target_domain in the inventory)")
    return site.domain


def _wire_ip(site, what: str = "the public IP of the installation") -> str:
    """wire_ip as given, else (demo) as the deploy node determines it, as Wire's verify_wire_ip.yml does."""
    public = effective_wire_ip(site)
    if public.known:
        if not site.wire_ip:
            record(wire_ip=public.address, wire_ip_source=public.source)
        return str(public.address)
    if public.problem:
        cannot_measure(f"{what} is not known: {public.problem}")
    if site.profile == "demo" and site.targets_with_role("deploy_node"):
        cannot_measure(f"{what} is not known: {public.unmeasured}")
    not_evaluated(f"{what} is not known", option="--wire-ip (or wire_ip in the inventory)")
    raise AssertionError  # not reached


def _conclude(result: Assessment, what: str, method: str, summary: str | None = None,
              expected: str | None = None) -> None:
    """The verdict of an assessment: problems -> fail, unmeasured -> error, else pass; with ``summary``
    the pass reads as that sentence (``expected`` what was required) and the structured observations
    stay in the observed field and the evidence."""
    record(details=result.evidence)
    if result.notes:
        record(notes=result.notes)
    if result.problems:
        text = "; ".join(result.problems)
        if result.unmeasured:
            text += "; also unmeasured: " + "; ".join(result.unmeasured)
        fail(text, observed=result.observed, expected=result.expected, method=method)
    if result.unmeasured:
        cannot_measure("; ".join(result.unmeasured), method=method)
    # The assessment has decided; this states what was observed against what was required.
    if summary is None:
        expect(result.observed, what, method=method).satisfies(lambda _observed: True, result.expected)
        return
    expect(summary, what, method=method).satisfies(lambda _summary: True, expected or str(result.expected))
    current().observed = result.observed


def _federation(site) -> tuple[str, str] | None:
    """(backend domain, infrastructure domain) when federation is configured, else None."""
    vars_ = site.vars
    enabled = site.option("federation") or _truthy(vars_.get("federation_enabled", False)) or _truthy(
        vars_.get("federation", False)
    )
    if not enabled:
        return None
    domain = _domain(site)
    backend = str(vars_.get("federation_domain") or vars_.get("backend_domain") or domain)
    infra = str(vars_.get("federator_domain") or f"federator.{domain}")
    return backend, infra


# --- checks ---------------------------------------------------------------------------------------


@requirement("DNS-DEMO-RECORDS")
def test_demo_records(site, spec):
    domain = _domain(site)
    lookup = _lookup(site)
    names = [f"{label}.{domain}" for label in spec.get("names", DEMO_NAMES)]
    answers = lookup.many(names, "A")
    public = effective_wire_ip(site)
    if public.known:
        record(wire_ip=public.address, wire_ip_source=public.source)
        _conclude(assess_points_to(answers, {str(public.address)}), "A records", _method(lookup, "A lookups"))
        return
    # wire_ip is empty and the node cannot say its address: names that do not exist, or that disagree, are
    # still wrong (Wire's verify_dns.yml fails on a missing name whatever wire_ip is)
    result = assess_exist_and_agree(answers)
    why = public.problem or public.unmeasured
    record(wire_ip="not determined", wire_ip_problem=why)
    if not result.problems and not result.unmeasured:
        shown = ", ".join(sorted(set().union(*(address_set(a) for a in answers.values()))))
        cannot_measure(f"every name exists and all point to {shown}, but whether that is the node's public "
                       f"address is unknown: {why}", method=_method(lookup, "A lookups"))
    _conclude(result, "A records", _method(lookup, "A lookups"))


@requirement("DNS-SPF")
def test_spf(site, spec):
    domain, wire_ip = _domain(site), _wire_ip(site)
    lookup = _lookup(site)
    result = assess_spf(domain, wire_ip, lookup, all_qualifier=spec.get("all_qualifier", "-"),
                        sender_local=spec.get("sender_local", "postmaster"))
    _conclude(result, "SPF", _method(lookup, "TXT lookup and RFC 7208 check_host by pyspf"))


@requirement("DNS-PROD-CORE")
def test_prod_core(site, spec):
    domain = _domain(site)
    lookup = _lookup(site)
    labels = list(spec.get("names", PROD_CORE_NAMES))
    alternatives = dict(spec.get("alternatives", PROD_ALTERNATIVES))
    names = [f"{label}.{domain}" for label in labels]
    answers = lookup.many(names + [f"{alt}.{domain}" for alt in alternatives.values()], "A")
    chosen = {}
    for label in labels:
        name = f"{label}.{domain}"
        alt = alternatives.get(label)
        if alt and answers[name].status in ("nxdomain", "nodata") and answers[f"{alt}.{domain}"].ok:
            chosen[f"{alt}.{domain}"] = answers[f"{alt}.{domain}"]
            record(**{f"{label}_alternative": f"{alt}.{domain} used instead of {name}"})
        else:
            chosen[name] = answers[name]
    if not site.wire_ip:
        found = set().union(*(address_set(a) for a in chosen.values() if a.ok))
        if len(found) > 1:
            fail(f"the core names point to {len(found)} different addresses {sorted(found)}; they must all be "
                 "the one ingress IP", observed={n: a.addresses for n, a in chosen.items()},
                 expected="one ingress IP", method=_method(lookup, "A lookups"))
        _wire_ip(site, "the ingress IP the core names must point to")
    result = assess_points_to(chosen, {site.wire_ip})
    _conclude(result, "A records", _method(lookup, "A lookups"))


@requirement("DNS-PROD-OPTIONAL")
def test_prod_optional(site, spec):
    domain, wire_ip = _domain(site), _wire_ip(site, "the ingress IP")
    lookup = _lookup(site)
    declared = {
        "teams": _truthy(site.vars.get("teams_enabled", False)),
        "federator": _federation(site) is not None,
    }
    answers = lookup.many([f"{label}.{domain}" for label in declared], "A")
    wanted = {}
    for label, used in declared.items():
        answer = answers[f"{label}.{domain}"]
        # A name that exists is checked even when the feature is not declared: a wrong record is wrong.
        if used or answer.ok or answer.status in UNMEASURED:
            wanted[answer.name] = answer
    record(features={label: ("declared" if used else "not declared") for label, used in declared.items()})
    if not wanted:
        not_applicable("neither team settings (teams_enabled) nor federation is configured, and neither "
                       "name exists")
    _conclude(assess_points_to(wanted, {wire_ip}), "A records", _method(lookup, "A lookups"))


@requirement("DNS-SFTD")
def test_sftd(site, spec):
    domain = _domain(site)
    lookup = _lookup(site)
    name = f"sftd.{domain}"
    answer = lookup(name, "A")
    sft_declared = site.profile == "demo" or _truthy(site.vars.get("sft_enabled", False))
    if not sft_declared and answer.status in ("nxdomain", "nodata"):
        not_applicable("SFT is not declared (sft_enabled) and sftd has no record")
    if answer.status in ("nxdomain", "nodata") and not effective_wire_ip(site).known:
        # a missing name is wrong whatever the address it should have (Wire's verify_dns.yml)
        _conclude(assess_exist_and_agree({name: answer}), "A record", _method(lookup, "A lookup"))
    wire_ip = _wire_ip(site, "the ingress IP")
    sft_ips = {str(ip) for ip in site.vars.get("sft_external_ips", []) or []}
    record(lookup=answer.evidence(), sft_external_ips=sorted(sft_ips))
    method = _method(lookup, "A lookup")
    if answer.status in UNMEASURED:
        cannot_measure(f"{name} A: {answer.status} ({answer.error})", method=method)
    if not answer.ok:
        _conclude(assess_points_to({name: answer}, {wire_ip}), "A record", method)
    found = address_set(answer)
    if found == {wire_ip}:
        placement = "ingress: sftd points to the ingress IP (SFT signalling through the ingress)"
    elif sft_ips and found <= sft_ips:
        placement = "SFT nodes: sftd lists the external IPs of the SFT servers"
    else:
        placement = "neither documented placement"
    record(placement=placement)
    allowed = {wire_ip} | sft_ips
    if not found <= allowed:
        fail(f"{name} resolves to {', '.join(sorted(found))} (resolver {answer.resolver}"
             f"{', CNAME ' + ' -> '.join(answer.cname_chain) if answer.cname_chain else ''}); expected the ingress "
             f"IP {wire_ip}" + (f" or SFT external IPs {sorted(sft_ips)}" if sft_ips else "") +
             f": change `{answer.canonical_name}. IN A` accordingly",
             observed=sorted(found), expected=sorted(allowed), method=method)
    expect(sorted(found), "sftd addresses", method=method).satisfies(
        lambda addrs: set(addrs) <= allowed, f"subset of {sorted(allowed)} ({placement})")


@requirement("DNS-RESTUND")
def test_restund(site, spec):
    hosts = sorted(site.targets_with_role("restund"), key=lambda t: t.name)
    if not hosts:
        not_applicable("no host in the [restund] group")
    domain = _domain(site)
    lookup = _lookup(site)
    expected = {}
    for index, host in enumerate(hosts, start=1):
        public = host.vars.get("restund_public_ip") or host.vars.get("public_ip") or host.address
        expected[f"restund{index:02d}.{domain}"] = str(public)
    answers = lookup.many(list(expected), "A")
    result = Assessment()
    for name, answer in answers.items():
        part = assess_points_to({name: answer}, {expected[name]})
        result.problems += part.problems
        result.unmeasured += part.unmeasured
        result.evidence.update(part.evidence)
    seen: dict[str, str] = {}
    for name, answer in answers.items():
        for address in answer.addresses:
            if address in seen:
                result.problems.append(f"{name} and {seen[address]} both point to {address}; each restund server "
                                       "needs its own name and address")
            seen[address] = name
    result.observed = {name: answer.addresses or answer.status for name, answer in answers.items()}
    result.expected = {name: [address] for name, address in expected.items()}
    if not result.problems and not result.unmeasured:
        result.observed = {name: answer.addresses for name, answer in answers.items()}
    _conclude(result, "restund A records", _method(lookup, "A lookups"))


@requirement("DNS-FED-SRV")
def test_federation_srv(site, spec):
    federation = _federation(site)
    if federation is None:
        not_applicable("federation is not enabled (federation_enabled in the inventory, or --federation)")
    backend, infra = federation
    lookup = _lookup(site)
    owner = f"{spec.get('service', FEDERATOR_SERVICE)}.{backend}"
    answer = lookup(owner, "SRV")
    record(ttl=answer.ttl)
    _conclude(assess_srv(owner, infra, int(spec.get("port", 443)), answer), "SRV record", _method(lookup, "SRV lookup"))


@requirement("DNS-FED-A")
def test_federation_a(site, spec):
    federation = _federation(site)
    if federation is None:
        not_applicable("federation is not enabled (federation_enabled in the inventory, or --federation)")
    backend, infra = federation
    wire_ip = _wire_ip(site, "the ingress IP")
    lookup = _lookup(site)
    srv = lookup(f"{spec.get('service', FEDERATOR_SERVICE)}.{backend}", "SRV")
    target = str(srv.rdatas[0].target).rstrip(".") if srv.ok else infra  # type: ignore[attr-defined]
    record(srv_target=target if srv.ok else f"no SRV record ({srv.status}); checked {infra}")
    _conclude(assess_points_to({target: lookup(target, "A")}, {wire_ip}), "federator A record",
              _method(lookup, "SRV and A lookups"))


def _wire_names(site, domain: str) -> list[str]:
    if site.profile == "demo":
        labels = list(DEMO_NAMES)
    else:
        labels = list(PROD_CORE_NAMES)
        if _truthy(site.vars.get("teams_enabled", False)):
            labels.append("teams")
        if _truthy(site.vars.get("sft_enabled", False)):
            labels.append("sftd")
        if _federation(site):
            labels.append("federator")
    return [f"{label}.{domain}" for label in labels]


@requirement("IMP-CAA")
def test_caa_allows_letsencrypt(site, spec):
    if not site.use_cert_manager:
        not_applicable("cert-manager is not used (use_cert_manager: false), so no Let's Encrypt issuance")
    domain = _domain(site)
    lookup = _lookup(site)
    issuer = spec.get("issuer", "letsencrypt.org")
    # cert-manager's ClusterIssuer in Wire's charts solves HTTP-01; its ACME account exists only once it ran
    challenge = str(site.vars.get("acme_challenge") or spec.get("challenge", "http-01"))
    account = site.vars.get("acme_account_uri") or spec.get("acme_account_uri")
    names = _wire_names(site, domain)
    policies = caa_policies(names, lookup)
    result = assess_caa(policies, issuer, challenge, str(account) if account else None)
    method = _method(lookup, f"CAA lookups climbing to the top-level domain, RFC 8659/8657 as {issuer} applies them")
    record(challenge=challenge, acme_account_uri=account)
    if not result.problems and result.unmeasured and all(
            ACME_ACCOUNT_INPUT in text for text in result.unmeasured):
        record(details=result.evidence)
        not_evaluated("; ".join(result.unmeasured), option=f"{ACME_ACCOUNT_INPUT} in the inventory")
    _conclude(result, "CAA", method)


@requirement("IMP-AAAA")
def test_no_stale_aaaa(site, spec):
    domain = _domain(site)
    lookup = _lookup(site)
    port = int(site.option("tls_port") or 443)
    answers = lookup.many(_wire_names(site, domain), "AAAA")
    _conclude(assess_aaaa(answers, port, float(spec.get("connect_timeout_s", 3))), "AAAA records",
              _method(lookup, f"AAAA lookups, TCP connect to each IPv6 address on {port}"))


def _ipv4_column(text: str) -> list[str]:
    """The addresses in getent's output (first column, valid IPv4 only)."""
    out = []
    for line in text.splitlines():
        word = (line.split() or [""])[0]
        try:
            out.append(str(ipaddress.IPv4Address(word)))
        except ValueError:
            continue
    return out


def resolver_command(spec) -> tuple[str, str, float]:
    """IMP-RESOLVER's question: (name, command, its time limit)."""
    name = spec.get("probe_name", "download.docker.com")
    timeout = float(spec.get("timeout_s", 10))
    return name, f"timeout {timeout:g} getent ahostsv4 {shlex.quote(name)}", timeout + 5


# asked of every host before the check runs, with the other checks' commands (one round trip)
def _resolver_commands(target, spec) -> list[tuple[str, bool, float | None]]:
    _name, command, limit = resolver_command(spec)
    return [(command, False, limit), ("cat -- /etc/resolv.conf", False, None)]     # the second: read_file


register_commands("IMP-RESOLVER", _resolver_commands)


@requirement("IMP-RESOLVER")
def test_node_resolver(target, spec):
    timeout = float(spec.get("timeout_s", 10))
    name, command, limit = resolver_command(spec)
    res = target.run(command, timeout=limit)
    resolv = target.read_file("/etc/resolv.conf") or ""
    servers = [line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver") and len(line.split()) > 1]
    addresses = _ipv4_column(res.stdout) if res.rc == 0 else []
    record(resolv_conf_nameservers=servers, getent=res.stdout.strip().splitlines()[:3])
    problems = []
    # getent: 0 found (with addresses), 2 not found; timeout: 124. Anything else did not ask DNS.
    if res.rc == 0 and not addresses:
        cannot_measure(f"`getent ahostsv4 {name}` succeeded on {target.name} but printed no address: "
                       f"{res.stdout.strip()[:80]!r}")
    if res.rc not in (0, 2, 124):
        cannot_measure(f"`timeout {timeout:g} getent ahostsv4 {name}` could not run on {target.name} "
                       f"(exit {res.rc}): {(res.stderr.strip().splitlines() or ['no message'])[-1]}")
    if res.rc != 0:
        why = "timed out" if res.rc == 124 else "does not resolve"
        problems.append(f"`getent ahostsv4 {name}` {why} on {target.name}: upstream DNS does not work "
                        f"through {', '.join(servers) or 'no nameserver in /etc/resolv.conf'}")
    if servers and all(server.startswith("127.0.0.53") for server in servers):
        upstream = target.read_file("/run/systemd/resolve/resolv.conf") or ""
        real = [line.split()[1] for line in upstream.splitlines() if line.startswith("nameserver")]
        record(systemd_resolved_upstreams=real)
        if not real:
            problems.append("/etc/resolv.conf only names the 127.0.0.53 stub and /run/systemd/resolve/resolv.conf "
                            "lists no upstream; kubelet's resolvConf needs a non-stub file or CoreDNS loops")
    expect(problems, "resolver", method=f"getent ahostsv4 {name}; /etc/resolv.conf").is_empty(
        "names resolve through a non-stub upstream resolver", "; ".join(problems))
