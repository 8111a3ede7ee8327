"""The cooperative port prober against real namespace hosts with real firewalls.

Hosts come from tests/lab (network namespaces on a bridge, no default route); the rules are real
iptables, nftables and ufw rules inside them. Every test asserts the exact blocked set and that the
listener left no process, socket or file on the host.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.core import Lab, LabHost
from tests.support.footprint import assert_clean_after as clean_after
from tests.support.footprint import host_footprint as footprint
from tests.support.holders import port_holder
from wirecheck.probes import ports
from wirecheck.probes.ports import WINDOW, Pacing, ProbeError, format_ranges, probe_ports

REPO = Path(__file__).resolve().parents[2]
RANGE = range(32768, 65536)
PIPES = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}


def spawn_on(host: LabHost):
    """The engine's target.popen for a lab host, as root (nsenter)."""
    return lambda argv: host.popen(argv, **PIPES)


def spawn_over_ssh(host: LabHost):
    """Over the host's real sshd as its login user: the dropped-connection path is the real one."""
    return lambda argv: subprocess.Popen(host.ssh_argv(shlex.join(argv)), **PIPES)


def assert_clean_after(host: LabHost, before: dict[str, list], timeout: float = 10.0) -> None:
    clean_after(host, before, "the listener", timeout)


FW_RULES = [
    "iptables -A INPUT -p udp --dport 40000:40999 -j DROP",
    "nft add table inet wcfilter",
    "nft add chain inet wcfilter input '{ type filter hook input priority 0; }'",
    "nft add rule inet wcfilter input udp dport 60000-60010 drop",
    "nft add set inet wcfilter blocked '{ type inet_service; }'",
    "nft add element inet wcfilter blocked '{ 61000, 61005, 62000 }'",
    "nft add rule inet wcfilter input udp dport @blocked drop",
    "iptables -A INPUT -p udp --dport 55555 -j REJECT --reject-with icmp-admin-prohibited",
    "iptables -A INPUT -p tcp --dport 443 -j REJECT",
    "iptables -A INPUT -p tcp --dport 80 -j DROP",
]


@pytest.fixture(scope="module")
def hosts(lab_module: Lab) -> dict[str, LabHost]:
    node, clean, fw, ufw = lab_module.add_hosts([
        {"name": "node"},
        {"name": "clean"},
        {"name": "fw", "setup": FW_RULES},
        {"name": "ufw", "private_dirs": ["/etc/ufw"], "setup": [
            "ufw default allow incoming", "ufw deny 45000:45099/udp", "ufw deny 8443/tcp", "ufw --force enable"]},
    ])
    gw = lab_module.add_host("gw", sysctls={"net.ipv4.ip_forward": 1}, setup=[
        f"iptables -t nat -A PREROUTING -p udp --dport 30000:65535 -j DNAT --to-destination {node.address}",
        f"iptables -t nat -A PREROUTING -p tcp --dport 3478 -j DNAT --to-destination {node.address}",
        f"iptables -t nat -A POSTROUTING -d {node.address} -j MASQUERADE",
        # the NAT gateway forwards only part of the range: 50000-50099 is dropped on the way
        "iptables -A FORWARD -p udp --dport 50000:50099 -j DROP",
    ])
    return {"node": node, "clean": clean, "fw": fw, "ufw": ufw, "gw": gw}


#: both ways of receiving the range: one raw socket (as root, the default) and the windows (the fallback)
MODES = pytest.mark.parametrize("raw", [True, False], ids=["raw", "windowed"])


def assert_mode(r: ports.PortProbeResult, raw: bool) -> None:
    if raw:
        # nothing of the range was bound: one listener process reads one raw socket
        assert (r.udp_mode, r.raw_fallback, r.udp_window, r.listener_workers) == ("raw", "", 0, 1)
    else:
        assert r.udp_mode == "windowed" and r.udp_window == WINDOW
        assert r.listener_workers >= 2  # sharded: no process may hold 32,768 sockets here


@MODES
def test_full_range_passes_on_an_open_host(hosts: dict[str, LabHost], raw: bool) -> None:
    h = hosts["clean"]
    before = footprint(h)
    r = probe_ports(spawn_on(h), h.address, udp=RANGE, tcp=[22, 80, 443, 3478], echo_udp=[33000], raw=raw)
    assert r.udp_blocked == []
    assert r.udp_passed == list(RANGE)
    assert r.udp_blocked_summary() == "all 32,768 of 32,768 probed ports got through"
    assert {p: (t.state, t.confirmed) for p, t in r.tcp.items() if p != 22} == {
        80: ("open", True), 443: ("open", True), 3478: ("open", True)}
    assert r.tcp[22].state == "open" and r.tcp[22].existing_service  # the host's own sshd holds 22
    assert r.tcp[22].detail.startswith("SSH-2.0-") and r.tcp[22].passed
    assert r.udp_echo == {33000: True}
    assert r.probed_address == h.address and list(r.receiving_addresses) == [h.address]
    assert h.address in r.target_addresses
    assert_mode(r, raw)
    assert r.udp_held_max == 0 if raw else r.udp_held_max <= 2 * WINDOW
    assert 0 < r.listener_peak_rss_kib < 100 * 1024
    assert_clean_after(h, before)


@MODES
def test_iptables_and_nft_rules_name_exactly_the_blocked_ports(hosts: dict[str, LabHost], raw: bool) -> None:
    h = hosts["fw"]
    before = footprint(h)
    r = probe_ports(spawn_on(h), h.address, udp=RANGE, tcp=[80, 443, 3478], tcp_timeout=2.0, classify=True,
                    raw=raw)
    assert_mode(r, raw)
    expected = set(range(40000, 41000)) | set(range(60000, 60011)) | {55555, 61000, 61005, 62000}
    assert set(r.udp_blocked) == expected
    assert set(r.udp_passed) == set(RANGE) - expected
    assert r.udp_blocked_summary() == ("1,015 of 32,768 ports blocked: 40000-40999, 55555, 60000-60010, 61000, 61005, "
                                       "62000")
    assert sum(x["copies"] for x in r.rounds) >= 3  # blocked only after three datagrams per port
    # refused vs timed out, in the evidence
    assert r.tcp[443].state == "refused" and not r.tcp[443].passed
    assert r.tcp[80].state == "timed out" and not r.tcp[80].passed
    assert r.tcp[3478].passed
    assert r.tcp_summary(443) == "TCP 443 refused (Connection refused)"
    assert r.tcp_summary(80).startswith("TCP 80 timed out")
    # closed vs filtered: DROP is silence, REJECT answers (ICMP, reported by the kernel)
    assert r.udp_classification["40000-40999"].startswith("filtered (dropped")
    assert r.udp_classification["60000-60010"].startswith("filtered (dropped")
    assert r.udp_classification["62000"].startswith("filtered (dropped")   # the nft set
    assert r.udp_classification["55555"].startswith("filtered (rejected) (ICMP communication administratively")
    assert r.tcp[80].classification == "filtered (dropped: no reply)"
    assert r.tcp[443].classification == "filtered (rejected) (ICMP port unreachable)"
    if not raw:
        # the wide bands' samples were held and probed during the first round; the single port after it
        assert {40000, 60000} <= set(r.udp_sampled_early) and 55555 not in r.udp_sampled_early
    else:
        # samples are bound (held) for closed vs filtered: a handful of ports, never a window
        assert 0 < r.udp_held_max <= ports.BANDS
    ev = json.loads(json.dumps(r.evidence()))
    assert ev["udp_blocked"] == "40000-40999, 55555, 60000-60010, 61000, 61005, 62000"
    assert ev["tcp"]["80"]["state"] == "timed out"
    assert_clean_after(h, before)


def test_ufw_deny_range_and_tcp(hosts: dict[str, LabHost]) -> None:
    h = hosts["ufw"]
    before = footprint(h)
    r = probe_ports(spawn_on(h), h.address, udp=range(44000, 46001), tcp=[8443, 3478], tcp_timeout=2.0)
    assert r.udp_blocked == list(range(45000, 45100))
    assert r.tcp[8443].state == "timed out"  # ufw deny = DROP
    assert r.tcp[3478].passed
    assert_clean_after(h, before)


@pytest.mark.parametrize(("window", "raw"), [(None, True), (16, True), (16, False)], ids=["bound", "raw", "windowed"])
def test_ports_in_use_are_reported_with_owner_not_as_blocked(hosts: dict[str, LabHost], window: int | None,
                                                             raw: bool) -> None:
    h = hosts["clean"]
    holder = h.popen(port_holder(range(50000, 50010), tcp=3478), **PIPES)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"
        before = footprint(h)
        r = probe_ports(spawn_on(h), h.address, udp=range(49990, 50020), tcp=[3478], tcp_timeout=2.0,
                        classify=True, window=window, raw=raw)
        assert r.udp_mode == ("bound" if not window else "raw" if raw else "windowed")
        assert sorted(r.udp_in_use) == list(range(50000, 50010))
        assert set(r.udp_in_use.values()) == {f"pid {holder.pid} (python3)"}
        assert r.udp_blocked == []
        assert r.udp_passed == [p for p in range(49990, 50020) if not 50000 <= p < 50010]
        assert r.tcp[3478].existing_service == f"pid {holder.pid} (python3)"
        assert r.tcp[3478].state == "open" and not r.tcp[3478].confirmed and r.tcp[3478].passed
        # the holder reads nothing: no ICMP comes back, which says "not closed", not "open"
        assert r.udp_classification["50000 (in use)"].startswith("no reply")
        assert_clean_after(h, before)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)


#: holds UDP 50000 and lets go of it when the probe's first datagram to UDP 50001 arrives (it watches
#: with a raw socket of its own): a socket the target held for a moment only, such as a DNS lookup's.
#: Raw mode binds nothing, so the listener found 50000 in use before. Windowed mode sends to a window
#: only once the whole window is bound, so its bind of 50000 has failed by then (watching /proc/net/udp
#: for 50001 instead raced: the window's ports are dealt out to workers that bind in parallel, and one
#: of them could bind 50001 before another tried 50000, which was then free; a CI try failed so)
BRIEF_HOLDER = r"""
import socket, sys
held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
held.bind(("0.0.0.0", 50000))
watch = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
watch.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)   # SO_RCVBUFFORCE: the probe sends in bursts
watch.settimeout(20)   # never hang the test: no "released" then
print("ok", flush=True)
while True:
    d = watch.recv(4096)
    i = (d[0] & 15) * 4
    if d[i + 2:i + 4] == (50001).to_bytes(2, "big") and d[i + 8:i + 12] == b"WCP1":
        break
held.close()
print("released", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "windowed"])
@pytest.mark.parametrize("recheck", [True, False])
def test_a_port_held_for_a_moment_is_not_in_use(lab_module: Lab, recheck: bool, raw: bool) -> None:
    """UDP 50000 is held when the probe's window binds it (raw mode: when the listener looks) and free a
    moment later: looked at again after the first round, it is probed and passes. Without that second
    look it reads as in use."""
    h = lab_module.add_host(f"brief{int(recheck)}{'r' if raw else 'w'}")
    holder = h.popen(["python3", "-c", BRIEF_HOLDER], **PIPES)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"
        r = probe_ports(spawn_on(h), h.address, udp=range(45000, 55000), pacing=Pacing(recheck_in_use=recheck),
                        raw=raw)
        assert r.udp_mode == ("raw" if raw else "windowed")
        assert holder.stdout.readline().strip() == b"released"
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    assert r.udp_blocked == []
    if recheck:
        assert 50000 in r.udp_passed and r.udp_in_use == {}
        assert any(x.get("in_use_again") == 1 and x.get("freed") == 1 for x in r.rounds)
    else:
        assert list(r.udp_in_use) == [50000] and 50000 not in r.udp_passed


@pytest.mark.parametrize("window", [None, 128], ids=["bound", "raw"])
def test_dnat_from_one_address_to_another(hosts: dict[str, LabHost], window: int | None) -> None:
    """Probe the gateway's address (the wire_ip) while the listener runs on the node behind it. In raw
    mode (the range larger than a window) the addresses come from the IP headers, after the DNAT."""
    gw, node = hosts["gw"], hosts["node"]
    before = footprint(node)
    r = probe_ports(spawn_on(node), gw.address, udp=range(49900, 50200), tcp=[3478], tcp_timeout=2.0,
                    window=window)
    assert r.udp_mode == ("raw" if window else "bound")
    assert r.probed_address == gw.address
    assert list(r.receiving_addresses) == [node.address]  # arrived on the node, after the DNAT
    assert list(r.sender_addresses) == [gw.address]  # masqueraded by the gateway
    assert r.udp_blocked == list(range(50000, 50100))
    assert r.tcp[3478].passed
    assert_clean_after(node, before)


def test_loss_is_not_a_blocked_port(hosts: dict[str, LabHost]) -> None:
    """10 % random loss on the way in: re-probing recovers every port; nothing is reported blocked.
    TCP too: every SYN to 3478 and 443 may be lost, the attempts from other source ports get through."""
    h = hosts["clean"]
    rules = ["INPUT -p udp --dport 33000:34999 -m statistic --mode random --probability 0.1 -j DROP",
             "INPUT -p tcp -m multiport --dports 443,3478 -m statistic --mode random --probability 0.1 -j DROP"]
    for rule in rules:
        h.exec(f"iptables -A {rule}")
    try:
        r = probe_ports(spawn_on(h), h.address, udp=range(33000, 35000), tcp=[443, 3478],
                        pacing=Pacing(max_rounds=8))
    finally:
        for rule in rules:
            h.exec(f"iptables -D {rule}")
    assert r.udp_blocked == []
    assert r.tcp[443].passed and r.tcp[3478].passed
    assert r.recovered_by_retry > 50
    assert r.rounds[0]["missing"] > 50


def test_over_real_ssh(hosts: dict[str, LabHost]) -> None:
    h = hosts["fw"]
    before = footprint(h)
    r = probe_ports(spawn_over_ssh(h), h.address, udp=range(39990, 40010), tcp=[3478])
    assert r.udp_blocked == list(range(40000, 40010))
    assert r.tcp[3478].passed
    assert_clean_after(h, before)


def test_without_root_the_listener_falls_back_to_windows(hosts: dict[str, LabHost]) -> None:
    """As the login user (no sudo) the raw socket is refused: the range larger than a window is bound
    window by window instead, with the same exact verdict, and the evidence says why."""
    h = hosts["fw"]
    r = probe_ports(spawn_over_ssh(h), h.address, udp=range(39500, 40100), window=256)
    assert r.udp_mode == "windowed" and r.udp_window == 256 and "not root" in r.raw_fallback
    assert r.udp_blocked == list(range(40000, 40100)) and r.udp_passed == list(range(39500, 40000))
    assert 256 < r.udp_held_max <= 2 * 256


def test_probe_from_another_host(hosts: dict[str, LabHost]) -> None:
    """--probe-from: the datagrams and connections leave from a probe host, not from this machine."""
    h, probe_host = hosts["fw"], hosts["clean"]
    before, before_probe = footprint(h), footprint(probe_host)
    r = probe_ports(spawn_on(h), h.address, udp=range(39995, 40005), tcp=[80, 443, 3478], tcp_timeout=1.5,
                    sender_spawn=spawn_on(probe_host), sender_name="clean", classify=True)
    assert r.prober == "clean"
    assert list(r.sender_addresses) == [probe_host.address]
    assert r.udp_blocked == list(range(40000, 40005))
    assert r.tcp[80].state == "timed out" and r.tcp[3478].passed
    # closed vs filtered from the probe host as well (the kernel's ICMP reports, no raw socket there)
    assert r.udp_classification["40000-40004"].startswith("filtered (dropped")
    assert r.tcp[80].classification == "filtered (dropped: no reply)"
    assert r.tcp[443].classification == "filtered (rejected) (ICMP port unreachable)"
    assert_clean_after(h, before)
    assert_clean_after(probe_host, before_probe)


def test_a_rejected_band_is_told_from_a_dropped_one_despite_the_icmp_rate_limit(lab_module: Lab) -> None:
    """A REJECT band (ICMP port unreachable, for ports our listener holds) and a DROP band side by side.
    The target's kernel answers about 6 ICMP errors, then 1 per second: the rounds' datagrams spend
    them, and the ICMP errors that came back to the rounds still name the band rejected."""
    h = lab_module.add_host("rejectband", setup=[
        "iptables -A INPUT -p udp --dport 41000:41019 -j REJECT",
        "iptables -A INPUT -p udp --dport 41030:41039 -j DROP"])
    r = probe_ports(spawn_on(h), h.address, udp=range(40990, 41050), classify=True)
    assert r.udp_blocked == list(range(41000, 41020)) + list(range(41030, 41040))
    assert r.udp_classification["41000-41019"].startswith("filtered (rejected) (ICMP port unreachable)")
    assert r.udp_classification["41030-41039"].startswith("filtered (dropped: no reply)")


#: drops the first of every two SYNs to TCP 3478 (statistic nth: deterministic, not random)
FIRST_SYN_LOST = "INPUT -p tcp --dport 3478 --syn -m statistic --mode nth --every 2 --packet 0 -j DROP"


def test_a_lost_syn_is_not_a_blocked_tcp_port(lab_module: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first SYN to TCP 3478 is lost and the timeout (0.9 s) ends before the kernel's own
    retransmission (1 s): the next attempt from another source port connects inside the timeout.
    With a single attempt, as before, the same loss reads as a dropped port."""
    h = lab_module.add_host("synloss")
    h.exec(f"iptables -A {FIRST_SYN_LOST}")
    try:
        r = probe_ports(spawn_on(h), h.address, tcp=[3478], tcp_timeout=0.9)
    finally:
        h.exec(f"iptables -D {FIRST_SYN_LOST}")
    assert r.tcp[3478].passed and r.tcp_attempts == ports.TCP_ATTEMPTS > 1
    assert r.tcp[3478].seconds >= ports.tcp_stagger(0.9) * 0.9   # the second attempt connected
    monkeypatch.setattr(ports, "TCP_ATTEMPTS", 1)
    h.exec(f"iptables -A {FIRST_SYN_LOST}")
    try:
        r = probe_ports(spawn_on(h), h.address, tcp=[3478], tcp_timeout=0.9)
    finally:
        h.exec(f"iptables -D {FIRST_SYN_LOST}")
    assert r.tcp[3478].state == "timed out" and not r.tcp[3478].passed
    assert r.tcp[3478].classification == "filtered (dropped: no reply)"


def test_listener_start_failure_is_a_probe_error(hosts: dict[str, LabHost]) -> None:
    h = hosts["clean"]
    before = footprint(h)
    with pytest.raises(ProbeError):
        probe_ports(lambda argv: h.popen(["python3-does-not-exist", *argv[1:]], **PIPES), h.address,
                    udp=range(40000, 40010), start_timeout=5)
    assert_clean_after(h, before)


_CHILD = """
import json, shlex, subprocess, sys
sys.path.insert(0, {repo!r})
from wirecheck.probes.ports import Pacing, probe_ports
prefix = json.loads(sys.argv[1])
def spawn(argv):
    cmd = prefix + [shlex.join(argv)] if prefix[0] == "ssh" else prefix + argv
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
probe_ports(spawn, sys.argv[2], udp=range(32768, 65536), pacing=Pacing(settle=300), deadline=600,
            raw=sys.argv[3] == "raw")
"""


def _wait_for_listener(host: LabHost, raw: bool, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if raw:     # the listener's raw socket is open (over ssh: sudo's; nsenter: root's)
            if int(host.exec("ss -Hwa | wc -l").stdout.strip() or 0) >= 1:
                return
        elif int(host.exec("ss -Huan | wc -l").stdout.strip() or 0) >= 2 * WINDOW:
            return      # two windows held: the first awaiting, the next bound
        time.sleep(0.2)
    raise AssertionError("listener did not come up")


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "windowed"])
@pytest.mark.parametrize("how", ["pytest killed", "ssh dropped"])
def test_listener_goes_away_when_the_prober_dies(hosts: dict[str, LabHost], how: str, raw: bool) -> None:
    """Kill the probing process (or its SSH connection) mid-probe: the listener must vanish."""
    h = hosts["clean"]
    before = footprint(h)
    if how == "pytest killed":
        prefix = ["nsenter", "-t", str(h.holder.pid), "-n", "-m", "-u"] if h.holder else []
    else:
        prefix = [*h.ssh_argv(), "--", *(["sudo", "-n"] if raw else [])]  # ssh ... user@host -- <quoted argv>
    # datagrams go to a lab address where nobody is: the first window waits (settle 300 s) with the
    # next one bound, until the prober dies
    nobody = h.address.rsplit(".", 1)[0] + ".254"
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(repo=str(REPO)), json.dumps(prefix), nobody,
                              "raw" if raw else "windowed"], start_new_session=True)
    try:
        _wait_for_listener(h, raw)
        if how == "pytest killed":
            child.send_signal(signal.SIGKILL)
        else:
            # drop the SSH connection under the running probe: kill the ssh client only
            ssh_pids = subprocess.run(["pgrep", "-s", str(child.pid), "-x", "ssh"], capture_output=True,
                                      text=True).stdout.split()
            assert ssh_pids, "no ssh client found"
            for pid in ssh_pids:
                os.kill(int(pid), signal.SIGKILL)
        assert_clean_after(h, before, timeout=15)
    finally:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait(timeout=10)


def test_tcp_accepted_by_another_listener_is_not_reachable(lab_module: Lab) -> None:
    """Issue 12 mutant: a TCP port that something other than wirecheck's listener accepts (here a
    REDIRECT to a foreign listener on 8081) connects, but wirecheck's token never arrives: the port is
    open, not confirmed, and not counted as reachable. Port 443 on the same host is the control."""
    h = lab_module.add_host("redirected", setup=[
        "iptables -t nat -A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 8081"])
    # the system's python3: the runner's venv may live under /tmp, which a lab host has private
    foreign = h.popen(["python3", "-c", (
        "import socket,sys\n"
        "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',8081));s.listen()\n"
        "print('ok',flush=True)\n"
        "sys.stdin.read()\n")], **PIPES)
    try:
        assert foreign.stdout is not None and foreign.stdout.readline().strip() == b"ok"
        r = probe_ports(spawn_on(h), h.address, udp=[], tcp=[80, 443], tcp_timeout=2.0)
        assert (r.tcp[80].state, r.tcp[80].confirmed, r.tcp[80].existing_service) == ("open", False, None)
        assert not r.tcp[80].passed
        assert r.tcp_summary(80) == "TCP 80 open but the connection did not reach the wirecheck listener"
        assert (r.tcp[443].state, r.tcp[443].confirmed) == ("open", True) and r.tcp[443].passed
    finally:
        assert foreign.stdin is not None
        foreign.stdin.close()
        foreign.wait(timeout=10)


def test_a_whole_range_dropped_is_told_from_loss_by_a_sample(lab_module: Lab) -> None:
    """Every UDP port dropped: the first round brings nothing, an even sample re-probed brings nothing
    either, so the range is blocked without a wait per window and round; the set is still exact."""
    h = lab_module.add_host("dropall", setup=["iptables -A INPUT -p udp --dport 32768:65535 -j DROP"])
    before = footprint(h)
    r = probe_ports(spawn_on(h), h.address, udp=RANGE)
    assert r.udp_blocked == list(RANGE) and r.udp_passed == []
    assert r.sampled_retry and r.rounds[1]["sample_of"] == len(RANGE) and r.rounds[1]["arrived"] == 0
    assert len(r.rounds) == 2
    assert_clean_after(h, before)


def test_loss_on_top_of_a_wide_band_is_reprobed_in_full(lab_module: Lab) -> None:
    """A dropped band wider than two windows plus 10 % loss on the rest: every missing port is probed
    again (no sampling: something got through), and only the band stays blocked."""
    h = lab_module.add_host("bandloss", setup=[
        "iptables -A INPUT -p udp --dport 40000:49999 -j DROP",
        "iptables -A INPUT -p udp -m statistic --mode random --probability 0.10 -j DROP"])
    r = probe_ports(spawn_on(h), h.address, udp=RANGE)
    assert r.udp_blocked == list(range(40000, 50000)), format_ranges(r.udp_blocked)
    assert not r.sampled_retry and r.recovered_by_retry > 0


def test_raw_mode_tells_two_rejected_bands_from_a_dropped_one(lab_module: Lab) -> None:
    """Raw mode: the ports that arrived spend the target's ICMP budget (6 answers, then 1 per second) on
    port unreachables, so each REJECT band's sample is asked when the target answers again, one band
    per answer; the DROP band stays silent with an answer due, and is named dropped. The ports in use
    are probed before the first round, while the budget is whole."""
    h = lab_module.add_host("rejecttwo", setup=[
        "iptables -A INPUT -p udp --dport 41000:41019 -j REJECT",
        "iptables -A INPUT -p udp --dport 41030:41039 -j DROP",
        "iptables -A INPUT -p udp --dport 41100:41109 -j REJECT --reject-with icmp-admin-prohibited",
        "iptables -A INPUT -p udp --dport 41501 -j REJECT"])
    # two ports in use, one behind a REJECT rule: probed before the first round, while the budget is whole
    holder = h.popen(port_holder(range(41500, 41502)), **PIPES)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"
        r = probe_ports(spawn_on(h), h.address, udp=range(40000, 42200), classify=True, window=1024)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    assert r.udp_mode == "raw" and sorted(r.udp_in_use) == [41500, 41501]
    assert r.udp_classification["41500 (in use)"].startswith("no reply")
    assert r.udp_classification["41501 (in use)"] == "closed (ICMP port unreachable)"
    assert r.udp_blocked == list(range(41000, 41020)) + list(range(41030, 41040)) + list(range(41100, 41110))
    assert r.udp_classification["41000-41019"].startswith("filtered (rejected) (ICMP port unreachable)")
    assert r.udp_classification["41030-41039"].startswith("filtered (dropped: no reply)")
    assert r.udp_classification["41100-41109"].startswith(
        "filtered (rejected) (ICMP communication administratively prohibited)")


def test_the_clean_after_check_names_what_was_left(hosts: dict[str, LabHost]) -> None:
    """The 'nothing left on the target' check the tests above rely on fails when something was left:
    a process still listening on a UDP port in the host is named, with its socket."""
    h = hosts["clean"]
    before = footprint(h)
    left = h.popen(["python3", "-c", "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                    "s.bind(('0.0.0.0', 47123)); print('up', flush=True); sys.stdin.read()"],
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert left.stdout is not None and left.stdout.readline().strip() == "up"
        with pytest.raises(AssertionError) as caught:
            assert_clean_after(h, before, timeout=0.5)
    finally:
        assert left.stdin is not None
        left.stdin.close()
        left.wait(timeout=10)
    text = str(caught.value)
    assert "the listener left on the target" in text and "0.0.0.0:47123" in text and "'pids'" in text, text
    assert_clean_after(h, before)
