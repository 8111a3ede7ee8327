"""DEMO-NET-FIREWALL against real netfilter in lab hosts: every construct class, both ways.

Each case writes a ruleset into a lab host (nft, iptables-nft, iptables-legacy), runs the check the way a
user does, and asserts: a ruleset that blocks Wire's ports fails and names the rule; the same construct
accepting them passes. The check's own port probe runs in the same pytest run, so a blocking ruleset
cannot pass even where the rule reader cannot judge it. One host is shared by the plain cases (its
rules are reset between them); a bridged host and a host where the probe cannot run have their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.core import Lab, LabHost
from tests.support.wc import host_args, run_suite

RESET = ("nft flush ruleset; for t in filter nat mangle raw; do iptables-legacy -t $t -F; iptables-legacy -t $t -X; "
         "iptables-legacy -t $t -P PREROUTING ACCEPT 2>/dev/null; iptables-legacy -t $t -P INPUT ACCEPT 2>/dev/null; "
         "done; true")


def nft(table: str, chain: str, spec: str, *rules: str) -> list[str]:
    """`nft add table/chain/rule` commands for one base chain (table given as "family name")."""
    out = [f"nft add table {table}", f"nft add chain {table} {chain} '{{ {spec}; }}'"]
    return out + [f"nft add rule {table} {chain} {r}" for r in rules]


@pytest.fixture(scope="module")
def hosts(lab_module: Lab) -> dict[str, LabHost]:
    plain, bridged, noprobe = lab_module.add_hosts([
        {"name": "fwplain", "setup": ["ip link add other0 type veth peer name other1", "ip link set other0 up"]},
        # Wire's traffic arrives through a bridge port (eth0 enslaved to br0, which holds the address)
        {"name": "fwbridge", "setup": [
            "addr=$(ip -4 -o addr show dev eth0 | awk '{print $4}') && ip link add br0 type bridge && "
            "ip link set br0 up && ip addr flush dev eth0 && ip link set eth0 master br0 && "
            "ip addr add $addr dev br0"]},
        # a `python3` first on the PATH that is not Python: the probe's temporary listener cannot start
        # (ufw, whose first line names /usr/bin/python3, still works)
        {"name": "fwnoprobe", "files": {"/usr/local/sbin/python3": (
            "#!/bin/sh\necho 'python3: not a Python here' >&2; exit 127\n", 0o755)}},
    ])
    return {"plain": plain, "bridged": bridged, "noprobe": noprobe}


def check(host: LabHost, setup: list[str], tmp_path: Path, name: str) -> dict:
    host.exec(RESET)
    for command in setup:
        host.exec(command)
    run = run_suite([*host_args(host), "-k", "test_no_interfering_firewall", *SMALL_RANGE], tmp_path / name)
    return run.result("DEMO-NET-FIREWALL")


INPUT = "type filter hook input priority 0; policy accept"
#: the media range of these runs (the catalog's 32768-65535 costs the probe more and proves nothing more)
SMALL_RANGE = ["--param", "DEMO-NET-FIREWALL.udp_range=40000-41000", "--param", "NET-PORT-UDP-RANGE.udp_range=40000-41000"]

#: (case, setup that blocks, text naming the rule in the message, setup of the same construct accepting)
CASES = [
    ("nft-native-table-named-filter",
     nft("ip filter", "input", INPUT, "udp dport 40000-40999 drop"),
     "INPUT udp/40000-40999: drop by `nft: table ip filter chain input handle",
     nft("ip filter", "input", INPUT, "udp dport 40000-40999 accept")),
    ("nft-prerouting-hook",
     nft("inet t", "pre", "type filter hook prerouting priority 0", "tcp dport 443 drop"),
     "PREROUTING tcp/443: drop by `nft: table inet t chain pre handle",
     nft("inet t", "pre", "type filter hook prerouting priority 0", "tcp dport 443 accept")),
    ("nft-netdev-ingress",
     nft("netdev t", "ing", "type filter hook ingress device eth0 priority 0", "udp dport 40500-40509 drop"),
     "INGRESS (netdev) udp/40500-40509: drop by `nft: table netdev t chain ing handle",
     # the same drop on another interface: not on Wire's way
     nft("netdev t", "ing", "type filter hook ingress device other0 priority 0", "udp dport 40500-40509 drop")),
    ("nft-verdict-map",
     nft("inet t", "in", INPUT, "udp dport vmap '{ 40000-40099 : drop, 3478 : accept }'"),
     "INPUT udp/40000-40099: drop by `nft: table inet t chain in handle",
     nft("inet t", "in", INPUT, "udp dport vmap '{ 40000-40099 : accept, 3478 : accept }'")),
    ("nft-raw-priority",
     nft("ip t", "raw", "type filter hook prerouting priority raw", "udp dport 3478 drop"),
     "PREROUTING udp/3478: drop by `nft: table ip t chain raw handle",
     nft("ip t", "raw", "type filter hook prerouting priority raw", "udp dport 3478 accept")),
    ("iptables-raw-table",
     ["iptables -t raw -A PREROUTING -p udp --dport 3478 -j DROP"],
     "PREROUTING udp/3478: drop by `-A PREROUTING -p udp -m udp --dport 3478 -j DROP`",
     ["iptables -t raw -A PREROUTING -p udp --dport 3478 -j ACCEPT"]),
    # ACCEPTs for some sources only and for a packet rate only: the clients beyond them meet the policy
    ("iptables-accept-from-an-address-or-at-a-rate",
     ["iptables -A INPUT -p tcp --dport 22 -j ACCEPT", "iptables -A INPUT -s 10.0.0.0/8 -j ACCEPT",
      "iptables -A INPUT -m limit --limit 1/min -j ACCEPT", "iptables -P INPUT DROP"],
     "INPUT udp/40000-41000: drop by `iptables INPUT policy DROP`",
     ["iptables -A INPUT -s 10.0.0.0/8 -j ACCEPT", "iptables -A INPUT -m limit --limit 1/min -j ACCEPT"]),
    ("iptables-drop-on-the-interface",
     ["iptables -A INPUT -i eth0 -p udp --dport 40000:40999 -j DROP"],
     "INPUT udp/40000-40999: drop by `-A INPUT -i eth0 -p udp -m udp --dport 40000:40999 -j DROP`",
     ["iptables -A INPUT -i other0 -p udp --dport 40000:40999 -j DROP"]),
    ("iptables-legacy",
     ["iptables-legacy -A INPUT -p tcp -m multiport --dports 80,443 -j REJECT"],
     "INPUT tcp/443: reject by `-A INPUT -p tcp -m multiport --dports 80,443 -j REJECT",
     ["iptables-legacy -A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_construct_both_ways(hosts: dict[str, LabHost], tmp_path: Path, case) -> None:
    name, blocking, needle, accepting = case
    h = hosts["plain"]
    blocked = check(h, blocking, tmp_path, "blocked")
    assert blocked["status"] == "fail", blocked
    assert needle in blocked["message"], blocked["message"]
    assert "the port probe measured" in blocked["message"], blocked["message"]
    assert blocked["evidence"]["port_probe"]["blocked"] != "none"
    ok = check(h, accepting, tmp_path, "accepted")
    assert ok["status"] == "pass", ok
    assert ok["evidence"]["port_probe"]["blocked"] == "none"
    assert ok["evidence"]["rules_blocking"] == "none"


def test_bridge_family_both_ways(hosts: dict[str, LabHost], tmp_path: Path) -> None:
    h = hosts["bridged"]
    spec = "type filter hook input priority 0; policy accept"
    blocked = check(h, nft("bridge t", "in", spec, "udp dport 40500-40509 drop"), tmp_path, "blocked")
    assert blocked["status"] == "fail", blocked
    assert "INPUT (bridge) udp/40500-40509: drop by `nft: table bridge t chain in handle" in blocked["message"]
    assert "the port probe measured UDP 40500-40509 blocked" in blocked["message"]
    assert blocked["evidence"]["receiving_interface"] == "br0"
    ok = check(h, nft("bridge t", "in", spec, "iifname other9 udp dport 40500-40509 drop"), tmp_path, "accepted")
    assert ok["status"] == "pass", ok


def test_a_construct_nobody_listed_cannot_pass(hosts: dict[str, LabHost], tmp_path: Path) -> None:
    """`ct mark` is not modelled: the reader says it cannot judge, the probe decides, both ways."""
    h = hosts["plain"]
    blocked = check(h, nft("inet t", "in", INPUT, "udp dport 40000-40999 ct mark 0x0 drop"), tmp_path, "ctmark0")
    assert blocked["status"] == "fail", blocked
    assert "the port probe measured UDP 40000-40999 blocked" in blocked["message"], blocked["message"]
    assert "cannot judge: ct mark 0 in `nft: table inet t chain in handle" in blocked["message"], blocked["message"]
    # a ct mark no packet carries: the reader cannot judge it, the probe measured every port reached
    ok = check(h, nft("inet t", "in", INPUT, "ct mark 0x5 drop"), tmp_path, "ctmark5")
    assert ok["status"] == "pass", ok
    assert "ct mark 5" in str(ok["evidence"]["settled_by_the_probe"])


def test_a_random_share_dropped_is_interference(hosts: dict[str, LabHost], tmp_path: Path) -> None:
    """`numgen random` drops every second packet; the probe's retries get through, the rule is still named."""
    h = hosts["plain"]
    res = check(h, nft("inet t", "in", INPUT, "udp dport 40000-40999 numgen random mod 2 0 drop"), tmp_path, "rnd")
    assert res["status"] == "fail", res
    assert "INPUT udp/40000-40999: drop by `nft: table inet t chain in handle" in res["message"]
    assert "drops some packets only (numgen random mod 2 0" in str(res["evidence"]["notes"])


def test_without_the_probe_an_unmodelled_construct_is_an_error(hosts: dict[str, LabHost], tmp_path: Path) -> None:
    h = hosts["noprobe"]
    unsure = check(h, nft("inet t", "in", INPUT, "ct mark 0x5 drop"), tmp_path, "ctmark")
    assert unsure["status"] == "error", unsure
    assert "cannot judge the host firewall" in unsure["message"]
    assert "ct mark 5 in `nft: table inet t chain in" in unsure["message"]
    assert "could not run" in str(unsure["evidence"]["port_probe"]["error"])
    # a rule the reader models still fails by name; an open host still passes on its rules
    blocked = check(h, ["iptables -A INPUT -p tcp --dport 443 -j DROP"], tmp_path, "blocked")
    assert blocked["status"] == "fail"
    assert "INPUT tcp/443: drop by `-A INPUT -p tcp -m tcp --dport 443 -j DROP`" in blocked["message"]
    assert check(h, [], tmp_path, "open")["status"] == "pass"


def test_unreadable_ruleset_is_an_error(hosts: dict[str, LabHost], tmp_path: Path) -> None:
    h = hosts["noprobe"]
    fake = "/run/wc-fake-nft"
    h.exec(f"printf '#!/bin/sh\\necho \"netlink: Error: cannot talk to the kernel\" >&2\\nexit 1\\n' > {fake} && "
           f"chmod 755 {fake} && mount --bind {fake} /usr/sbin/nft")
    try:
        res = check(h, [], tmp_path, "nonft")
    finally:
        h.exec("umount /usr/sbin/nft")
    assert res["status"] == "error", res
    assert "`nft -j list ruleset` failed" in res["message"] and "cannot talk to the kernel" in res["message"]
