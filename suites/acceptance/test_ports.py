"""Client-facing ports after the install: the real services own them now (planning.md › ports table).

TCP ports are connected to from this machine (or --probe-from) at ``wire_ip``/the target's address.
The UDP range is probed with the temporary listener wherever ports are still free; ports that a
DNAT rule on the target forwards elsewhere (the demo forwards 32768-65535 into the minikube node)
cannot be proven by a listener on this host and are reported as such, not as blocked.
"""

from __future__ import annotations

import re

from suites.preflight.test_ports import (
    _method,
    _probe_host,
    _record_path,
    port_probe,
    probed_address,
    turn_probe_address,
    udp_range,
)
from wirecheck import cannot_measure, expect, fail, not_evaluated, record, requirement
from wirecheck.probes.http import http_get
from wirecheck.probes.ports import TcpPortResult, connect_ports, format_ranges
from wirecheck.probes.stun import stun_binding_udp

_CONNECTS: dict[tuple[str, int], TcpPortResult] = {}


def _connect(target, site, port: int, address: str | None = None) -> TcpPortResult:
    address = address or probed_address(target, site)
    key = (address, port)
    if key not in _CONNECTS:
        probe_host = _probe_host(site)
        kwargs = {"sender_spawn": probe_host.popen, "sender_name": probe_host.name} if probe_host else {}
        _CONNECTS.update({(address, p): r for p, r in connect_ports(
            address, [22, 80, 443, 3478], timeout=float(site.option("port_timeout") or 1.5), **kwargs).items()})
    return _CONNECTS[key]


def _expect_open(t: TcpPortResult, address: str) -> None:
    record(probed_address=address, tcp=t.__dict__, state=t.state)
    expect(t.state, f"TCP {t.port} at {address}", method="TCP connect from the machine running wirecheck").equals(
        "open")


@requirement("NET-PORT-TCP-80")
def test_http_redirects_to_https(target, site):
    address = probed_address(target, site)
    _expect_open(_connect(target, site, 80), address)
    if not site.domain:
        not_evaluated("TCP 80 is open; the redirect to HTTPS needs the domain", option="--domain")
    res = http_get(f"http://nginz-https.{site.domain}/", connect_to=address, timeout=10)
    record(http=res.evidence())
    location = res.headers.get("location", "")
    expect(res.status, res.target(), method="HTTP GET without following redirects").satisfies(
        lambda s: s in (301, 302, 307, 308) and location.startswith("https://"),
        "a 301/302/307/308 redirect to https://",
        f"GET http://nginz-https.{site.domain}/ via {address}: "
        + (f"{res.status} {res.reason or ''} Location {location or '(none)'}" if res.status else str(res.error)))


@requirement("NET-PORT-TCP-443")
def test_https_port_open(target, site):
    _expect_open(_connect(target, site, 443), probed_address(target, site))


@requirement("NET-PORT-TURN-3478")
def test_turn_port_answers(target, site):
    address, why = turn_probe_address(target, site)  # the address clients are given, with the reason
    t = _connect(target, site, 3478, address)
    stun = stun_binding_udp(address, 3478, timeout=3.0, attempts=3)
    record(probed_address=address, turn_address_source=why, tcp=t.__dict__, stun_udp=stun.evidence())
    problems = []
    if t.state != "open":
        problems.append(f"TCP 3478 {t.state} ({t.detail})")
    if not stun.ok:
        problems.append(stun.describe())
    expect(problems, f"TURN port 3478 at {address} ({why})", method="TCP connect; STUN Binding request over UDP").is_empty(
        "TCP 3478 open and a STUN Binding success on UDP 3478",
        f"the TURN port at {address} ({why}) does not answer: " + "; ".join(problems))


def _dnat_udp_ranges(target) -> list[tuple[int, int]] | None:
    """UDP destination-port ranges the target's nat PREROUTING rules DNAT elsewhere (None: unreadable)."""
    res = target.run("iptables -t nat -S", sudo=True)
    if res.rc != 0:
        return None
    ranges = []
    for line in res.stdout.splitlines():
        if "DNAT" not in line or "-p udp" not in line:
            continue
        m = re.search(r"--dport (\d+)(?::(\d+))?", line)
        if m:
            ranges.append((int(m.group(1)), int(m.group(2) or m.group(1))))
    return ranges


@requirement("NET-PORT-UDP-RANGE")
def test_udp_range_still_reachable(target, site):
    lo, hi = udp_range(site)
    r = port_probe(target, site)
    _record_path(r)
    in_range = set(range(lo, hi + 1))
    blocked = [p for p in r.udp_blocked if p in in_range]
    in_use = {p: o for p, o in r.udp_in_use.items() if p in in_range}
    record(range=f"{lo}-{hi}", passed=len([p for p in r.udp_passed if p in in_range]),
           in_use=r.udp_in_use_summary() if in_use else "none")
    if blocked:
        dnat = _dnat_udp_ranges(target)
        record(dnat_udp=[f"{a}-{b}" for a, b in dnat or []])
        forwarded = [p for p in blocked if dnat and any(a <= p <= b for a, b in dnat)]
        really = [p for p in blocked if p not in set(forwarded)]
        if really:
            fail(f"{len(really):,} of {len(in_range) - len(in_use):,} ports blocked: {format_ranges(really)}",
                 observed=format_ranges(really), expected=f"all free ports of UDP {lo}-{hi} reach the target",
                 method=_method(r))
        cannot_measure(f"{len(forwarded):,} ports ({format_ranges(forwarded)}) are forwarded by a DNAT rule on "
                       "the target, so a listener there cannot receive them; ACC-TURN-STUN and the DNAT rule "
                       "inspection judge them")
    expect(blocked, f"blocked ports of UDP {lo}-{hi}", method=_method(r)).is_empty(
        f"all free ports of UDP {lo}-{hi} reach the target",
        passed=f"all {len(in_range) - len(in_use):,} free ports of UDP {lo}-{hi} reached the target (blocked: none"
               + (f"; {len(in_use):,} in use by the installation's services)" if in_use else ")"))
