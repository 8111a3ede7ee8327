"""Issue 13's done-when: `tox -e provision-demo -- --dry-run …` with Wire's demo inventory (host.yml), filled
in as an operator does, on a machine that meets the demo's requirements, passes its preflight -- with
wire_ip left "" as Wire ships it, so the node determines its public address as verify_wire_ip.yml does --
prints the playbook commands and runs none of them (exit 0); on a broken node it exits 3 naming what failed.

The machine is a lab host made to meet the requirements where a namespace can (Ubuntu 24.04's
os-release, 20 GiB of memory, ip_forward, inotify limits, room on /home and /var/lib/docker); what a lab
host cannot have (16 cores, a 200 GiB disk ...) is lowered with --param, each named below. DNS comes
from a dnsmasq on loopback serving a correct zone; "the internet" and api.ipify.org are HTTP servers on
the lab bridge. The inventory is our copy of the layout of wire-server-deploy's
ansible/inventory/demo/host.yml (commit 682349dc9df15ca1db6dd1e93d3c4a02d9152502); with wire-server-deploy
under ../shared/, Wire's own file is filled in and run as well (else that case skips, saying so).
"""

from __future__ import annotations

import configparser
import contextlib
import functools
import http.server
import json
import re
import threading
from pathlib import Path

import pytest
import yaml

from tests.checks.test_control_checks import _ansible_216_bin, _collections
from tests.checks.test_demo_host_checks import GIB_KIB, UBUNTU_NOBLE
from tests.checks.test_wire_inventories import SHARED_WSD
from tests.provision.stack import REPO, STANDIN_WSD, run_provision
from tests.support.dnsmasq import DnsmasqServer, wire_zone
from tests.support.publicip import PublicIpServer

DOMAIN = "wire.lab.test"
# what a namespace on a CI machine cannot have: named, so that nothing else is lowered by accident
LOWERED = ["DEMO-SYS-CPU.min_cores=1", "IMP-RESOLVER.probe_name=localhost"]
ARTIFACT = "5b01f250e128db689715558bad6b5e532cf4a7a0"

HOST_YML = """wiab:
  hosts:
    deploy_node:
      ansible_host: example.com
      ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ServerAliveInterval=60'
      ansible_user: 'ubuntu'
      ansible_ssh_private_key_file: "~/.ssh/wiab-demo.pem"
  vars:
    target_domain: "example.com"
    wire_ip: ""
    artifact_hash: "5b01f250e128db689715558bad6b5e532cf4a7a0"
    use_cert_manager: true
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def filled_in(path: Path, host, shipped: Path | None = None) -> Path:
    """host.yml as an operator fills it in: the node's address, user, key; the domain. wire_ip stays "".
    `shipped`: Wire's own file; else our copy of its layout (HOST_YML)."""
    doc = yaml.safe_load(shipped.read_text() if shipped else HOST_YML)
    node = doc["wiab"]["hosts"]["deploy_node"]
    node.update(ansible_host=host.address, ansible_user=host.user, ansible_ssh_private_key_file=host.key_path,
                ansible_ssh_common_args=host.ssh_extra_args)
    doc["wiab"]["vars"]["target_domain"] = DOMAIN
    assert doc["wiab"]["vars"]["wire_ip"] == ""
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def node(lab_module):
    return lab_module.add_host(
        "deploy_node", user="wire", sudo=True, meminfo_kib=20 * GIB_KIB,
        files={"/etc/os-release": UBUNTU_NOBLE, "/proc/sys/fs/inotify/max_user_instances": "512\n",
               "/proc/sys/fs/inotify/max_user_watches": "524288\n"},
        sysctls={"net.ipv4.ip_forward": "1"}, tmpfs={"/var/lib/docker": "300G", "/home": "300G"})


@contextlib.contextmanager
def demo_world(lab, node, tmp_path: Path, monkeypatch, zone):
    """What the demo's preflight asks of the world around the node, on this machine: the control machine
    (ansible-core 2.16 and the two collections), "the internet" (the artifact under host.yml's
    artifact_hash), api.ipify.org, and a DNS server with `zone`. Yields the pytest arguments that point
    the preflight at them, the thresholds a namespace cannot meet lowered (LOWERED)."""
    monkeypatch.setenv("WIRECHECK_ANSIBLE_BIN", str(_ansible_216_bin()))
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(_collections(tmp_path / "cols", ["kubernetes.core", "ansible.posix"])))
    www = tmp_path / "www"
    www.mkdir()
    (www / f"wire-server-deploy-static-demo-{ARTIFACT}.tgz").write_bytes(b"\0" * 1024)
    server = http.server.ThreadingHTTPServer((lab.gateway, 0), functools.partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    mirror = f"http://{lab.gateway}:{server.server_address[1]}/"
    try:
        with PublicIpServer(lab.gateway, node.address) as ipify, DnsmasqServer(zone, address="127.0.0.1") as dns:
            yield ipify, ["--internet-url", mirror, "--public-ip-url", ipify.url, "--nameserver", dns.nameserver,
                          "--param", f"DEMO-ARTIFACT-URL.url_base={mirror}",
                          *[x for p in LOWERED for x in ("--param", p)]]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def dry_run(inv: Path, report_dir: Path, pytest_args: list[str]):
    """`tox -e provision-demo -- --dry-run -i host.yml --wire-server-deploy … -- <pytest args>`, without tox's
    own environment: tox runs exactly `python -m provisioners demo {posargs}` (asserted below)."""
    return run_provision(["demo", "--dry-run", "-i", str(inv), "--wire-server-deploy", str(STANDIN_WSD),
                          "--", *pytest_args], report_dir, timeout=900)


def nothing_was_installed(run, node) -> None:
    assert not (run.report_dir / "install").exists()
    assert set(run.provision["phases"]) == {"preflight"} and run.provision["dry_run"] is True
    # the stand-in deploy_wiab.yml's iptables play would have left both on the node
    assert node.exec("test -e /home/wire/wire-iptables-rules", check=False).returncode == 1
    assert "Wire Iptables Rules" not in node.exec("iptables -t nat -S PREROUTING", check=False).stdout


def test_tox_provision_demo_runs_the_provisioner_cli():
    """The tox env of the done-when is the CLI these tests run, with the arguments after `--` passed on."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(REPO / "tox.ini")
    assert config["testenv:provision-demo"]["commands"].strip() == "python -m provisioners demo {posargs}"


@pytest.mark.parametrize("source", ["host.yml layout", "Wire's own host.yml"])
def test_dry_run_with_the_filled_in_demo_inventory_passes_its_preflight_and_runs_nothing(
        source, node, lab_module, tmp_path, monkeypatch):
    shipped = SHARED_WSD / "ansible" / "inventory" / "demo" / "host.yml"
    if source == "Wire's own host.yml" and not shipped.exists():
        pytest.skip(f"{shipped} is not there (wire-server-deploy is not under ../shared/); the same run on "
                    "our copy of its layout is the other case")
    inv = filled_in(tmp_path / "host.yml", node, shipped if source == "Wire's own host.yml" else None)
    with demo_world(lab_module, node, tmp_path, monkeypatch, wire_zone(DOMAIN, node.address)) as (ipify, args):
        run = dry_run(inv, tmp_path / "r", args)
    report = json.loads((tmp_path / "r" / "preflight" / "compliance.json").read_text())
    bad = {r["id"]: [x["message"] for x in r["results"] if x["status"] in ("fail", "error")]
           for r in report["requirements"]}
    bad = {k: v for k, v in bad.items() if v}
    assert run.rc == 0, (run.stderr[-3000:], json.dumps(bad, indent=1)[:4000])
    assert "preflight attempt 1: PASS" in run.stderr and "DRY RUN: preflight passed" in run.stderr
    assert re.search(r"ansible: \S+/ansible-playbook \(ansible-core 2\.16\.\d+\)", run.stderr), run.stderr
    # stdout: the preflight that ran, then the commands that did not
    pre, play, acc = run.stdout.splitlines()
    assert "suites/preflight" in pre and f"--ansible-inventory {inv}" in pre and "DEMO-SYS-CPU.min_cores=1" in pre
    assert "ansible-playbook" in play and f"-i {inv}" in play and play.rstrip(")").endswith("deploy_wiab.yml")
    assert "suites/acceptance" in acc
    nothing_was_installed(run, node)
    assert report["site"]["inventory_kind"] == "demo"
    wire_ip = next(r for r in report["requirements"] if r["id"] == "DEMO-NET-WIRE-IP")["results"][0]
    assert wire_ip["evidence"]["wire_ip"] == node.address and ipify.requests >= 1
    acme = next(r for r in report["requirements"] if r["id"] == "TLS-ACME-PREREQ")["results"][0]
    assert acme["status"] == "pass", acme          # compared with the address the node determined
    counts = report["summary"]
    assert counts.get("fail", 0) == 0 and counts.get("error", 0) == 0 and counts.get("pass", 0) >= 30, counts


def test_dry_run_on_a_broken_node_exits_3_naming_what_failed(node, lab_module, tmp_path, monkeypatch):
    """The same inventory and node with two faults an operator meets: HTTPS (443/tcp) dropped by the host
    firewall, and one of Wire's names (teams) missing from DNS while wire_ip is "". The dry run stops at
    the preflight with exit 3 and names both requirements; still nothing is installed."""
    inv = filled_in(tmp_path / "host.yml", node)
    zone = wire_zone(DOMAIN, node.address)
    del zone.a["teams"]
    node.exec("nft add table inet wcbroken && nft add chain inet wcbroken input "
              "'{ type filter hook input priority 0; policy accept; }' && "
              "nft add rule inet wcbroken input tcp dport 443 drop")
    try:
        with demo_world(lab_module, node, tmp_path, monkeypatch, zone) as (_, args):
            run = dry_run(inv, tmp_path / "r", args)
    finally:
        node.exec("nft delete table inet wcbroken")
    assert run.rc == 3, run.stderr[-3000:]
    said = next(line for line in run.stderr.splitlines() if line.startswith("DRY RUN: preflight FAILED"))
    assert all(rid in said for rid in ("DNS-DEMO-RECORDS", "NET-PORT-TCP-443", "DEMO-NET-FIREWALL")), said
    blocking = {b["id"]: b["message"] for b in run.provision["phases"]["preflight"]["blocking"]}
    assert f"teams.{DOMAIN} does not exist (NXDOMAIN" in blocking["DNS-DEMO-RECORDS"], blocking
    assert "TCP 443 timed out" in blocking["NET-PORT-TCP-443"], blocking
    assert "INPUT tcp/443: drop by `nft: table inet wcbroken" in blocking["DEMO-NET-FIREWALL"], blocking
    assert "deploy_wiab.yml" in run.stdout      # what would have run is still shown, and not run
    nothing_was_installed(run, node)
