"""Issue 13's done-when: Wire's demo inventory (host.yml), filled in as an operator does, on a machine that
meets the demo's requirements, passes the preflight the provisioner runs -- with wire_ip left "" as Wire
ships it, so the node determines its public address as verify_wire_ip.yml does.

The machine is a lab host made to meet the requirements where a namespace can (Ubuntu 24.04's
os-release, 20 GiB of memory, ip_forward, inotify limits, room on /home and /var/lib/docker); what a lab
host cannot have (16 cores, a 200 GiB disk ...) is lowered with --param, each named below. DNS comes
from a dnsmasq on loopback serving a correct zone; "the internet" and api.ipify.org are HTTP servers on
the lab bridge. The inventory is our copy of the layout of wire-server-deploy's
ansible/inventory/demo/host.yml (commit 682349dc9df15ca1db6dd1e93d3c4a02d9152502); with wire-server-deploy
under ../shared/, Wire's own file is the one filled in.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import pytest
import yaml

from provisioners.gate import gate_command, run_gate_once
from tests.checks.test_control_checks import _ansible_216_bin, _collections
from tests.checks.test_demo_host_checks import GIB_KIB, UBUNTU_NOBLE
from tests.checks.test_wire_inventories import SHARED_WSD
from tests.provision.stack import REPO, STANDIN_WSD
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


def filled_in(path: Path, host) -> Path:
    """host.yml as an operator fills it in: the node's address, user, key; the domain. wire_ip stays ""."""
    shipped = SHARED_WSD / "ansible" / "inventory" / "demo" / "host.yml"
    doc = yaml.safe_load(shipped.read_text() if shipped.exists() else HOST_YML)
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


def test_filled_in_demo_inventory_passes_the_provisioners_preflight(node, lab_module, tmp_path, monkeypatch):
    inv = filled_in(tmp_path / "host.yml", node)
    # the control machine: ansible-core 2.16 (wirecheck's own, or $WIRECHECK_ANSIBLE_BIN) and the collections
    bindir = _ansible_216_bin()
    monkeypatch.setenv("WIRECHECK_ANSIBLE_BIN", str(bindir))
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(_collections(tmp_path / "cols", ["kubernetes.core", "ansible.posix"])))
    # "the internet": the artifact Wire's playbook downloads, under the artifact_hash of host.yml
    www = tmp_path / "www"
    www.mkdir()
    (www / f"wire-server-deploy-static-demo-{ARTIFACT}.tgz").write_bytes(b"\0" * 1024)
    server = http.server.ThreadingHTTPServer((lab_module.gateway, 0), functools.partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    mirror = f"http://{lab_module.gateway}:{server.server_address[1]}/"
    try:
        with PublicIpServer(lab_module.gateway, node.address) as ipify, \
                DnsmasqServer(wire_zone(DOMAIN, node.address), address="127.0.0.1") as dns:
            args = ["--internet-url", mirror, "--public-ip-url", ipify.url, "--nameserver", dns.nameserver,
                    "--param", f"DEMO-ARTIFACT-URL.url_base={mirror}", *[x for p in LOWERED for x in ("--param", p)]]
            common = {"profile": "demo", "inventory": inv, "suites": REPO / "suites", "pytest_args": args,
                      "wsd": STANDIN_WSD}
            print(gate_command("preflight", tmp_path / "pre", **common)[1])
            gate = run_gate_once("preflight", tmp_path / "pre", timeout=900, **common)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    report = json.loads((tmp_path / "pre" / "compliance.json").read_text())
    bad = {r["id"]: [x["message"] for x in r["results"] if x["status"] in ("fail", "error")]
           for r in report["requirements"]}
    bad = {k: v for k, v in bad.items() if v}
    assert gate.passed, json.dumps(bad, indent=1)[:6000]
    assert report["site"]["inventory_kind"] == "demo"
    wire_ip = next(r for r in report["requirements"] if r["id"] == "DEMO-NET-WIRE-IP")["results"][0]
    assert wire_ip["evidence"]["wire_ip"] == node.address and ipify.requests >= 1
    acme = next(r for r in report["requirements"] if r["id"] == "TLS-ACME-PREREQ")["results"][0]
    assert acme["status"] == "pass", acme          # compared with the address the node determined
    counts = report["summary"]
    assert counts.get("fail", 0) == 0 and counts.get("error", 0) == 0 and counts.get("pass", 0) >= 30, counts
