"""DEMO-NET-FIREWALL against real netfilter in lab hosts: every construct class, both ways.

Each case is a lab host with a ruleset (nft, iptables-nft, iptables-legacy). One wirecheck run judges
every host with its blocking ruleset: each must fail and name the rule; then the rules are reset and one
run judges the same constructs letting Wire's ports through: each must pass. The check's own port probe
runs in the same pytest run, so a blocking ruleset cannot pass even where the rule reader cannot judge
it. Hosts where the probe cannot run show that an unmodelled construct is then an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.lab.core import Lab, LabHost
from tests.support.wc import host_args, run_suite


def nft(table: str, chain: str, spec: str, *rules: str) -> list[str]:
    """`nft add table/chain/rule` commands for one base chain (table given as "family name")."""
    out = [f"nft add table {table}", f"nft add chain {table} {chain} '{{ {spec}; }}'"]
    return out + [f"nft add rule {table} {chain} {r}" for r in rules]


INPUT = "type filter hook input priority 0; policy accept"
#: the media range of these runs (the catalog's 32768-65535 costs the probe more and proves nothing more)
SMALL_RANGE = ["--param", "DEMO-NET-FIREWALL.udp_range=40000-41000", "--param", "NET-PORT-UDP-RANGE.udp_range=40000-41000",
               "--port-timeout", "1"]
OTHER_IFACE = "ip link add other0 type veth peer name other1 && ip link set other0 up"
#: Wire's traffic arrives through a bridge port (eth0 enslaved to br0, which holds the address)
BRIDGED = ("addr=$(ip -4 -o addr show dev eth0 | awk '{print $4}') && ip link add br0 type bridge && "
           "ip link set br0 up && ip addr flush dev eth0 && ip link set eth0 master br0 && ip addr add $addr dev br0")


@dataclass
class Case:
    name: str
    blocking: list[str]              # a ruleset that blocks some of Wire's ports
    needles: list[str]               # what the failure message must say (the rule, by name)
    accepting: list[str]             # the same construct, letting Wire's ports through
    host_setup: list[str] = field(default_factory=lambda: [OTHER_IFACE])
    probe_blocks: bool = True        # the probe itself sees the blocking ruleset block


CASES = [
    Case("nft-native-table-named-filter",
         nft("ip filter", "input", INPUT, "udp dport 40000-40999 drop"),
         ["INPUT udp/40000-40999: drop by `nft: table ip filter chain input handle"],
         nft("ip filter", "input", INPUT, "udp dport 40000-40999 accept")),
    Case("nft-prerouting-hook",
         nft("inet t", "pre", "type filter hook prerouting priority 0", "tcp dport 443 drop"),
         ["PREROUTING tcp/443: drop by `nft: table inet t chain pre handle"],
         nft("inet t", "pre", "type filter hook prerouting priority 0", "tcp dport 443 accept")),
    Case("nft-netdev-ingress",
         nft("netdev t", "ing", "type filter hook ingress device eth0 priority 0", "udp dport 40500-40509 drop"),
         ["INGRESS (netdev) udp/40500-40509: drop by `nft: table netdev t chain ing handle"],
         # the same drop on another interface: not on Wire's way
         nft("netdev t", "ing", "type filter hook ingress device other0 priority 0", "udp dport 40500-40509 drop")),
    Case("nft-bridge-family",
         nft("bridge t", "in", INPUT, "udp dport 40500-40509 drop"),
         ["INPUT (bridge) udp/40500-40509: drop by `nft: table bridge t chain in handle"],
         nft("bridge t", "in", INPUT, "iifname other9 udp dport 40500-40509 drop"),
         host_setup=[BRIDGED]),
    Case("nft-verdict-map",
         nft("inet t", "in", INPUT, "udp dport vmap '{ 40000-40099 : drop, 3478 : accept }'"),
         ["INPUT udp/40000-40099: drop by `nft: table inet t chain in handle"],
         nft("inet t", "in", INPUT, "udp dport vmap '{ 40000-40099 : accept, 3478 : accept }'")),
    Case("nft-raw-priority",
         nft("ip t", "raw", "type filter hook prerouting priority raw", "udp dport 3478 drop"),
         ["PREROUTING udp/3478: drop by `nft: table ip t chain raw handle"],
         nft("ip t", "raw", "type filter hook prerouting priority raw", "udp dport 3478 accept")),
    Case("iptables-raw-table",
         ["iptables -t raw -A PREROUTING -p udp --dport 3478 -j DROP"],
         ["PREROUTING udp/3478: drop by `-A PREROUTING -p udp -m udp --dport 3478 -j DROP`"],
         ["iptables -t raw -A PREROUTING -p udp --dport 3478 -j ACCEPT"]),
    # ACCEPTs for some sources only and for a packet rate only: the clients beyond them meet the policy
    Case("iptables-accept-from-an-address-or-at-a-rate",
         ["iptables -A INPUT -p tcp --dport 22 -j ACCEPT", "iptables -A INPUT -s 10.0.0.0/8 -j ACCEPT",
          "iptables -A INPUT -m limit --limit 1/min -j ACCEPT", "iptables -P INPUT DROP"],
         ["INPUT udp/40000-41000: drop by `iptables INPUT policy DROP`"],
         ["iptables -A INPUT -s 10.0.0.0/8 -j ACCEPT", "iptables -A INPUT -m limit --limit 1/min -j ACCEPT"]),
    Case("iptables-drop-on-the-interface",
         ["iptables -A INPUT -i eth0 -p udp --dport 40000:40999 -j DROP"],
         ["INPUT udp/40000-40999: drop by `-A INPUT -i eth0 -p udp -m udp --dport 40000:40999 -j DROP`"],
         ["iptables -A INPUT -i other0 -p udp --dport 40000:40999 -j DROP"]),
    Case("iptables-legacy",
         ["iptables-legacy -A INPUT -p tcp -m multiport --dports 80,443 -j REJECT"],
         ["INPUT tcp/443: reject by `-A INPUT -p tcp -m multiport --dports 80,443 -j REJECT"],
         ["iptables-legacy -A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT"]),
    # a construct nobody listed (`ct mark` is not modelled): the reader cannot judge it, the probe decides
    Case("nft-ct-mark-not-modelled",
         nft("inet t", "in", INPUT, "udp dport 40000-40999 ct mark 0x0 drop"),
         ["the port probe measured UDP 40000-40999 blocked",
          "cannot judge: ct mark 0 in `nft: table inet t chain in handle"],
         nft("inet t", "in", INPUT, "udp dport 40000-40999 ct mark 0x5 drop")),
    # every second packet dropped at random: the probe's retries get through, the rule is still named
    Case("nft-numgen-random",
         nft("inet t", "in", INPUT, "udp dport 40000-40999 numgen random mod 2 0 drop"),
         ["INPUT udp/40000-40999: drop by `nft: table inet t chain in handle"],
         nft("inet t", "in", INPUT, "udp dport 40000-40999 numgen random mod 2 0 accept"),
         probe_blocks=False),
]


@pytest.fixture(scope="module")
def case_hosts(lab_module: Lab) -> dict[str, LabHost]:
    made = lab_module.add_hosts([{"name": f"fw{n}", "setup": c.host_setup} for n, c in enumerate(CASES)])
    return {c.name: h for c, h in zip(CASES, made, strict=True)}


def run_with(hosts: list[LabHost], setups: list[list[str]], report: Path):
    for h, setup in zip(hosts, setups, strict=True):
        h.exec("nft flush ruleset; for t in filter nat mangle raw; do iptables-legacy -t $t -F; "
               "iptables-legacy -t $t -X; done; true")
        for command in setup:
            h.exec(command)
    args = ["--hosts", ",".join(h.hostspec for h in hosts), *host_args(hosts[0])[2:]]
    return run_suite([*args, "-k", "test_no_interfering_firewall", *SMALL_RANGE], report)


def test_every_construct_class_both_ways(case_hosts: dict[str, LabHost], tmp_path: Path) -> None:
    """One run with every blocking ruleset (one lab host each), then one with the accepting ones."""
    hosts = [case_hosts[c.name] for c in CASES]
    blocked = run_with(hosts, [c.blocking for c in CASES], tmp_path / "blocked")
    accepted = run_with(hosts, [c.accepting for c in CASES], tmp_path / "accepted")
    wrong = []
    for c, h in zip(CASES, hosts, strict=True):
        bad = blocked.result("DEMO-NET-FIREWALL", h.address)
        good = accepted.result("DEMO-NET-FIREWALL", h.address)
        if bad["status"] != "fail" or not all(n in bad["message"] for n in c.needles):
            wrong.append(f"{c.name} blocking: {bad['status']}: {bad['message']}")
        elif c.probe_blocks and (bad["evidence"]["port_probe"]["blocked"] == "none"
                                 or "the port probe measured" not in bad["message"]):
            wrong.append(f"{c.name} blocking: the probe evidence is missing: {bad['evidence']['port_probe']}")
        if good["status"] != "pass" or good["evidence"]["port_probe"]["blocked"] != "none" or \
                good["evidence"]["rules_blocking"] != "none":
            wrong.append(f"{c.name} accepting: {good['status']}: {good['message']} {good['evidence']}")
    assert not wrong, "\n".join(wrong)
    bridge = blocked.result("DEMO-NET-FIREWALL", case_hosts["nft-bridge-family"].address)
    assert bridge["evidence"]["receiving_interface"] == "br0"
    ctmark = accepted.result("DEMO-NET-FIREWALL", case_hosts["nft-ct-mark-not-modelled"].address)
    assert "ct mark 5" in str(ctmark["evidence"]["settled_by_the_probe"])
    rnd = blocked.result("DEMO-NET-FIREWALL", case_hosts["nft-numgen-random"].address)
    assert "drops some packets only (numgen random mod 2 0" in str(rnd["evidence"]["notes"])


#: a `python3` first on the PATH that is not Python: the probe's temporary listener cannot start (ufw,
#: whose first line names /usr/bin/python3, still works)
NO_PYTHON = {"/usr/local/sbin/python3": ("#!/bin/sh\necho 'python3: not a Python here' >&2; exit 127\n", 0o755)}
FAILING_NFT = ("#!/bin/sh\necho 'netlink: Error: cannot talk to the kernel' >&2\nexit 1\n", 0o755)


def test_without_the_probe(lab_module: Lab, tmp_path: Path) -> None:
    """The probe cannot run: an unmodelled construct is an error, a modelled drop still fails by name, an open
    host passes on its rules; a ruleset that cannot be read at all is an error with the cause; an unmodelled
    construct on a path the probe does not take (forward) is an error although the probe ran."""
    unsure, blocked, open_, unreadable, forward = lab_module.add_hosts([
        {"name": "np1", "files": NO_PYTHON, "setup": nft("inet t", "in", INPUT, "ct mark 0x5 drop")},
        {"name": "np2", "files": NO_PYTHON, "setup": ["iptables -A INPUT -p tcp --dport 443 -j DROP"]},
        {"name": "np3", "files": NO_PYTHON},
        {"name": "np4", "files": {**NO_PYTHON, "/usr/sbin/nft": FAILING_NFT}},
        # the probe runs here, but it never passes the forward hook (Docker's DNAT to minikube does)
        {"name": "np5", "setup": nft("inet t", "fw", "type filter hook forward priority 0", "ct mark 0x5 drop")},
    ])
    hosts = [unsure, blocked, open_, unreadable, forward]
    args = ["--hosts", ",".join(h.hostspec for h in hosts), *host_args(hosts[0])[2:]]
    run = run_suite([*args, "-k", "test_no_interfering_firewall", *SMALL_RANGE], tmp_path)
    res = run.result("DEMO-NET-FIREWALL", unsure.address)
    assert res["status"] == "error", res
    assert "cannot judge the host firewall" in res["message"]
    assert "ct mark 5 in `nft: table inet t chain in" in res["message"]
    assert "could not run" in str(res["evidence"]["port_probe"]["error"])
    res = run.result("DEMO-NET-FIREWALL", blocked.address)
    assert res["status"] == "fail", res
    assert "INPUT tcp/443: drop by `-A INPUT -p tcp -m tcp --dport 443 -j DROP`" in res["message"]
    res = run.result("DEMO-NET-FIREWALL", open_.address)
    assert res["status"] == "pass", res
    assert "the port probe could not run" in res["message"] and "rests on the rules alone" in res["message"]
    res = run.result("DEMO-NET-FIREWALL", forward.address)
    assert res["status"] == "error", res
    assert "FORWARD tcp/22: cannot judge: ct mark 5 in `nft: table inet t chain fw handle" in res["message"]
    assert res["evidence"]["port_probe"]["blocked"] == "none"
    res = run.result("DEMO-NET-FIREWALL", unreadable.address)
    assert res["status"] == "error", res
    assert "`nft -j list ruleset` failed" in res["message"] and "cannot talk to the kernel" in res["message"]


#: restund's ufw as the restund role leaves it, and what SFT needs, for a media range of 40000-41000
CALL_UFW = ["ufw default deny incoming >/dev/null", "ufw default allow outgoing >/dev/null",
            *[f"ufw allow {p} >/dev/null" for p in ("22/tcp", "80/tcp", "443/tcp", "3478/tcp", "8080/tcp", "8443/tcp",
                                                     "3478/udp", "33000/udp", "40000:41000/udp", "40000:41000/tcp")],
            *[f"ufw deny out to {n} >/dev/null" for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")],
            "ufw --force enable >/dev/null"]
BEFORE_UFW = "iptables -I INPUT 1 -p udp --dport 40500:40509 -j DROP"


def test_sft_and_restund_firewalls_follow_the_probe(lab_module: Lab, tmp_path: Path) -> None:
    """ufw says everything is allowed, a rule placed before ufw's drops part of the range: CALL-SFT-FIREWALL
    (preflight) and CALL-RESTUND-FIREWALL (acceptance) fail on the probe's measurement; without it, pass."""
    h = lab_module.add_host("callnode", sysctls={"net.ipv4.ip_local_port_range": "40000 41000"},
                            setup=[*CALL_UFW, BEFORE_UFW])
    inv = lab_module.inventory_ini(tmp_path / "hosts.ini", {"restund": [h], "sft": [h]},
                                   {"target_domain": "wire.example.test"}, hosts=[h])
    args = ["--ansible-inventory", str(inv), "--profile", "production", "--port-timeout", "1",
            "--param", "NET-PORT-UDP-RANGE.udp_range=40000-41000", "--param", "CALL-SFT-FIREWALL.udp_range=40000-41000"]

    def runs(name: str) -> tuple[dict, dict]:
        sft = run_suite([*args, "-k", "test_sft_node_firewall"], tmp_path / f"sft-{name}",
                        suite="suites/preflight/test_restund.py")
        restund = run_suite([*args, "-k", "test_restund_firewall"], tmp_path / f"restund-{name}",
                            suite="suites/acceptance/test_security.py")
        return sft.result("CALL-SFT-FIREWALL"), restund.result("CALL-RESTUND-FIREWALL")

    sft, restund = runs("blocked")
    assert sft["status"] == "fail", sft
    assert "the port probe measured UDP 40500-40509 blocked" in sft["message"]
    assert "INPUT udp/40500-40509: drop by `-A INPUT -p udp -m udp --dport 40500:40509 -j DROP`" in sft["message"]
    assert restund["status"] == "fail", restund
    # ufw's rules are all there: the probe's measurement is the one problem
    assert "on callnode: the port probe measured UDP 40500-40509 blocked (" in restund["message"], restund["message"]
    h.exec(BEFORE_UFW.replace("-I INPUT 1", "-D INPUT"))
    sft, restund = runs("open")
    assert sft["status"] == "pass", sft
    assert restund["status"] == "pass", restund
    assert restund["evidence"]["port_probe"]["blocked"] == "none"
