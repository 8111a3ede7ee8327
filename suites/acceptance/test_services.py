"""Service acceptance from a client's point of view (demo-wiab.md › Trying Things Out; helm-prod.md).

Requests go to the public names under the site's domain. With a wire_ip (inventory or --wire-ip)
the probes connect to that address while sending the name as SNI and Host and verifying the
certificate against it, so these checks judge the services, not public DNS (DNS has its own checks).
"""

from __future__ import annotations

from wirecheck import cannot_measure, expect, fail, not_applicable, not_evaluated, record, requirement
from wirecheck.probes.http import csp_allows, http_get, parse_csp, websocket_upgrade
from wirecheck.probes.stun import stun_binding_tcp, stun_binding_udp

INTERNAL_PATHS = ["/i/status", "/i/users", "/i/teams", "/i/connections", "/i/clients", "/i/provider",
                  "/i/legalhold", "/i/billing"]


def _domain(site) -> str:
    if not site.domain:
        not_evaluated("the Wire domain is not known", option="--domain (or target_domain in the inventory)")
    return site.domain


def _timeout(spec) -> float:
    return float(spec.get("timeout_s", 10))


def _get(site, spec, name: str, path: str = "/"):
    domain = _domain(site)
    res = http_get(f"https://{name}.{domain}{path}", connect_to=site.wire_ip, timeout=_timeout(spec),
                   ca_bundle=site.ca_bundle)
    record(**{name: res.evidence()})
    return res


def _charts(site) -> list[str] | None:
    charts = site.vars.get("charts_to_deploy")
    return [str(c) for c in charts] if isinstance(charts, list) else None


def _flag(site, key: str) -> bool | None:
    value = site.vars.get(key)
    if value is None:
        return None
    return value if isinstance(value, bool) else str(value).lower() in ("true", "yes", "1")


@requirement("ACC-NGINZ-STATUS")
def test_nginz_status(site, spec):
    res = _get(site, spec, "nginz-https", "/status")
    expect(res.status if res.ok else res.describe(), f"GET https://nginz-https.{site.domain}/status",
           method="requests GET with certificate verification").equals(int(spec.get("expected_status", 200)))


@requirement("ACC-WEBAPP")
def test_webapp(site, spec):
    domain = _domain(site)
    res = _get(site, spec, "webapp")
    expect(res.status if res.ok else res.describe(), f"GET https://webapp.{domain}/",
           method="requests GET with certificate verification").satisfies(
        lambda s: isinstance(s, int) and 200 <= s < 400, "HTTP 2xx or 3xx")
    csp = res.headers.get("content-security-policy")
    if csp is None:
        record(csp="no Content-Security-Policy header: the browser restricts nothing")
        return
    policy = parse_csp(csp)
    sources = policy.get("connect-src", policy.get("default-src", []))
    missing = [u for u in (f"https://assets.{domain}", f"https://nginz-https.{domain}", f"wss://nginz-ssl.{domain}")
               if not csp_allows(sources, u)]
    record(connect_src=sources)
    expect(missing, "origins the webapp CSP connect-src does not allow",
           method="Content-Security-Policy header of the webapp").is_empty(
        f"connect-src allows https://*.{domain} and wss://*.{domain} (CSP_EXTRA_CONNECT_SRC)")


@requirement("ACC-STATIC-SITES")
def test_static_sites(site, spec):
    domain = _domain(site)
    charts = _charts(site)
    teams = _flag(site, "team_settings_enabled")
    if teams is None:
        teams = charts is None or "team-settings" in charts
    wanted = [("account", "2xx/3xx")] + ([("teams", "2xx/3xx")] if teams else []) + [("assets", "<500")]
    if not teams:
        record(teams="not checked: team-settings is not installed at this site")
    problems = []
    for name, rule in wanted:
        res = _get(site, spec, name)
        if not res.ok:
            problems.append(res.describe())
        elif rule == "<500" and res.status >= 500 or rule == "2xx/3xx" and not 200 <= res.status < 400:
            problems.append(f"https://{name}.{domain}/: HTTP {res.status} (want {rule})")
    expect(problems, "static sites not answering as expected",
           method="requests GET with certificate verification").is_empty(
        "account and teams 2xx/3xx, assets any status < 500, all over valid TLS")


@requirement("ACC-WEBSOCKET")
def test_websocket(site, spec):
    domain = _domain(site)
    url = f"wss://nginz-ssl.{domain}{spec.get('path', '/await')}"
    res = websocket_upgrade(url, connect_to=site.wire_ip, timeout=_timeout(spec), ca_bundle=site.ca_bundle)
    record(websocket=res.evidence())
    if res.status == 101 and not res.accept_valid:
        fail(observed=res.describe(), expected="101 with Sec-WebSocket-Accept derived from our key",
             message=f"{url}: upgrade answered with a wrong Sec-WebSocket-Accept", method="raw TLS socket upgrade")
    expect(res.status_line if res.reachable else res.describe(), f"HTTP answer to an Upgrade request on {url}",
           method="raw TLS socket, GET with Upgrade: websocket").satisfies(
        lambda _: res.reachable, "any HTTP status line (101 accepted; 401/426 without credentials)")


def _turn_servers(site) -> list[str]:
    configured = site.vars.get("turn_servers")
    if isinstance(configured, list) and configured:
        return [str(x) for x in configured]
    restund = [t.address for t in site.targets_with_role("restund", "coturn")]
    if restund:
        return restund
    return [site.wire_ip] if site.wire_ip else []


@requirement("ACC-TURN-STUN")
def test_turn_stun(site, spec):
    if _flag(site, "calling_enabled") is False:
        not_applicable("calling is disabled at this site (calling_enabled: false)")
    servers = _turn_servers(site)
    if not servers:
        not_evaluated("no TURN address: no [restund] hosts, turn_servers or wire_ip", option="--wire-ip")
    port = int(spec.get("port", 3478))
    timeout = float(spec.get("stun_timeout_s", 3))
    problems, seen = [], {}
    for server in servers:
        for res in (stun_binding_udp(server, port, timeout=timeout, attempts=3),
                    stun_binding_tcp(server, port, timeout=timeout)):
            seen[f"{res.transport}://{server}:{port}"] = res.evidence()
            if not res.ok:
                problems.append(res.describe())
    record(stun=seen)
    mapped = sorted({f"{e['mapped_address']}:{e['mapped_port']}" for e in seen.values() if e.get("mapped_address")})
    record(mapped_addresses=mapped)
    expect(problems, "TURN endpoints without a valid STUN Binding success response",
           method="RFC 5389 Binding request over UDP and TCP, XOR-MAPPED-ADDRESS decoded").is_empty(
        f"Binding success (0x0101, magic cookie, our transaction id, XOR-MAPPED-ADDRESS) on UDP and TCP {port}")


@requirement("ACC-SFTD-HTTPS")
def test_sftd_https(site, spec):
    if site.profile != "demo":
        sft = _flag(site, "sft_enabled")
        charts = _charts(site)
        if sft is False or sft is None and (charts is None or "sftd" not in charts):
            not_applicable("SFT (conference calling) is not used at this site "
                           "(sft_enabled is not true and charts_to_deploy has no sftd)")
    res = _get(site, spec, "sftd")
    expect(res.status if res.ok else res.describe(), f"GET https://sftd.{site.domain}/",
           method="requests GET with certificate verification").satisfies(
        lambda s: isinstance(s, int) and s < 500, "any HTTP status below 500 over valid TLS")


@requirement("ACC-INTERNAL-ENDPOINTS-BLOCKED")
def test_internal_endpoints_blocked(site, spec):
    domain = _domain(site)
    exposed, answers, unreachable = [], {}, []
    for path in spec.get("paths", INTERNAL_PATHS):
        res = http_get(f"https://nginz-https.{domain}{path}", connect_to=site.wire_ip, timeout=_timeout(spec),
                       ca_bundle=site.ca_bundle)
        answers[path] = res.status if res.ok else f"{res.error_kind}: {res.error}"
        if not res.ok:
            unreachable.append(path)
        elif res.status < 400:
            exposed.append(f"{path} → HTTP {res.status}")
    record(answers=answers)
    if unreachable and len(unreachable) == len(answers):
        cannot_measure(f"nginz-https.{domain} did not answer at all, so exposure cannot be judged")
    expect(exposed, "internal /i/ routes answering from outside",
           method="GET https://nginz-https.<domain>/i/… from outside").is_empty("every /i/ path answers 4xx/5xx")
