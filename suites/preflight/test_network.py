"""Demo deploy node: host networking (planning.md › What you need › Network)."""

from __future__ import annotations

import ipaddress
import re
import shlex

from wirecheck import cannot_measure, expect, fail, record, requirement
from wirecheck.firewall import describe, iptables_blocking, nft_blocking


def _required(spec) -> list[tuple[str, int, int]]:
    req = [("tcp", p, p) for p in spec.tcp_ports] + [("udp", p, p) for p in spec.udp_ports]
    lo, hi = spec.udp_range
    return req + [("udp", lo, hi)]


@requirement("DEMO-NET-FIREWALL")
def test_no_interfering_firewall(target, spec):
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
    rules, how = target.facts.iptables_rules()
    methods.append(how)
    if rules is not None:
        decisions, notes = iptables_blocking(rules, required, spec.ignored_chains)
        if notes:
            record(notes=notes)
        problems += [f"iptables {d}" for d in describe(decisions)]
    ruleset, how = target.facts.nft_ruleset()
    methods.append(how)
    if ruleset is not None:
        problems += [f"nftables {d}" for d in describe(nft_blocking(ruleset, required))]
    if rules is None and ruleset is None:
        cannot_measure("neither iptables nor nft is installed on the host, so its packet filter rules "
                       "cannot be listed")
    record(required_ports=[f"{p}/{lo}" if lo == hi else f"{p}/{lo}-{hi}" for p, lo, hi in required])
    expect(problems, "firewall", method="; ".join(methods)).is_empty(
        "no host firewall dropping or rejecting Wire's ports",
        "host firewall interferes: " + "; ".join(problems[:12]) + (f" (+{len(problems) - 12} more)" if len(problems) > 12 else ""))


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
