"""Demo deploy node: host networking (planning.md › What you need › Network)."""

from __future__ import annotations

import ipaddress
import re
import shlex

from suites.preflight.test_ports import port_range, probe_reach
from wirecheck import cannot_measure, expect, fail, record, requirement
from wirecheck.coordination import register_commands
from wirecheck.facts import firewall_snapshot_command, sysctl_persisted_command
from wirecheck.firewall import Chain, UnreadableRuleset, describe, judge, port_set, read_view
from wirecheck.outcome import CannotMeasure
from wirecheck.probes.ports import format_ranges


def _required(spec) -> list[tuple[str, int, int]]:
    req = [("tcp", p, p) for p in spec.tcp_ports] + [("udp", p, p) for p in spec.udp_ports]
    lo, hi = port_range(spec.udp_range)
    return req + [("udp", lo, hi)]


def receiving_side(target, site) -> dict:
    """Where Wire's clients' packets arrive: the interface holding the probed address (wire_ip when it
    is the host's own) or else the default-route interface; that interface's addresses; the bridge
    ports below it; whether it has a global IPv6 address."""
    from suites.preflight.test_ports import probed_address

    links = target.facts.ip_json("addr")
    routes = target.facts.ip_json("-4 route show default")
    try:
        probed = probed_address(target, site)
    except CannotMeasure:
        probed = None
    holder = next((ln.get("ifname") for ln in links for a in ln.get("addr_info", []) if a.get("local") == probed),
                  None)
    iface = holder or (routes[0].get("dev") if routes else None)
    if iface is None:
        return {"interface": None, "l3": None, "l2": None, "addresses": None, "ipv6": False}
    link = next((ln for ln in links if ln.get("ifname") == iface), {})
    addrs = [a["local"] for a in link.get("addr_info", []) if a.get("scope") == "global" and a.get("family") == "inet"]
    ports = [ln.get("ifname") for ln in links if ln.get("master") == iface]
    ipv6 = any(a.get("family") == "inet6" and a.get("scope") == "global" for a in link.get("addr_info", []))
    return {"interface": iface, "l3": [iface], "l2": ports or [iface],
            "addresses": [probed] if holder else addrs or None, "ipv6": ipv6}


def judge_firewall(target, site, inbound: list[tuple[str, int, int]], *, forward: bool = False,
                   outbound: list[tuple[str, int, int]] | None = None, ignored_chains=(), ufw_active: bool = False,
                   problems: list[str], methods: list[str]) -> tuple[list[str], str]:
    """Read the host's packet filter and this run's port probe; add what blocks to problems. Returns
    what the rules leave undecided and the probe did not settle (the caller turns it into an error),
    and the words a pass ends with (what the probe showed, or that it could not run)."""
    view = target.facts.netfilter_view()
    if view.nft is None and view.nft_error is None and not view.saves and not view.save_errors:
        cannot_measure("neither nft nor any iptables-save is installed on the host, so its packet filter rules "
                       "cannot be listed")
    try:
        rs = read_view(view)
    except UnreadableRuleset as exc:
        cannot_measure(f"the packet filter rules cannot be read: {exc}")
        raise  # not reached
    if view.nft_error:
        cannot_measure(f"the nftables ruleset cannot be read: {view.nft_error}")
    for name, err in view.save_errors.items():
        # no legacy table loaded at all is no legacy rule; any other failure leaves rules unread
        if "legacy" in name and "_tables_names" not in err:
            cannot_measure(f"the {name} rules cannot be read: `{name}-save` failed: {err}")
    methods.append(", ".join(rs.sources) or "no ruleset")
    side = receiving_side(target, site)
    ignored = set(ignored_chains)
    docker = any(c.name.startswith("DOCKER") for c in rs.chains.values())

    def ignore(c: Chain) -> bool:
        return c.name in ignored or (ufw_active and c.name.startswith("ufw"))

    def ignore_policy(c: Chain) -> str | None:
        if ufw_active and c.source != "nftables" and c.table == "filter":
            return "ufw's default policy: ufw's own rules are judged from `ufw status`"
        if docker and c.source != "nftables" and c.table == "filter" and c.name == "FORWARD":
            return "set by Docker (DOCKER chains present)"
        return None
    families = ("ip", "ip6") if side["ipv6"] else ("ip",)
    kw = {"families": families, "l3_ifaces": side["l3"], "l2_ifaces": side["l2"], "local_addresses": side["addresses"],
          "ignore": ignore, "ignore_policy": ignore_policy}
    judged = judge(rs, inbound, paths=("in", "forward") if forward else ("in",), **kw)
    if outbound:
        out = judge(rs, outbound, paths=("out",), **kw)
        judged.blocked += out.blocked
        judged.unknown += out.unknown
        judged.notes += out.notes
    reach = probe_reach(target, site, inbound)
    methods.append("port probe of this run" if reach.error is None else "port probe could not run")
    by_port = port_set(judged.blocked)
    rules_named: list[str] = []
    if reach.blocked:
        problems.append("the port probe measured " + " and ".join(reach.text(p, v) for p, v in reach.blocked.items())
                        + " blocked")
    for proto, ports in reach.blocked.items():
        decided = [d for d in judged.decisions if d.proto == proto and d.path == "in"
                   and any(d.ports[0] <= p <= d.ports[1] for p in ports)]
        unexplained = [p for p in ports if p not in by_port.get(proto, set())
                       and not any(d.ports[0] <= p <= d.ports[1] for d in decided)]
        rules_named += describe(decided)
        if unexplained:
            problems.append(f"no rule read on the host explains {reach.text(proto, unexplained)} ("
                            + ("ufw's rules above, " if ufw_active else "")
                            + "a firewall or NAT on the way, or a construct the reader does not model)")
    problems += [d for d in dict.fromkeys(describe(judged.blocked) + rules_named)]
    settled = []
    open_ = []
    for d in judged.unknown:
        ports = range(d.ports[0], d.ports[1] + 1)
        measured = d.path == "in" and reach.error is None and not any(
            p in reach.unmeasured.get(d.proto, []) for p in ports)
        (settled if measured else open_).append(d)
    unknown_text = describe(open_)
    blocked_by_probe = any(reach.blocked.values())
    if open_ and blocked_by_probe:
        problems += [x for x in unknown_text if x not in problems]
    record(rules_read=rs.sources, receiving_interface=side["interface"], receiving_addresses=side["addresses"],
           rules_blocking=describe(judged.blocked) or "none",
           cannot_judge=unknown_text or "none",
           settled_by_the_probe=describe(settled) or "none",
           port_probe=({"error": reach.error} if reach.error else
                       {"blocked": {p: format_ranges(v) for p, v in reach.blocked.items()} or "none",
                        "not_measured": {p: format_ranges(v) for p, v in reach.unmeasured.items()} or "none",
                        "probed_address": reach.result.probed_address if reach.result else None}),
           notes=judged.notes + rs.notes or None)
    if reach.error:
        probe_words = f"the port probe could not run ({reach.error}), so this rests on the rules alone"
    elif any(reach.unmeasured.values()):
        probe_words = ("the port probe reached every port it measured (not measured: "
                       + "; ".join(reach.text(p, v) for p, v in reach.unmeasured.items() if v) + ")")
    else:
        probe_words = "the port probe reached every one"
    return ([] if blocked_by_probe else unknown_text), probe_words


register_commands("DEMO-NET-FIREWALL", lambda target, spec: [(firewall_snapshot_command(), True, None)])


@requirement("DEMO-NET-FIREWALL")
def test_no_interfering_firewall(target, spec, site):
    problems: list[str] = []
    methods = []
    target.facts.firewall_snapshot()      # one privileged round trip for ufw, iptables and nft
    ufw, how = target.facts.ufw_status()
    methods.append(how)
    if ufw is not None:
        active = any(line.strip().lower() == "status: active" for line in ufw.splitlines())
        record(ufw="active" if active else "inactive")
        if active:
            problems.append("ufw is active")
    for unit in spec.other_firewalls:
        if target.facts.service_active(unit):
            problems.append(f"{unit} is active")
    methods.append("systemctl is-active " + " ".join(spec.other_firewalls))
    required = _required(spec)
    record(required_ports=[f"{p}/{lo}" if lo == hi else f"{p}/{lo}-{hi}" for p, lo, hi in required])
    undecided, probe_words = judge_firewall(target, site, required, forward=True, ignored_chains=spec.ignored_chains,
                                            problems=problems, methods=methods)
    if problems:
        fail("host firewall interferes: " + "; ".join(problems[:12])
             + (f" (+{len(problems) - 12} more)" if len(problems) > 12 else ""),
             observed=problems, expected="no host firewall dropping or rejecting Wire's ports",
             method="; ".join(methods))
    if undecided:
        cannot_measure("cannot judge the host firewall for Wire's ports, and the port probe did not measure them: "
                       + "; ".join(undecided[:6]) + (f" (+{len(undecided) - 6} more)" if len(undecided) > 6 else ""))
    expect(problems, "Wire's ports blocked by the host firewall", method="; ".join(methods)).is_empty(
        f"none: no rule drops or rejects them; {probe_words}")


# asked with the host's other commands in one round trip, before the port probe holds the host
register_commands("DEMO-NET-IP-FORWARD",
                  lambda target, spec: [(sysctl_persisted_command("net.ipv4.ip_forward"), False, None)])


@requirement("DEMO-NET-IP-FORWARD")
def test_ip_forward(target, spec):
    value = target.facts.sysctl("net.ipv4.ip_forward")
    persisted = target.facts.sysctl_persisted("net.ipv4.ip_forward")
    record(persisted_in=persisted or "no sysctl configuration file sets it",
           note="Docker turns forwarding on when the playbook installs it; the docs require it beforehand")
    expect(value, "net.ipv4.ip_forward", method="/proc/sys/net/ipv4/ip_forward").equals(spec.value)


def _overlaps(net: ipaddress.IPv4Network, used: list[tuple[str, ipaddress.IPv4Network]]) -> list[str]:
    return [f"{what} {n}" for what, n in used if n.overlaps(net) and n.prefixlen > 0]


@requirement("DEMO-NET-SUBNET-CONFLICT")
def test_subnets_free(target, spec, site):
    nets = {}
    for key in ("minikube_node_subnet", "pod_network_cidr"):
        raw = str(target.vars.get(key) or site.vars.get(key) or spec.get(key))
        try:
            nets[key] = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            fail(f"{key} {raw!r} (inventory) is not a network in CIDR form; the playbook cannot create it",
                 observed=raw, expected="a CIDR network such as 192.168.99.0/24", method="inventory")
    node_net, pod_net = nets["minikube_node_subnet"], nets["pod_network_cidr"]
    used: list[tuple[str, ipaddress.IPv4Network]] = []
    for link in target.facts.ip_json("addr"):
        for a in link.get("addr_info", []):
            if a.get("family") == "inet" and link.get("ifname") != "lo":
                used.append((f"address of {link.get('ifname')}",
                             ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)))
    docker_net = None
    for r in target.facts.ip_json("route"):
        dst = r.get("dst")
        if dst and dst != "default":
            net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
            if r.get("dev", "").startswith("br-") and net == node_net:
                docker_net = net
                continue
            used.append((f"route via {r.get('dev')}", net))
    for ns in target.facts.nameservers():
        try:
            used.append(("nameserver", ipaddress.ip_network(f"{ns}/32")))
        except ValueError:
            pass
    record(host_networks=[f"{w} {n}" for w, n in used], minikube_node_subnet=str(node_net),
           pod_network_cidr=str(pod_net))
    clashes = [f"minikube node subnet {node_net} overlaps {c}" for c in _overlaps(node_net, used)]
    clashes += [f"pod network {pod_net} overlaps {c}" for c in _overlaps(pod_net, used)]
    expect(clashes, "subnet overlaps", method="ip -j addr; ip -j route; /etc/resolv.conf").is_empty(
        f"{node_net} and {pod_net} free on the host", "; ".join(clashes))
    if docker_net:
        record(note=f"an existing Docker bridge already uses {docker_net} (minikube-wire-network from an earlier run)")


@requirement("DEMO-NET-INTERNET")
def test_internet(target, spec, site):
    urls = site.option("internet_url") or spec.urls
    timeout = spec.timeout_s
    results = {}
    failed = []
    for url in urls:
        q = shlex.quote(url)
        res = target.run(
            f"if command -v curl >/dev/null; then curl -sS -o /dev/null -I -L --max-redirs 0 -m {timeout} "
            f"-w '%{{http_code}}' {q}; else python3 -c 'import sys,urllib.request as u;"
            f"r=u.urlopen(u.Request(sys.argv[1],method=\"HEAD\"),timeout={timeout});print(r.status)' {q}; fi",
            timeout=timeout + 10)
        code = res.stdout.strip()[-3:]
        if res.rc in (126, 127) or res.rc == 0 and not re.fullmatch(r"\d{3}", res.stdout.strip()):
            cannot_measure(f"the HTTP client did not run on {target.name} (exit {res.rc}): "
                           f"{(res.stderr.strip().splitlines() or [repr(res.stdout.strip()[:80])])[-1]}")
        ok = res.rc == 0 and code[:1] in ("2", "3", "4") and code != "000"
        results[url] = code if ok else (res.stderr.strip().splitlines() or [f"exit {res.rc}"])[-1][:200]
        if not ok:
            failed.append(f"{url}: {results[url]}")
    record(answers=results)
    if failed:
        fail(f"{len(failed)} of {len(urls)} download sources unreachable from the node: " + "; ".join(failed),
             observed=failed, expected="every URL answers over HTTP(S)", method=f"HEAD from the node, {timeout} s")
    expect(len(urls), "download sources reachable", method=f"HEAD from the node, {timeout} s").at_least(len(urls))
