"""Service acceptance from a client's point of view (demo-wiab.md › Trying Things Out; helm-prod.md).

Requests go to the public names under the site's domain. With a wire_ip (inventory or --wire-ip)
the probes connect to that address while sending the name as SNI and Host and verifying the
certificate against it, so these checks judge the services, not public DNS (DNS has its own checks).
"""

from __future__ import annotations

from wirecheck import cannot_measure, expect, fail, not_applicable, not_evaluated, record, requirement
from wirecheck.probes.http import csp_allows, http_get, parse_csp, websocket_upgrade
from wirecheck.probes.stun import stun_binding_tcp, stun_binding_udp
from wirecheck.turn import turn_addresses

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
    expect(res.observed(), res.target(), method="HTTPS GET with certificate verification").equals(
        int(spec.get("expected_status", 200)))


@requirement("ACC-WEBAPP")
def test_webapp(site, spec):
    domain = _domain(site)
    res = _get(site, spec, "webapp")
    expect(res.observed(), res.target(), method="HTTPS GET with certificate verification").satisfies(
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
    via = f" via {site.wire_ip}" if site.wire_ip else ""
    observed = res.status_line if res.reachable else f"{res.error_kind} error: {res.error}"
    # 101 = accepted; 401/426 without credentials still prove the path to cannon; a 5xx means the
    # ingress answered but the websocket service behind it did not
    expect(observed, f"websocket upgrade {url}{via}", method="raw TLS socket, GET with Upgrade: websocket").satisfies(
        lambda _: res.reachable and res.status < 500, "an HTTP answer below 500 (101 accepted; 401/426 without credentials)")


def _values_turn_hosts(site, spec) -> tuple[list[str] | None, str]:
    """Hosts of brig.turnStatic.v2 in the deployed values (--kubeconfig) or the values files; (None, why not)."""
    import importlib

    from wirecheck.outcome import CannotMeasure, NotEvaluated
    from wirecheck.probes import k8s_config as kc

    C = importlib.import_module("suites.preflight.test_configuration")
    F = importlib.import_module("suites.acceptance.test_federation")
    if not site.kubeconfig and not C.has_values_files(site):
        return None, "no --kubeconfig or --values-dir to read brig's TURN URIs from"
    try:
        src = F.values(site, spec)
    except (CannotMeasure, NotEvaluated) as exc:
        return None, f"brig's values could not be read: {exc}"
    uris = kc.dig(src.get("wire-server") or {}, "brig.turnStatic.v2")
    hosts = [m["host"] for u in (uris if isinstance(uris, list) else [])
             if (m := kc.TURN_URI.match(str(u).strip()))]
    return list(dict.fromkeys(hosts)) or None, f"brig.turnStatic.v2 from {src.method}"


@requirement("ACC-TURN-STUN")
def test_turn_stun(site, spec):
    if _flag(site, "calling_enabled") is False:
        not_applicable("calling is disabled at this site (calling_enabled: false)")
    chosen = turn_addresses(site)
    if any(entry.source.startswith("ansible_host of") for entry in chosen) or not chosen:
        values_hosts, values_source = _values_turn_hosts(site, spec)
        record(brig_turn_uris=values_source)
        if values_hosts:
            chosen = turn_addresses(site, values_hosts, values_source)
    record(turn_addresses=[entry.evidence() for entry in chosen])
    if not chosen:
        not_evaluated("no TURN address: no --turn-ip, no [restund]/[coturn] hosts, no wire_ip and no brig values",
                      option="--turn-ip")
    servers = [entry.address for entry in chosen]
    why = "; ".join(f"{entry.address} ({entry.source})" for entry in chosen)
    port = int(spec.get("port", 3478))
    timeout = float(spec.get("stun_timeout_s", 3))
    problems, seen = [], {}
    for server in servers:
        for res in (stun_binding_udp(server, port, timeout=timeout, attempts=3),
                    stun_binding_tcp(server, port, timeout=timeout)):
            seen[f"{res.transport}://{server}:{port}"] = res.evidence()
            if not res.ok:
                problems.append(res.describe())
    tls_port = site.vars.get("turn_tls_port")  # TURN over TLS (restund/coturn with a certificate), optional
    if tls_port:
        for server in servers:
            res = stun_binding_tcp(server, int(tls_port), timeout=timeout, tls=True,
                                   server_hostname=site.vars.get("turn_tls_name"), ca_bundle=site.ca_bundle)
            seen[f"tls://{server}:{tls_port}"] = res.evidence()
            if not res.ok:
                problems.append(res.describe())
    record(stun=seen)
    mapped = sorted({f"{e['mapped_address']}:{e['mapped_port']}" for e in seen.values() if e.get("mapped_address")})
    record(mapped_addresses=mapped)
    expect(problems, f"TURN endpoints without a valid STUN Binding success response (probed: {why})",
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
    expect(res.observed(), res.target(), method="HTTPS GET with certificate verification").satisfies(
        lambda s: isinstance(s, int) and s < 500, "any HTTP status below 500 over valid TLS")


@requirement("ACC-INTERNAL-ENDPOINTS-BLOCKED")
def test_internal_endpoints_blocked(site, spec):
    domain = _domain(site)
    exposed, answers, unreachable = [], {}, []
    for path in spec.get("paths", INTERNAL_PATHS):
        res = http_get(f"https://nginz-https.{domain}{path}", connect_to=site.wire_ip, timeout=_timeout(spec),
                       ca_bundle=site.ca_bundle)
        answers[path] = res.observed()
        if not res.ok:
            unreachable.append(path)
        elif res.status < 400:
            exposed.append(f"{path} → HTTP {res.status}")
    record(answers=answers)
    if unreachable and len(unreachable) == len(answers):
        cannot_measure(f"nginz-https.{domain} did not answer at all, so exposure cannot be judged")
    expect(exposed, "internal /i/ routes answering from outside",
           method="GET https://nginz-https.<domain>/i/… from outside").is_empty("every /i/ path answers 4xx/5xx")


# ---------------------------------------------------------------------------------------------------
# Demo node: state left by deploy_wiab.yml (demo-wiab.md §3, §6, §7, §14). Host checks on deploy_node.
# Figures below are the playbook's pins as quoted in the catalog entries; a catalog `params` entry
# with the same name overrides them.
# ---------------------------------------------------------------------------------------------------

DEMO_BINARIES = {"helm": ("/usr/local/bin/helm", "version --short", "v3.15.0"),
                 "minikube": ("/usr/local/bin/minikube", "version --short", "v1.35.0"),
                 "kubectl": ("/usr/local/bin/kubectl", "version --client -o json", "v1.28.2")}
DEMO_APT = {"jq": None, "python3-pip": None, "python3-venv": None, "python3-full": None,
            "docker-ce": "5:28.1.1-1~ubuntu.24.04~noble", "docker-ce-cli": "5:28.1.1-1~ubuntu.24.04~noble",
            "containerd.io": "1.7.27-1"}
RULE_COMMENT = "Wire Iptables Rules"
DEMO_DNAT = [("tcp", "443", "31773"), ("tcp", "80", "31772"), ("tcp", "3478", "3478"), ("udp", "3478", "3478"),
             ("udp", "32768:65535", None)]
DEMO_CHARTS = ["fake-aws", "smtp", "rabbitmq", "databases-ephemeral", "postgresql", "reaper", "wire-server",
               "webapp", "account-pages", "team-settings", "ingress-nginx-controller", "coturn", "sftd"]


def _home(target) -> str:
    user = target.user
    if not user:
        not_evaluated("the deploy node's ansible_user is not known", option="ansible_user in the inventory")
    return f"/home/{user}"


def _sh(target, script: str, sudo: bool = False, timeout: float = 30):
    """script's result (its own exit status); CannotMeasure when the shell did not run it to its end."""
    return target.run_marked(script, f"`{script[:60]}`", sudo=sudo, timeout=timeout)


@requirement("DEMO-ACC-PACKAGES")
def test_demo_packages(target, spec):
    import json
    import shlex

    problems: list[str] = []
    seen: dict[str, str] = {}
    for name, (path, args, want) in spec.get("binaries", DEMO_BINARIES).items():
        res = _sh(target, f"{shlex.quote(path)} {args}")
        if res.rc != 0:
            problems.append(f"{name}: {path} missing or failing ({(res.stderr or res.stdout).strip()[:80]})")
            continue
        out = res.stdout.strip()
        if name == "kubectl":
            try:
                out = json.loads(out)["clientVersion"]["gitVersion"]
            except (ValueError, KeyError, TypeError):
                pass
        seen[name] = out
        if not out.startswith(want):
            problems.append(f"{name} {out}, playbook pins {want}")
    apt = spec.get("apt", DEMO_APT)
    res = _sh(target, "dpkg-query -W -f '${Package}\\t${Status}\\t${Version}\\n' " + " ".join(map(shlex.quote, apt)))
    if "dpkg-query: error" in res.stderr:
        cannot_measure(f"dpkg-query failed: {res.stderr.strip()[:200]}")
    installed = {}
    for line in res.stdout.splitlines():
        pkg, _, rest = line.partition("\t")
        status, _, version = rest.partition("\t")
        if status.endswith(" installed"):
            installed[pkg] = version
    for pkg, want in apt.items():
        if pkg not in installed:
            problems.append(f"apt package {pkg} not installed")
        elif want and installed[pkg] != want:
            problems.append(f"{pkg} {installed[pkg]}, playbook pins {want}")
    venv = spec.get("venv_python", "/opt/ansible-venv/bin/python")
    res = _sh(target, f"{shlex.quote(venv)} -c 'import kubernetes, yaml; print(kubernetes.__version__)'")
    if res.rc != 0:
        problems.append(f"{venv} cannot import kubernetes and yaml")
    else:
        seen["ansible-venv kubernetes"] = res.stdout.strip()
    enabled = _sh(target, "systemctl is-enabled docker").stdout.strip()
    active = _sh(target, "systemctl is-active docker").stdout.strip()
    seen["docker service"] = f"{enabled or '?'}/{active or '?'}"
    if enabled != "enabled" or active != "active":
        problems.append(f"docker service is {enabled or 'unknown'}/{active or 'unknown'}, need enabled/active")
    groups = _sh(target, f"id -nG {shlex.quote(target.user or '')}").stdout.split()
    if "docker" not in groups:
        problems.append(f"{target.user} is not in group docker")
    record(found=seen, apt=installed)
    expect(problems, "tooling missing or not as install_pkgs leaves it",
           method="binaries' version commands, dpkg-query, venv import, systemctl, id -nG").is_empty(
        "helm/minikube/kubectl and apt packages at the pinned versions, /opt/ansible-venv usable, docker running")


def _iptables_rules(text: str) -> list[list[str]]:
    import shlex

    rules = []
    for line in text.splitlines():
        if line.startswith("-A "):
            try:
                rules.append(shlex.split(line))
            except ValueError:
                continue
    return rules


def _opt(rule: list[str], *names: str) -> str | None:
    for i, tok in enumerate(rule[:-1]):
        if tok in names:
            return rule[i + 1]
    return None


@requirement("DEMO-ACC-IPTABLES")
def test_demo_iptables(target, spec):
    comment = spec.get("comment", RULE_COMMENT)
    nat = _sh(target, "iptables-save -t nat", sudo=True)
    filt = _sh(target, "iptables-save -t filter", sudo=True)
    if nat.rc != 0 or filt.rc != 0:
        cannot_measure(f"iptables-save failed: {(nat.stderr or filt.stderr).strip()[:200]}")
    tagged_nat = [r for r in _iptables_rules(nat.stdout) if _opt(r, "--comment") == comment]
    tagged_fwd = [r for r in _iptables_rules(filt.stdout) if _opt(r, "--comment") == comment and r[1] == "FORWARD"]
    problems = []
    for proto, dport, to_port in spec.get("dnat", DEMO_DNAT):
        match = [r for r in tagged_nat if r[1] == "PREROUTING" and _opt(r, "-p") == proto
                 and _opt(r, "--dport") == dport and _opt(r, "-j") == "DNAT"]
        if not match:
            problems.append(f"no PREROUTING DNAT {proto} {dport} tagged {comment!r}")
        elif to_port and not any((_opt(r, "--to-destination") or "").endswith(f":{to_port}") for r in match):
            problems.append(f"DNAT {proto} {dport} does not go to port {to_port}")
    to_bridge = any((_opt(r, "-o") or "").startswith("br-") and _opt(r, "-j") == "ACCEPT" for r in tagged_fwd)
    from_bridge = any((_opt(r, "-i") or "").startswith("br-") and _opt(r, "-j") == "ACCEPT" for r in tagged_fwd)
    if not (to_bridge and from_bridge):
        problems.append("FORWARD ACCEPT between the default interface and the minikube bridge (br-…) missing")
    sysctl = _sh(target, "sysctl -n net.bridge.bridge-nf-call-iptables").stdout.strip()
    if sysctl != "1":
        problems.append(f"net.bridge.bridge-nf-call-iptables = {sysctl or 'unavailable'}, need 1")
    save_dir = f"{_home(target)}/wire-iptables-rules"
    for name in ("rules_pre_wire.v4", "rules_post_wire.v4"):
        if _sh(target, f"test -e {save_dir}/{name}", sudo=True).rc != 0:
            problems.append(f"{save_dir}/{name} missing")
    record(tagged_nat_rules=[" ".join(r) for r in tagged_nat], tagged_forward_rules=[" ".join(r) for r in tagged_fwd],
           bridge_nf_call_iptables=sysctl)
    expect(problems, "Wire NAT/forward rules missing", method="iptables-save -t nat/-t filter, sysctl, test -e").is_empty(
        f"DNAT 443/80/3478/UDP range and FORWARD to the bridge tagged {comment!r}, snapshots saved")


@requirement("DEMO-ACC-ARTIFACT")
def test_demo_artifact(target, site, spec):
    import json
    import shlex

    home = _home(target)
    artifact_hash = target.vars.get("artifact_hash") or site.vars.get("artifact_hash")
    wsd = f"{home}/wire-server-deploy"
    paths = [f"{wsd}/containers-helm.tar", f"{wsd}/values", f"{wsd}/versions/containers_helm_images.json",
             f"{wsd}/bin/wiab-demo/offline_deploy_k8s.sh", f"{wsd}/values/wire-server/secrets.yaml"]
    charts = target.vars.get("charts_to_deploy") or site.vars.get("charts_to_deploy") or spec.get("charts", DEMO_CHARTS)
    paths += [f"{wsd}/charts/{c}" for c in charts]
    if artifact_hash:
        paths.insert(0, f"{home}/wire-server-deploy-static-demo-{artifact_hash}.tgz")
    else:
        record(artifact_tgz="not checked: artifact_hash not in the inventory")
    script = "for p in " + " ".join(map(shlex.quote, paths)) + "; do test -e \"$p\" || echo \"$p\"; done"
    missing = [line for line in _sh(target, script, sudo=True).stdout.splitlines() if line]
    problems = [f"missing {p}" for p in missing]
    owner = _sh(target, f"stat -c %U {shlex.quote(wsd)}", sudo=True).stdout.strip()
    if owner and target.user and owner != target.user:
        problems.append(f"{wsd} owned by {owner}, not {target.user}")
    images_file = target.read_file(f"{wsd}/versions/containers_helm_images.json", sudo=True)
    if images_file is not None:
        try:
            wanted = json.loads(images_file)
        except ValueError:
            wanted = None
            problems.append("versions/containers_helm_images.json is not valid JSON")
        names = sorted(wanted) if isinstance(wanted, dict) else sorted(map(str, wanted or []))
        res = _sh(target, "docker exec k8s-wire crictl images -o json", sudo=True, timeout=60)
        if res.rc != 0:
            problems.append(f"cannot list images in the minikube node: {(res.stderr or res.stdout).strip()[:120]}")
        else:
            try:
                loaded = {tag for img in json.loads(res.stdout).get("images", []) for tag in img.get("repoTags") or []}
            except (ValueError, AttributeError):
                loaded = set()
            absent = [n for n in names if n not in loaded and f"docker.io/{n}" not in loaded]
            record(images_expected=len(names), images_absent=absent[:20])
            if absent:
                problems.append(f"{len(absent)} image(s) not seeded into k8s-wire, e.g. {absent[0]}")
    expect(problems, "artifact material missing", method="test -e, stat, docker exec k8s-wire crictl images").is_empty(
        "bundle unpacked in ~/wire-server-deploy (owned by ansible_user), secrets generated, images seeded")


@requirement("DEMO-ACC-CLEANUP")
def test_demo_cleanup(target, control, spec):
    import glob

    problems = []
    active = _sh(target, "systemctl is-active serve-assets").stdout.strip()
    enabled = _sh(target, "systemctl is-enabled serve-assets").stdout.strip()
    if active == "active":
        problems.append("serve-assets service is active")
    if enabled == "enabled":
        problems.append("serve-assets service is enabled")
    port = int(spec.get("port", 8080))
    listening = _sh(target, f"ss -Hltn 'sport = :{port}'").stdout.strip()
    if listening:
        problems.append(f"something listens on {port}: {listening.splitlines()[0]}")
    pattern = spec.get("control_glob", "/tmp/ansible.*_ssh_keys")
    left = sorted(glob.glob(pattern)) if control.local else [
        p for p in control.run(f"ls -d {pattern} 2>/dev/null").stdout.split() if p]
    if left:
        problems.append(f"temporary key directories left on the control machine: {', '.join(left)}")
    record(serve_assets=f"{enabled or '?'}/{active or '?'}", listening_8080=bool(listening), control_leftovers=left)
    expect(problems, "temporary install aids still present",
           method=f"systemctl is-active/is-enabled serve-assets; ss -ltn sport = :{port}; glob {pattern} on control").is_empty(
        f"serve-assets stopped and disabled, nothing on {port}, no {pattern} on the control machine")
