"""suites/preflight/test_ports.py end to end: `pytest suites/preflight -k ports --hosts <lab host>` in a
subprocess, against namespace hosts with real iptables/nftables rules, asserting compliance.json and
that the target is left exactly as it was (no process, socket or file), also when pytest is killed.
Then suites/acceptance/test_ports.py against a lab host running real services: nginx (80 redirecting
to HTTPS), coturn (STUN/TURN on 3478), a TCP service on 443, and the demo's kind of DNAT forwarding
part of the UDP range to another host.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.core import Lab, LabHost
from tests.support.footprint import assert_clean_after as clean_after
from tests.support.footprint import host_footprint as footprint
from tests.support.holders import port_holder
from tests.support.procs import stop_all
from tests.support.publicip import PublicIpServer
from tests.support.wc import QUIET_PLUGINS, REPO, host_args, run_suite

PIPES = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
PORT_REQS = ["NET-PORT-TCP-22", "NET-PORT-TCP-80", "NET-PORT-TCP-443", "NET-PORT-TURN-3478", "NET-PORT-UDP-RANGE",
             "NET-LOCAL-PORT-RANGE", "DEMO-NET-WIRE-IP", "DEMO-NET-LOCAL-PORTS-FREE", "IMP-HOST-PORTS", "IMP-MTU"]
FIREWALL = [
    "iptables -A INPUT -p udp --dport 40000:40999 -j DROP",
    "nft add table inet wcfilter",
    "nft add chain inet wcfilter input '{ type filter hook input priority 0; }'",
    "nft add rule inet wcfilter input udp dport 60000-60010 drop",
    "iptables -A INPUT -p tcp --dport 443 -j REJECT",
    "iptables -A INPUT -p tcp --dport 80 -j DROP",
    "iptables -A INPUT -p udp --dport 65535 -j DROP",      # the range's last port: a boundary
]
#: a default route into a veth pair whose both ends stay in the host (no dummy module here): IMP-MTU
#: has an interface to judge, and nothing can leave (the peer end hands packets back to a host that
#: does not forward)
DUMMY_DEFAULT = ["ip link add d0 type veth peer name d0p", "ip link set d0 mtu {mtu} up",
                 "ip link set d0p mtu {mtu} up", "ip route add default dev d0"]


def assert_clean_after(host: LabHost, before: dict[str, list], timeout: float = 15.0) -> None:
    clean_after(host, before, "the port probe", timeout, step=0.3)


@pytest.fixture(scope="module")
def hosts(lab_module: Lab) -> dict[str, LabHost]:
    node, fw, clean, small_mtu = lab_module.add_hosts([
        {"name": "node", "setup": [c.format(mtu=1500) for c in DUMMY_DEFAULT]},
        {"name": "fw", "setup": FIREWALL},
        {"name": "clean", "setup": [c.format(mtu=1500) for c in DUMMY_DEFAULT]},
        {"name": "smallmtu", "setup": [c.format(mtu=1400) for c in DUMMY_DEFAULT]},
    ])
    gw = lab_module.add_host("gw", sysctls={"net.ipv4.ip_forward": 1}, setup=[
        f"iptables -t nat -A PREROUTING -p udp --dport 3478 -j DNAT --to-destination {node.address}",
        f"iptables -t nat -A PREROUTING -p udp --dport 32768:65535 -j DNAT --to-destination {node.address}",
        f"iptables -t nat -A PREROUTING -p tcp -m multiport --dports 80,443,3478,8080 -j DNAT "
        f"--to-destination {node.address}",
        f"iptables -t nat -A POSTROUTING -d {node.address} -j MASQUERADE",
    ])
    return {"node": node, "fw": fw, "clean": clean, "smallmtu": small_mtu, "gw": gw}


def run_ports(host: LabHost, tmp_path: Path, *extra: str):
    run = run_suite(["-k", "ports", *host_args(host), *extra], tmp_path / "report")
    assert (tmp_path / "report" / "compliance.json").exists(), run.stdout + run.stderr
    return run


def test_firewall_rules_fail_with_exactly_the_blocked_ports(hosts: dict[str, LabHost], tmp_path: Path) -> None:
    h = hosts["fw"]
    before = footprint(h)
    with PublicIpServer(h.lab.gateway, h.address) as ipify:    # wire_ip empty: the node asks, as Wire's play
        run = run_ports(h, tmp_path, "--public-ip-url", ipify.url)
    name = h.address
    udp = run.result("NET-PORT-UDP-RANGE", name)
    assert udp["status"] == "fail"
    assert udp["message"].startswith(
        f"NET-PORT-UDP-RANGE on {name}: 1,012 of 32,768 ports blocked: 40000-40999, 60000-60010, 65535")
    assert udp["evidence"]["blocked"] == "40000-40999, 60000-60010, 65535"
    assert udp["evidence"]["probed_address"] == h.address
    assert udp["evidence"]["classification"]["40000-40999"].startswith("filtered (dropped")
    https = run.result("NET-PORT-TCP-443", name)
    assert https["status"] == "fail" and "TCP 443 refused" in https["message"]
    assert https["evidence"]["state"] == "refused"
    http = run.result("NET-PORT-TCP-80", name)
    assert http["status"] == "fail" and "TCP 80 timed out" in http["message"]
    assert http["evidence"]["state"] == "timed out"
    for rid in ("NET-PORT-TCP-22", "NET-PORT-TURN-3478", "DEMO-NET-WIRE-IP", "DEMO-NET-LOCAL-PORTS-FREE",
                "IMP-HOST-PORTS"):
        assert run.result(rid, name)["status"] == "pass", run.result(rid, name)
    assert "SSH-2.0-" in run.result("NET-PORT-TCP-22", name)["evidence"]["banner"]
    local = run.result("NET-LOCAL-PORT-RANGE", name)  # 32768-60999 here: 40000-40999 is inside it
    assert local["status"] == "fail" and "40000-40999" in local["message"]
    assert run.result("IMP-MTU", name)["status"] == "not_applicable"  # no default route on this host
    assert_clean_after(h, before)


def test_done_criterion_with_the_operators_inventory(lab_module: Lab, tmp_path: Path) -> None:
    """`pytest suites/preflight -k ports --ansible-inventory host.yml`: with the iptables and nft rules
    NET-PORT-UDP-RANGE fails naming exactly those ranges; with the rules removed it passes."""
    h = lab_module.add_host("deploy_node", setup=FIREWALL)
    inv = lab_module.inventory_yaml(tmp_path / "host.yml", {"wire_ip": h.address, "target_domain": "example.test"},
                                    hosts=[h])
    before = footprint(h)
    run = run_suite(["-k", "ports", "--ansible-inventory", str(inv)], tmp_path / "blocked")
    udp = run.result("NET-PORT-UDP-RANGE", "deploy_node")
    assert udp["status"] == "fail"
    assert udp["message"].startswith(
        "NET-PORT-UDP-RANGE on deploy_node: 1,012 of 32,768 ports blocked: 40000-40999, 60000-60010, 65535")
    assert run.result("NET-PORT-TCP-443", "deploy_node")["evidence"]["state"] == "refused"
    assert run.result("NET-PORT-TCP-80", "deploy_node")["evidence"]["state"] == "timed out"
    assert_clean_after(h, before)
    h.exec("iptables -F INPUT && nft delete table inet wcfilter")
    run = run_suite(["-k", "ports", "--ansible-inventory", str(inv)], tmp_path / "open")
    for rid in ("NET-PORT-UDP-RANGE", "NET-PORT-TCP-80", "NET-PORT-TCP-443", "NET-PORT-TURN-3478", "NET-PORT-TCP-22"):
        assert run.result(rid, "deploy_node")["status"] == "pass", run.result(rid, "deploy_node")
    assert_clean_after(h, before)


def test_open_host_passes(hosts: dict[str, LabHost], tmp_path: Path) -> None:
    h = hosts["clean"]
    before = footprint(h)
    with PublicIpServer(h.lab.gateway, h.address) as ipify:    # wire_ip empty: the node asks, as Wire's play
        run = run_ports(h, tmp_path, "--public-ip-url", ipify.url)
    for rid in PORT_REQS:
        assert run.result(rid, h.address)["status"] == "pass", run.result(rid, h.address)
    udp = run.result("NET-PORT-UDP-RANGE", h.address)["evidence"]
    assert udp["passed"] == 32768 and udp["blocked"] == ""
    # the pass says what passed, never "UDP 32768-65535: none"
    assert run.result("NET-PORT-UDP-RANGE", h.address)["message"].startswith(
        f"NET-PORT-UDP-RANGE on {h.address}: all 32,768 ports of UDP 32768-65535 reached the target (blocked: none)")
    local = run.result("NET-LOCAL-PORT-RANGE", h.address)
    lo, hi = (int(x) for x in local["evidence"]["ip_local_port_range"].split("-"))
    assert local["message"].startswith(f"NET-LOCAL-PORT-RANGE on {h.address}: all {hi - lo + 1:,} ports of "
                                       f"ip_local_port_range {lo}-{hi} reached the target (blocked: none)")
    assert udp["received_on"] == [h.address] and udp["nat"] is False
    assert 0 < udp["listener_peak_rss_kib"] < 100 * 1024
    mtu = run.result("IMP-MTU", h.address)["evidence"]
    assert mtu["mtu"] == 1500 and mtu["path_max_packet"] == 1500
    assert_clean_after(h, before)


def test_small_mtu_warns(hosts: dict[str, LabHost], tmp_path: Path) -> None:
    h = hosts["smallmtu"]
    run = run_suite(["-k", "test_mtu", *host_args(h)], tmp_path / "report")
    result = run.result("IMP-MTU", h.address)
    assert result["status"] == "warn"
    assert result["message"].startswith(f"IMP-MTU on {h.address}: MTU of d0: 1,400, need >= 1,500")


def test_ports_in_use_are_named_with_their_owner(hosts: dict[str, LabHost], tmp_path: Path) -> None:
    h = hosts["clean"]
    holder = h.popen(port_holder(range(50000, 50005), tcp=8080), **PIPES)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"
        before = footprint(h)
        run = run_ports(h, tmp_path)
        owner = f"pid {holder.pid} (python3)"
        free = run.result("DEMO-NET-LOCAL-PORTS-FREE", h.address)
        assert free["status"] == "fail"
        assert free["message"].startswith(f"DEMO-NET-LOCAL-PORTS-FREE on {h.address}: TCP 8080 in use by {owner}")
        imp = run.result("IMP-HOST-PORTS", h.address)
        assert imp["status"] == "warn" and f"UDP in use: 50000-50004 ({owner})" in imp["message"]
        udp = run.result("NET-PORT-UDP-RANGE", h.address)
        assert udp["status"] == "pass"  # in use is not blocked
        assert udp["evidence"]["in_use"] == f"50000-50004 ({owner})"
        assert udp["evidence"]["passed"] == 32768 - 5
        assert_clean_after(h, before)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)


def test_wire_ip_dnat_to_the_node(hosts: dict[str, LabHost], tmp_path: Path) -> None:
    """--wire-ip is the gateway's address; the listener runs on the node behind its DNAT."""
    gw, node = hosts["gw"], hosts["node"]
    before = footprint(node)
    run = run_ports(node, tmp_path, "--wire-ip", gw.address)
    wire = run.result("DEMO-NET-WIRE-IP", node.address)
    assert wire["status"] == "pass"
    assert wire["evidence"]["probed_address"] == gw.address
    assert wire["evidence"]["received_on"] == [node.address]
    udp = run.result("NET-PORT-UDP-RANGE", node.address)
    assert udp["status"] == "pass"
    assert udp["evidence"]["probed_address"] == gw.address and udp["evidence"]["nat"] is True
    assert udp["evidence"]["seen_from"] == [gw.address]  # masqueraded by the gateway
    assert_clean_after(node, before)


def test_local_target_without_hosts(lab_module: Lab, tmp_path: Path) -> None:
    """No --hosts: the machine running pytest is the target (run inside a lab host's namespaces).
    The prober's own datagrams must still find a source port while the listener holds 32768-65535."""
    h = lab_module.add_host("local", private_tmp=False, setup=[c.format(mtu=1500) for c in DUMMY_DEFAULT])
    report = tmp_path / "report"
    cmd = (f"cd {shlex.quote(str(REPO))} && {shlex.quote(sys.executable)} -m pytest suites/preflight -q "
           f"{' '.join(QUIET_PLUGINS)} -k 'test_udp_range_reachable or test_ssh_port_reachable' "
           f"--report-dir {shlex.quote(str(report))}")
    h.exec(cmd, check=False, timeout=300)
    data = json.loads((report / "compliance.json").read_text())
    results = {r["id"]: r["results"][0] for r in data["requirements"]
               if r["id"] in ("NET-PORT-UDP-RANGE", "NET-PORT-TCP-22")}
    udp = results["NET-PORT-UDP-RANGE"]
    assert udp["status"] == "pass", udp
    assert udp["target"] == "deploy_node" and udp["evidence"]["probed_address"] == h.address
    assert results["NET-PORT-TCP-22"]["status"] == "pass"  # the lab host's own sshd


@pytest.mark.parametrize("parallel", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_killed_pytest_leaves_nothing_on_the_target(hosts: dict[str, LabHost], tmp_path: Path,
                                                    parallel: list[str]) -> None:
    """SIGKILL to pytest while the listener runs: nothing of ours stays on the target, also under
    xdist, where the workers use the master connections of the killed controller."""
    h = hosts["fw"]
    before = footprint(h)
    cmd = [sys.executable, "-m", "pytest", "suites/preflight", "-q", *QUIET_PLUGINS, "--report-dir",
           str(tmp_path / "report"), "-k", "test_udp_range_reachable", *host_args(h), *parallel]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # the listener's raw socket open (raw mode, as root), or a window of the range bound (the
            # fallback holds at most two at a time)
            out = h.exec("ss -Hwa | wc -l; ss -Huan | wc -l").stdout.split()
            if int(out[0]) >= 1 or int(out[1]) > 1000:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the listener never came up")
        os.kill(proc.pid, signal.SIGKILL)  # pytest only: its ssh children see their stdin close
        proc.wait(timeout=10)
        assert_clean_after(h, before)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its session (ssh clients)
        except ProcessLookupError:
            pass


# -- acceptance ------------------------------------------------------------------------------------

NGINX_CONF = """
worker_processes 1;
pid /tmp/wc-nginx.pid;
error_log stderr;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path /tmp; proxy_temp_path /tmp; fastcgi_temp_path /tmp; uwsgi_temp_path /tmp;
  scgi_temp_path /tmp;
  server { listen 80; return 301 https://$host$request_uri; }
}
"""


@pytest.fixture(scope="module")
def services(lab_module: Lab) -> Iterator[dict[str, LabHost]]:
    node = lab_module.add_host("accnode")
    svc = lab_module.add_host("svc", files={"/etc/wc-nginx.conf": NGINX_CONF}, sysctls={"net.ipv4.ip_forward": 1},
                              setup=[
        # the demo's kind of DNAT: part of the media range goes to another host (the "minikube node")
        f"iptables -t nat -A PREROUTING -p udp --dport 40000:40999 -j DNAT --to-destination {node.address}",
        f"iptables -t nat -A POSTROUTING -d {node.address} -j MASQUERADE",
        # and a firewall that drops a few range ports outright
        "iptables -A INPUT -p udp --dport 50000:50009 -j DROP",
    ])
    procs = [
        svc.popen(["nginx", "-c", "/etc/wc-nginx.conf", "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL),
        svc.popen(["turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "--listening-ip", svc.address,
                   "--listening-port", "3478", "--min-port", "65000", "--max-port", "65010", "--log-file", "stdout",
                   "--simple-log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        svc.popen(["python3", "-c", "import socket,time\ns=socket.socket();"
                   "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',443));s.listen()\n"
                   "while True:\n c,_=s.accept();c.close()"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        listening = svc.exec("ss -Hltn").stdout
        if ":80 " in listening and ":443 " in listening and ":3478 " in listening:
            break
        time.sleep(0.2)
    try:
        yield {"svc": svc, "node": node}
    finally:
        stop_all(procs)


def test_acceptance_ports(services: dict[str, LabHost], tmp_path: Path) -> None:
    svc = services["svc"]
    run = run_suite(["-k", "ports", *host_args(svc), "--domain", "example.test"], tmp_path / "report",
                    suite="suites/acceptance")
    name = svc.address
    http = run.result("NET-PORT-TCP-80", name)
    assert http["status"] == "pass", http
    assert http["evidence"]["http"]["status"] == 301
    assert run.result("NET-PORT-TCP-443", name)["status"] == "pass"
    turn = run.result("NET-PORT-TURN-3478", name)
    assert turn["status"] == "pass", turn
    assert turn["evidence"]["stun_udp"]["ok"] is True
    udp = run.result("NET-PORT-UDP-RANGE", name)
    # the DROPped ports fail by name; the DNAT-forwarded ones are not called blocked
    assert udp["status"] == "fail"
    assert udp["message"].startswith(f"NET-PORT-UDP-RANGE on {name}: 10 of ")
    assert "ports blocked: 50000-50009 (" in udp["message"]
    assert "40000" not in udp["message"]


def test_acceptance_without_domain_is_not_evaluated(services: dict[str, LabHost], tmp_path: Path) -> None:
    svc = services["svc"]
    run = run_suite(["-k", "test_http_redirects_to_https", *host_args(svc)], tmp_path / "report",
                    suite="suites/acceptance")
    http = run.result("NET-PORT-TCP-80", svc.address)
    assert http["status"] == "not_evaluated" and "--domain" in http["message"]


def test_wire_ip_empty_and_undeterminable_fails_like_wires_playbook(hosts: dict[str, LabHost], tmp_path: Path) -> None:
    """wire_ip unset, the node's question for its public address refused: Wire's verify_wire_ip.yml stops
    the deployment there, so DEMO-NET-WIRE-IP fails saying so. With the address kept in
    ~/wire_vars/wire_ip by an earlier run, that address is probed (and passes)."""
    h = hosts["clean"]
    run = run_suite(["-k", "wire_ip", *host_args(h), "--public-ip-url", "http://127.0.0.1:9/"], tmp_path / "no")
    wire = run.result("DEMO-NET-WIRE-IP", h.address)
    assert wire["status"] == "fail", wire
    assert "cannot determine its public address" in wire["message"] and "http://127.0.0.1:9/" in wire["message"]
    assert "verify_wire_ip.yml" in wire["message"]
    h.exec(f"mkdir -p /home/{h.user}/wire_vars && printf '{h.address}\\n' > /home/{h.user}/wire_vars/wire_ip && "
           f"chown -R {h.user} /home/{h.user}/wire_vars")
    try:
        run = run_suite(["-k", "wire_ip", *host_args(h), "--public-ip-url", "http://127.0.0.1:9/"], tmp_path / "kept")
    finally:
        h.exec(f"rm -rf /home/{h.user}/wire_vars")
    wire = run.result("DEMO-NET-WIRE-IP", h.address)
    assert wire["status"] == "pass", wire
    assert wire["evidence"]["wire_ip"] == h.address and "wire_vars/wire_ip" in wire["evidence"]["wire_ip_source"]
