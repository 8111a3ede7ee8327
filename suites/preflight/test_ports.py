"""Client-facing ports, proven through every firewall and NAT on the way (planning.md › ports table).

One cooperative probe per target (wirecheck.probes.ports): a temporary listener on the target,
token-tagged datagrams and connections from this machine (or from --probe-from), to ``wire_ip``
or the target's address. The checks below read that one measurement.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
from dataclasses import dataclass
from typing import Any

from wirecheck import cannot_measure, expect, fail, not_applicable, record, requirement
from wirecheck.coordination import once, quiet_host, register_commands, register_prefetch
from wirecheck.probes.ports import PortProbeResult, ProbeError, format_ranges, probe_ports
from wirecheck.public_ip import effective_wire_ip
from wirecheck.turn import target_turn_address

#: used until the catalog carries these parameters (then spec.* wins)
DEFAULT_UDP_RANGE = (32768, 65535)
TURN_PORT = 3478
INSTALLER_TCP_PORTS = (3478, 8080)  # DEMO-NET-LOCAL-PORTS-FREE: IP-check listener, asset server

_PROBES: dict[tuple[str, str], PortProbeResult | ProbeError] = {}
_PROBE_HOSTS: dict[str, Any] = {}


def udp_range(site) -> tuple[int, int]:
    """NET-PORT-UDP-RANGE's range (catalog param ``udp_range``, --param override), for every check."""
    from wirecheck.catalog import default_catalog

    rid = "NET-PORT-UDP-RANGE"
    params = {**default_catalog()[rid].params, **site.overrides.get(rid, {})}
    return port_range(params.get("udp_range", DEFAULT_UDP_RANGE))


def port_range(value) -> tuple[int, int]:
    """A catalog range parameter: [lo, hi], or "lo-hi" / "lo:hi" as given to --param."""
    if isinstance(value, str):
        value = value.replace(":", "-").split("-")
    lo, hi = value
    return int(lo), int(hi)


def _own_address(target) -> str | None:
    """The address of the interface holding the default route, else the first global IPv4 address."""
    routes = target.facts.ip_json("-4 route show default")
    dev = routes[0].get("dev") if routes else None
    addrs = [(link.get("ifname"), a["local"]) for link in target.facts.ip_json("-4 addr show")
             for a in link.get("addr_info", []) if a.get("scope") == "global"]
    for ifname, addr in addrs:
        if ifname == dev:
            return addr
    return addrs[0][1] if addrs else None


def probed_address(target, site) -> str:
    """wire_ip for the demo deploy node (the address clients use), else the target's own address
    (for the local machine: its default-route interface address, not a loopback name)."""
    if site.wire_ip and (site.profile == "demo" or "deploy_node" in target.roles):
        return site.wire_ip
    if site.profile == "demo" and "deploy_node" in target.roles:
        public = effective_wire_ip(site)     # wire_ip empty: the address Wire's playbook determines
        if public.known:
            return str(public.address)
    if getattr(target, "local", False):
        address = _own_address(target)
        if address:
            return address
    try:
        return socket.gethostbyname(target.address)
    except OSError:
        cannot_measure(f"cannot resolve the target address {target.address!r}")
        raise  # not reached


def _probe_host(site):
    spec = site.option("probe_from")
    if not spec:
        return None
    if spec not in _PROBE_HOSTS:
        from wirecheck.targets import target_from_spec

        extra = site.option("ssh_extra_args")
        _PROBE_HOSTS[spec] = target_from_spec(
            spec, ["probe"], identity_file=site.option("ssh_identity_file"), ssh_config=site.option("ssh_config"),
            extra_args=shlex.split(extra) if extra else [], connect_timeout=site.option("connect_timeout", 8))
    return _PROBE_HOSTS[spec]


def probe_plan(target, site) -> dict[str, list[int]]:
    """The ports the port checks that apply to this target (its roles, the profile and the phase) read:
    a database VM needs TCP 22 and one UDP port for the path-MTU probe, not 32,768 UDP ports.  Worked out
    once per target and site (the scheduling asks for it too)."""
    cached = getattr(target, "_wc_probe_plan", None)
    if cached is not None and cached[0] is site:
        return cached[1]
    plan = _probe_plan(target, site)
    with contextlib.suppress(AttributeError):
        target._wc_probe_plan = (site, plan)
    return plan


def _probe_plan(target, site) -> dict[str, list[int]]:
    from wirecheck.catalog import default_catalog

    catalog = default_catalog()

    def wanted(*rids: str) -> bool:
        return any(site.profile in catalog[r].profiles and site.phase in catalog[r].phases
                   and catalog[r].applies_to_roles(target.roles) for r in rids)

    lo, hi = udp_range(site)
    tcp: set[int] = set()
    udp: set[int] = set()
    if wanted("NET-PORT-TCP-22"):
        tcp.add(22)
    if wanted("NET-PORT-TCP-80", "IMP-HOST-PORTS"):
        tcp.add(80)
    if wanted("NET-PORT-TCP-443", "IMP-HOST-PORTS"):
        tcp.add(443)
    if wanted("NET-PORT-TURN-3478", "IMP-HOST-PORTS", "DEMO-NET-WIRE-IP", "DEMO-NET-LOCAL-PORTS-FREE"):
        tcp.add(TURN_PORT)
    if wanted("DEMO-NET-LOCAL-PORTS-FREE"):
        tcp.update(INSTALLER_TCP_PORTS)
    if wanted("NET-PORT-UDP-RANGE", "NET-LOCAL-PORT-RANGE", "IMP-HOST-PORTS"):
        udp.update(range(lo, hi + 1))
    if wanted("NET-PORT-TURN-3478", "IMP-HOST-PORTS"):
        udp.add(TURN_PORT)
    if wanted("IMP-MTU"):
        udp.add(lo)
    # the firewall checks judge reachability from this same probe: it covers their ports too
    firewall = ["DEMO-NET-FIREWALL"] + (["CALL-SFT-FIREWALL"] if _sft_node(target) else [])
    for rid in firewall:
        if wanted(rid):
            params = {**catalog[rid].params, **getattr(site, "overrides", {}).get(rid, {})}
            tcp.update(int(p) for p in params.get("tcp_ports", []))
            udp.update(int(p) for p in params.get("udp_ports", []))
            if params.get("udp_range"):
                a, b = port_range(params["udp_range"])
                udp.update(range(a, b + 1))
    return {"tcp": sorted(tcp), "udp": sorted(udp),
            "echo_udp": [TURN_PORT] if wanted("NET-PORT-TURN-3478") else []}


def _sft_node(target) -> bool:
    from suites.preflight.test_restund import is_sft_node

    return hasattr(target, "vars") and is_sft_node(target)


@dataclass
class Reach:
    """What the run's port probe measured for a list of required (proto, lo, hi)."""
    blocked: dict[str, list[int]]            # proto -> ports the probe sent to and that did not arrive
    unmeasured: dict[str, list[int]]         # proto -> ports not probed / in use / not bindable
    error: str | None = None                 # the probe could not run at all
    result: PortProbeResult | None = None

    def text(self, proto: str, ports: list[int]) -> str:
        return f"{proto.upper()} {format_ranges(ports, limit=8)}"


def probe_reach(target, site, required: list[tuple[str, int, int]]) -> Reach:
    """The run's port probe of this host (run now when no check ran it yet), read for required."""
    from wirecheck.outcome import CannotMeasure

    try:
        r = port_probe(target, site)
    except CannotMeasure as exc:
        return Reach({}, {p: list(range(lo, hi + 1)) for p, lo, hi in required}, str(exc))
    blocked: dict[str, list[int]] = {}
    unmeasured: dict[str, list[int]] = {}
    udp_blocked, udp_requested = set(r.udp_blocked), set(r.udp_probed)
    for proto, lo, hi in required:
        for port in range(lo, hi + 1):
            if proto == "tcp":
                t = r.tcp.get(port)
                if t is None or f"tcp/{port}" in r.bind_errors:
                    unmeasured.setdefault(proto, []).append(port)
                elif t.passed:
                    continue
                elif t.state in ("refused", "timed out", "unreachable") or (t.state == "open" and not t.confirmed):
                    blocked.setdefault(proto, []).append(port)
                else:
                    unmeasured.setdefault(proto, []).append(port)
            elif port in udp_blocked:
                blocked.setdefault(proto, []).append(port)
            elif port not in udp_requested:
                unmeasured.setdefault(proto, []).append(port)
    return Reach({k: sorted(set(v)) for k, v in blocked.items()}, {k: sorted(set(v)) for k, v in unmeasured.items()},
                 None, r)


def turn_probe_address(target, site) -> tuple[str, str]:
    """(address, why) of the TURN port on this host: the address clients are given (wirecheck.turn), else
    the host's probed address."""
    chosen = target_turn_address(target, site)
    if chosen is not None:
        return chosen.address, chosen.source
    return probed_address(target, site), "the host's own address (no restund_public_ip, --turn-ip or wire_ip for it)"


def port_probe(target, site, address: str | None = None) -> PortProbeResult:
    """The one probe of this target (once per run: every port check reads it, and under pytest-xdist
    the first process to need it runs it for all; see wirecheck.coordination.once).  With `address`
    different from the host's probed address (a TURN host's public IP), a second small probe sends only
    the TURN port there, with the listener still on this host."""
    own = probed_address(target, site)
    turn_only = address is not None and address != own
    address = address if turn_only else own
    key = (target.name, address)
    if key not in _PROBES:
        _PROBES[key] = once(f"port-probe:{target.name}:{address}", lambda: _probe(target, site, address, turn_only))
    result = _PROBES[key]
    if isinstance(result, ProbeError):
        cannot_measure(f"port probe of {address} could not run: {result}")
    assert isinstance(result, PortProbeResult)
    return result


def _probe(target, site, address: str, turn_only: bool) -> PortProbeResult | ProbeError:
    quiet_host(target, site)      # our own commands on the host are done: their sockets are not "in use"
    probe_host = _probe_host(site)
    lo, _hi = udp_range(site)
    plan = probe_plan(target, site)
    if turn_only:
        plan = {"tcp": [TURN_PORT], "udp": [TURN_PORT], "echo_udp": [TURN_PORT]}
    kwargs: dict[str, Any] = {
        **plan,
        "tcp_timeout": float(site.option("port_timeout") or 1.5),
        "mtu_port": lo if lo in plan["udp"] else None,
        "classify": probe_host is None,
    }
    if probe_host is not None:
        kwargs["sender_spawn"] = probe_host.popen
        kwargs["sender_name"] = probe_host.name
    quiet = getattr(target, "quiet", None)
    with quiet.exclusive() if quiet is not None else contextlib.nullcontext():   # none of our commands meanwhile
        try:
            try:  # ports below 1024 need root on the target
                return probe_ports(lambda argv: target.popen(argv, sudo=True), address, **kwargs)
            except ProbeError as exc:
                if "sudo" not in str(exc):
                    raise
                return probe_ports(target.popen, address, **kwargs)
        except ProbeError as exc:
            return exc


#: the checks that read the probe, per phase (in preflight probe_plan's requirements; after the
#: install the TCP ports are connected to, not probed): the probe of each host with one of them
#: selected starts in the background as soon as the run knows its checks, while others run
PROBE_READERS = {
    "preflight": frozenset({"NET-PORT-TCP-22", "NET-PORT-TCP-80", "NET-PORT-TCP-443", "NET-PORT-TURN-3478",
                            "NET-PORT-UDP-RANGE", "NET-LOCAL-PORT-RANGE", "IMP-HOST-PORTS", "IMP-MTU",
                            "DEMO-NET-WIRE-IP", "DEMO-NET-LOCAL-PORTS-FREE", "DEMO-NET-FIREWALL",
                            "CALL-SFT-FIREWALL"}),
    "acceptance": frozenset({"NET-PORT-UDP-RANGE", "CALL-SFT-FIREWALL"}),
}


def _prefetch_probe(target, site, selected: frozenset[str] = frozenset()) -> None:
    from wirecheck.coordination import Busy
    if not selected & PROBE_READERS.get(site.phase, frozenset()):
        return       # no selected check of this phase reads the probe
    try:
        own = probed_address(target, site)
    except Exception:  # noqa: BLE001 - the check reports it
        return
    key = (target.name, own)
    if key in _PROBES:
        return
    try:
        _PROBES[key] = once(f"port-probe:{target.name}:{own}", lambda: _probe(target, site, own, False), wait=False)
    except Busy:
        pass     # another thread or process of the run is probing it; the check waits for that one


def _probe_size(target, site) -> int:
    """Hosts with the most ports to probe first (the whole UDP range takes longest)."""
    plan = probe_plan(target, site)
    return -(len(plan["udp"]) + len(plan["tcp"]))


def _small_probe(target, site) -> bool:
    """A probe of a few ports (a database VM's TCP 22 and one UDP port): it does not queue behind the
    whole-range probes, which run three at a time."""
    plan = probe_plan(target, site)
    return len(plan["udp"]) + len(plan["tcp"]) <= 16


register_prefetch("port-probe", frozenset().union(*PROBE_READERS.values()), _prefetch_probe, limit=3,
                  priority=_probe_size, light=_small_probe)
# IMP-MTU's default route (Facts.ip_json) comes from the host snapshot's routes


def _method(r: PortProbeResult) -> str:
    return (f"temporary listener on the target, token-tagged probes from {r.prober} to {r.probed_address}")


def _record_path(r: PortProbeResult) -> None:
    record(probed_address=r.probed_address, prober=r.prober, probed_tcp=sorted(r.tcp),
           probed_udp=format_ranges(r.udp_requested, limit=10),
           received_on=sorted(r.receiving_addresses), seen_from=sorted(r.sender_addresses),
           nat=sorted(r.receiving_addresses) not in ([], [r.probed_address]))


def _check_tcp(r: PortProbeResult, port: int) -> None:
    _record_path(r)
    t = r.tcp.get(port)
    if t is None:
        cannot_measure(f"TCP {port} was not probed")
        return
    if f"tcp/{port}" in r.bind_errors:
        cannot_measure(f"could not listen on TCP {port} on the target: {r.bind_errors[f'tcp/{port}']}")
    record(tcp=r.tcp[port].__dict__, state=t.state)
    if t.classification:
        record(classification=t.classification)
    expect(t.state, f"TCP {port}", method=_method(r)).satisfies(
        lambda _s: t.passed, f"TCP {port} reaches the target", r.tcp_summary(port)
        + (f"; {t.classification}" if t.classification else ""))


@requirement("NET-PORT-TCP-22")
def test_ssh_port_reachable(target, site):
    r = port_probe(target, site)
    t = r.tcp.get(22)
    if t is not None and t.state == "open" and t.existing_service is not None:
        record(banner=t.detail)
        expect(t.detail, "SSH banner on TCP 22", method=_method(r)).satisfies(
            lambda b: b.startswith("SSH-2.0-"), "a banner starting SSH-2.0-",
            f"TCP 22 answers, but not with an SSH banner ({t.detail!r}); existing service {t.existing_service}")
        _record_path(r)
        return
    _check_tcp(r, 22)


@requirement("NET-PORT-TCP-80")
def test_http_port_reachable(target, site):
    _check_tcp(port_probe(target, site), 80)


@requirement("NET-PORT-TCP-443")
def test_https_port_reachable(target, site):
    _check_tcp(port_probe(target, site), 443)


@requirement("NET-PORT-TURN-3478")
def test_turn_port_reachable(target, site):
    address, why = turn_probe_address(target, site)
    r = port_probe(target, site, address)
    _record_path(r)
    record(turn_address=address, turn_address_source=why)
    problems = []
    t = r.tcp.get(TURN_PORT)
    if t is None or not t.passed:
        problems.append(r.tcp_summary(TURN_PORT) if t else "TCP 3478 not probed")
    if TURN_PORT in r.udp_in_use:
        verdict = r.udp_classification.get(f"{TURN_PORT} (in use)", "not classified")
        record(udp_in_use=r.udp_in_use[TURN_PORT], udp_classification=verdict)
        if verdict.startswith("filtered") or verdict.startswith("closed"):
            problems.append(f"UDP 3478 is in use by {r.udp_in_use[TURN_PORT]} and {verdict}")
    elif TURN_PORT in r.udp_blocked:
        problems.append("UDP 3478 blocked" + (f" ({r.udp_classification[str(TURN_PORT)]})"
                                              if str(TURN_PORT) in r.udp_classification else ""))
    else:
        record(udp_echo=r.udp_echo.get(TURN_PORT))
        if r.udp_echo.get(TURN_PORT) is False:
            problems.append("UDP 3478 arrives, but the answer does not come back (return path / NAT)")
    expect(problems, f"TCP and UDP 3478 at {address} ({why})", method=_method(r)).is_empty(
        f"TCP 3478 and UDP 3478 sent to {address} reach {target.name}",
        f"TCP and UDP 3478 sent to {address} ({why}) do not all reach {target.name}: " + "; ".join(problems))


@requirement("NET-PORT-UDP-RANGE")
def test_udp_range_reachable(target, site):
    lo, hi = udp_range(site)
    r = port_probe(target, site)
    _record_path(r)
    in_range = set(range(lo, hi + 1))
    blocked = [p for p in r.udp_blocked if p in in_range]
    in_use = {p: o for p, o in r.udp_in_use.items() if p in in_range}
    record(range=f"{lo}-{hi}", probed=len([p for p in r.udp_probed if p in in_range]),
           passed=len([p for p in r.udp_passed if p in in_range]), blocked=format_ranges(blocked, limit=100),
           rounds=r.rounds, recovered_by_retry=r.recovered_by_retry, timings=r.timings,
           listener_workers=r.listener_workers, listener_peak_rss_kib=r.listener_peak_rss_kib,
           received_by=r.udp_mode, **({"raw_fallback": r.raw_fallback} if r.raw_fallback else {}))
    if in_use:
        record(in_use=r.udp_in_use_summary(),
               in_use_classification={k: v for k, v in r.udp_classification.items() if "in use" in k})
    if r.udp_classification:
        record(classification=r.udp_classification)
    total = len(in_range) - len(in_use)
    if blocked:
        fail(f"{len(blocked):,} of {total:,} ports blocked: {format_ranges(blocked)}"
             + (f" ({len(in_use):,} more in use on the target, not probed)" if in_use else ""),
             observed=f"{len(blocked):,} blocked: {format_ranges(blocked)}",
             expected=f"all of UDP {lo}-{hi} reach the target", method=_method(r))
    expect(blocked, f"blocked ports of UDP {lo}-{hi}", method=_method(r)).is_empty(
        f"all of UDP {lo}-{hi} reach the target",
        passed=f"all {total:,} ports of UDP {lo}-{hi} reached the target (blocked: none"
               + (f"; {len(in_use):,} in use on the target, not probed)" if in_use else ")"))


@requirement("NET-LOCAL-PORT-RANGE")
def test_local_port_range_gets_through(target, site):
    """The kernel's ephemeral range, compared with what actually got through (not with a rule list)."""
    raw = target.facts.sysctl_ints("net.ipv4.ip_local_port_range")
    if not raw or len(raw) != 2:
        cannot_measure(f"net.ipv4.ip_local_port_range on {target.name} is {'missing' if raw is None else raw}, "
                       "not two port numbers")
    lo, hi = raw
    r = port_probe(target, site)
    probed = set(r.udp_requested)
    outside = [p for p in range(lo, hi + 1) if p not in probed]
    blocked = [p for p in r.udp_blocked if lo <= p <= hi]
    record(ip_local_port_range=f"{lo}-{hi}", probed_range=format_ranges(r.udp_requested, limit=5))
    problems = []
    if outside:
        problems.append(f"{len(outside):,} ports of ip_local_port_range {lo}-{hi} lie outside the probed "
                        f"(required) range: {format_ranges(outside)}")
    if blocked:
        problems.append(f"{len(blocked):,} ports of ip_local_port_range {lo}-{hi} do not get through: "
                        f"{format_ranges(blocked)}")
    expect(problems, "ephemeral ports not reaching the target",
           method="/proc/sys/net/ipv4/ip_local_port_range; " + _method(r)).is_empty(
        f"every port of {lo}-{hi} gets through", "; ".join(problems),
        passed=f"all {hi - lo + 1:,} ports of ip_local_port_range {lo}-{hi} reached the target (blocked: none)")


@requirement("DEMO-NET-WIRE-IP")
def test_wire_ip_usable(target, site):
    public = effective_wire_ip(site) if "deploy_node" in target.roles else None
    if public is not None:
        record(wire_ip=public.address or "not determined", wire_ip_source=public.source)
        if public.unmeasured:
            cannot_measure(public.unmeasured, method=f"as verify_wire_ip.yml: {public.source}")
        if public.problem:
            fail(public.problem, observed="no public address", expected="wire_ip set, or determinable on the node",
                 method=f"as verify_wire_ip.yml: ~/wire_vars/wire_ip, then {public.source}")
    r = port_probe(target, site)
    t = r.tcp[TURN_PORT]
    routes = target.facts.ip_json("-4 route show default")
    dev = routes[0].get("dev") if routes else None
    default_addrs = [a["local"] for link in target.facts.ip_json("-4 addr show")
                     if link.get("ifname") == dev for a in link.get("addr_info", [])]
    record(probed_address=r.probed_address, received_on=sorted(r.receiving_addresses),
           default_route_interface=dev, default_route_addresses=default_addrs, tcp_3478=t.__dict__)
    if t.passed and r.probed_address not in default_addrs and not site.wire_ip:
        record(recommendation="the probed address is not on the default-route interface (NAT): set wire_ip")
    expect(t.passed, f"TCP 3478 from {r.prober} to {r.probed_address}", method=_method(r)).is_true(
        f"the temporary listener on the node answers on {r.probed_address}:3478",
        f"{r.probed_address} is not usable as wire_ip: {r.tcp_summary(TURN_PORT)}"
        + ("" if site.wire_ip else "; set wire_ip in host.yml if the node is only reachable through NAT"))


# read after the probe: asked with the host's other commands before it, in one round trip
register_commands("DEMO-NET-LOCAL-PORTS-FREE",
                  lambda target, spec: [("iptables -t nat -S PREROUTING", True, None),
                                        ("test -d ~/.minikube/profiles/k8s-wire", False, None)])


@requirement("DEMO-NET-LOCAL-PORTS-FREE")
def test_installer_ports_free(target, site):
    r = port_probe(target, site)
    busy = {p: r.tcp[p].existing_service for p in INSTALLER_TCP_PORTS if r.tcp[p].existing_service}
    if target.facts.which("iptables") is None:     # the playbook writes its NAT rules with iptables
        leftovers: list[str] = []
        record(iptables_nat="iptables is not installed: no rules of an earlier run can be left")
    else:
        rules, _ = target.facts.privileged("iptables -t nat -S PREROUTING", "iptables NAT rules")
        if not rules.startswith("-P PREROUTING"):   # the chain's policy comes first, always
            cannot_measure(f"`iptables -t nat -S PREROUTING` on {target.name} printed no rule list: "
                           f"{rules.strip()[:80]!r}")
        leftovers = [ln for ln in rules.splitlines() if "Wire Iptables Rules" in ln]
        record(iptables_nat="iptables -t nat -S PREROUTING")
    record(tcp_in_use={str(p): o for p, o in busy.items()}, wire_rules_left=leftovers)
    problems = [f"TCP {p} in use by {o}" for p, o in busy.items()]
    if leftovers:
        problems.append(f"{len(leftovers)} 'Wire Iptables Rules' NAT rules left from an earlier run")
    expect(problems, "installer ports", method="bind() by the temporary listener; iptables -t nat -S").is_empty(
        "TCP 3478 and 8080 free, no Wire NAT rules left", "; ".join(problems))


@requirement("IMP-HOST-PORTS")
def test_nothing_listening_on_wire_ports(target, site):
    r = port_probe(target, site)
    lo, hi = udp_range(site)
    problems = [f"TCP {p} in use by {r.tcp[p].existing_service}" for p in (80, 443, TURN_PORT)
                if r.tcp[p].existing_service]
    udp_busy = {p: o for p, o in r.udp_in_use.items() if p == TURN_PORT or lo <= p <= hi}
    if udp_busy:
        problems.append(f"UDP in use: {r.udp_in_use_summary()}")
    profile = target.run("test -d ~/.minikube/profiles/k8s-wire")
    if profile.rc == 0:
        problems.append("a minikube profile k8s-wire exists already (~/.minikube/profiles/k8s-wire)")
    record(udp_in_use={str(p): o for p, o in udp_busy.items()})
    expect(problems, "ports the DNAT rules will shadow",
           method="bind() by the temporary listener; test -d ~/.minikube/profiles/k8s-wire").is_empty(
        "nothing listening on 80, 443, 3478 or UDP 32768-65535; no k8s-wire profile", "; ".join(problems))


@requirement("IMP-MTU")
def test_mtu(target, site):
    routes = target.facts.ip_json("-4 route show default")
    if not routes:
        not_applicable("the host has no IPv4 default route")
    dev = routes[0].get("dev")
    mtu = next((link.get("mtu") for link in target.facts.ip_json("link show") if link.get("ifname") == dev), None)
    record(interface=dev, mtu=mtu)
    try:
        r = port_probe(target, site)
    except Exception:  # noqa: BLE001 - the interface MTU is still worth a verdict
        r = None
    if r is not None and r.max_datagram:
        record(path_max_packet=r.max_datagram, path_probe=f"DF-set UDP datagrams from {r.prober} to "
               f"{r.probed_address}:{r.udp_requested[0] if r.udp_requested else '?'}")
    expect(mtu, f"MTU of {dev}", method="ip -j link show").at_least(1500)
    if r is not None and r.max_datagram:
        expect(r.max_datagram, "largest packet through the path (DF set)",
               method="DF-set UDP probe to the temporary listener").at_least(1500)
