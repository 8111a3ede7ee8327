"""DEMO-ACC-IPTABLES / -CLEANUP / -PACKAGES / -ARTIFACT against lab hosts over real SSH, both ways.

Where the demo node's state comes from software that cannot run here (docker, minikube, helm,
systemd), the passing host gets small stand-in executables in its private /usr/local/bin (a lab
host's own mount namespace): they are named after the tools they stand in for, print what the
real ones print, and are defined in STANDIN_TOOLS below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.lab import Lab, lab_unavailable_reason
from tests.lab.fixtures import lab_required
from tests.provision.stack import REPO

# without a lab these skip, except where a lab is required (CI): there they run and fail loudly
pytestmark = pytest.mark.skipif(lab_unavailable_reason() is not None and not lab_required(),
                                reason=str(lab_unavailable_reason()))

IPTABLES_SETUP = """
set -e
A=$1
C="Wire Iptables Rules"
for r in "tcp 443 $A:31773" "tcp 80 $A:31772" "tcp 3478 $A:3478" "udp 3478 $A:3478" "udp 32768:65535 $A"; do
  set -- $r
  iptables -t nat -A PREROUTING -d "$A" -p "$1" --dport "$2" -m comment --comment "$C" -j DNAT --to-destination "$3"
done
iptables -A FORWARD -o br-0123abcd -m comment --comment "$C" -j ACCEPT
iptables -A FORWARD -i br-0123abcd -m comment --comment "$C" -j ACCEPT
sysctl -qw net.bridge.bridge-nf-call-iptables=1
mkdir -p /home/wire/wire-iptables-rules
iptables-save > /home/wire/wire-iptables-rules/rules_pre_wire.v4
iptables-save > /home/wire/wire-iptables-rules/rules_post_wire.v4
"""


def run_check(tmp_path: Path, lab: Lab, host, select: str) -> dict:
    inv = lab.inventory_yaml(tmp_path / f"inv-{host.name}.yml", hosts=[host],
                             vars={"target_domain": "wiab.test", "wire_ip": host.address, "artifact_hash": "abc123"})
    report = tmp_path / f"report-{time.monotonic_ns()}"
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites/acceptance/test_services.py", "-p", "no:cacheprovider",
                           "-k", select, "--profile", "demo", "--ansible-inventory", str(inv), "--report-dir", str(report)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    path = report / "compliance.json"
    assert path.is_file(), proc.stdout[-3000:] + proc.stderr[-2000:]
    reqs = [r for r in json.loads(path.read_text())["requirements"] if r["results"] and r["id"].startswith("DEMO-ACC")]
    assert len(reqs) == 1, [r["id"] for r in reqs]
    (result,) = reqs[0]["results"]
    return result


@pytest.fixture(scope="module")
def lab():
    with Lab() as lab:
        yield lab


def test_iptables_pass_then_missing_rule(lab, tmp_path):
    h = lab.add_host("ipt", user="wire")
    h.exec(["sh", "-c", IPTABLES_SETUP, "sh", h.address])
    res = run_check(tmp_path, lab, h, "test_demo_iptables")
    assert res["status"] == "pass", res
    assert len(res["evidence"]["tagged_nat_rules"]) == 5 and res["evidence"]["bridge_nf_call_iptables"] == "1"
    h.exec("iptables -t nat -D PREROUTING 4")  # the udp 3478 DNAT
    res = run_check(tmp_path, lab, h, "test_demo_iptables")
    assert res["status"] == "fail"
    assert res["observed"] == ["no PREROUTING DNAT udp 3478 tagged 'Wire Iptables Rules'"]


def test_iptables_fresh_node_fails(lab, tmp_path):
    h = lab.add_host("iptfresh", user="wire")
    res = run_check(tmp_path, lab, h, "test_demo_iptables")
    assert res["status"] == "fail"
    assert len(res["observed"]) == 5 + 1 + 2  # five DNAT, FORWARD, two snapshots (sysctl is 1 on this kernel)
    assert any("FORWARD ACCEPT" in p for p in res["observed"])


def test_cleanup_pass_and_leftovers_warn(lab, tmp_path):
    h = lab.add_host("clean", user="wire")
    res = run_check(tmp_path, lab, h, "test_demo_cleanup")
    assert res["status"] == "pass", res
    listener = h.popen(["python3", "-m", "http.server", "8080", "--bind", h.address],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    keys = tempfile.mkdtemp(prefix="ansible.wctest", suffix="_ssh_keys", dir="/tmp")
    try:
        deadline = time.monotonic() + 10
        while "8080" not in h.exec("ss -Hltn 'sport = :8080'").stdout and time.monotonic() < deadline:
            time.sleep(0.1)
        res = run_check(tmp_path, lab, h, "test_demo_cleanup")
    finally:
        listener.terminate()
        listener.wait(timeout=10)
        os.rmdir(keys)
    assert res["status"] == "warn"  # SHOULD
    assert any("listens on 8080" in p for p in res["observed"])
    assert any(keys in p for p in res["observed"])


SITE_PACKAGES = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "kubernetes").is_dir())
STANDIN_TOOLS = {
    "/usr/local/bin/helm": "#!/bin/sh\necho v3.15.0+gc4e37b3\n",
    "/usr/local/bin/minikube": "#!/bin/sh\necho v1.35.0\n",
    "/usr/local/bin/kubectl": "#!/bin/sh\necho '{\"clientVersion\": {\"gitVersion\": \"v1.28.2\"}}'\n",
    # systemd cannot run in a lab host: answer for the docker unit as an installed node would
    "/usr/local/bin/systemctl": "#!/bin/sh\ncase \"$1 $2\" in\n  'is-enabled docker') echo enabled;;\n"
                                "  'is-active docker') echo active;;\n  *) echo inactive; exit 3;;\nesac\n",
    # the system's real interpreter, given the kubernetes and PyYAML packages of the test virtualenv
    "/opt/ansible-venv/bin/python": f"#!/bin/sh\nPYTHONPATH={SITE_PACKAGES} exec /usr/bin/python3 \"$@\"\n",
}


def _dpkg_status_with(packages: dict[str, str]) -> str:
    # the machine's own database minus any entry for these packages, then the test's entries
    stanzas = Path("/var/lib/dpkg/status").read_text().split("\n\n")
    status = "\n\n".join(st for st in stanzas
                          if not any(st.startswith(f"Package: {n}\n") for n in packages)).rstrip("\n") + "\n"
    for name, version in packages.items():
        status += (f"\nPackage: {name}\nStatus: install ok installed\nPriority: optional\nSection: misc\n"
                   f"Maintainer: test\nArchitecture: amd64\nVersion: {version}\nDescription: test entry\n")
    return status


def test_packages_fresh_node_fails(lab, tmp_path):
    h = lab.add_host("pkgfresh", user="wire")
    res = run_check(tmp_path, lab, h, "test_demo_packages")
    assert res["status"] == "fail"
    text = "\n".join(res["observed"])
    assert "helm: /usr/local/bin/helm missing" in text
    assert "apt package docker-ce not installed" in text
    assert "/opt/ansible-venv/bin/python cannot import kubernetes and yaml" in text
    assert "wire is not in group docker" in text


def test_packages_installed_node_passes_and_wrong_pin_fails(lab, tmp_path):
    docker = "5:28.1.1-1~ubuntu.24.04~noble"
    pkgs = {"jq": "1.7.1-3build1", "python3-pip": "24.0", "python3-venv": "3.12.3", "python3-full": "3.12.3",
            "docker-ce": docker, "docker-ce-cli": docker, "containerd.io": "1.7.27-1"}
    files = {**STANDIN_TOOLS, "/var/lib/dpkg/status": _dpkg_status_with(pkgs)}
    # private_tmp=False: the test virtualenv (under the runner's /tmp) must be visible to the host
    h = lab.add_host("pkg", user="wire", files=files, private_tmp=False,
                     setup=["chmod 755 /usr/local/bin/* /opt/ansible-venv/bin/python",
                            "echo docker:x:4999:wire >> /etc/group"])
    res = run_check(tmp_path, lab, h, "test_demo_packages")
    assert res["status"] == "pass", res
    assert res["evidence"]["found"]["kubectl"] == "v1.28.2"
    pkgs["containerd.io"] = "1.7.20-1"
    h2 = lab.add_host("pkgold", user="wire", files={**files, "/var/lib/dpkg/status": _dpkg_status_with(pkgs)},
                      private_tmp=False,
                      setup=["chmod 755 /usr/local/bin/* /opt/ansible-venv/bin/python",
                             "echo docker:x:4999:wire >> /etc/group"])
    res = run_check(tmp_path, lab, h2, "test_demo_packages")
    assert res["status"] == "fail" and res["observed"] == ["containerd.io 1.7.20-1, playbook pins 1.7.27-1"]


def test_artifact_fresh_node_fails(lab, tmp_path):
    h = lab.add_host("artfresh", user="wire")
    res = run_check(tmp_path, lab, h, "test_demo_artifact")
    assert res["status"] == "fail"
    assert "missing /home/wire/wire-server-deploy-static-demo-abc123.tgz" in res["observed"]
    assert "missing /home/wire/wire-server-deploy/charts/wire-server" in res["observed"]


def test_artifact_unpacked_and_seeded_passes(lab, tmp_path):
    charts = ["fake-aws", "smtp", "rabbitmq", "databases-ephemeral", "postgresql", "reaper", "wire-server",
              "webapp", "account-pages", "team-settings", "ingress-nginx-controller", "coturn", "sftd"]
    images = ["quay.io/wire/brig:5.0.0", "quay.io/wire/galley:5.0.0"]
    crictl = json.dumps({"images": [{"repoTags": [i]} for i in images]})
    files = {
        # docker + minikube cannot run here: answer `docker exec k8s-wire crictl images -o json` like a seeded node
        "/usr/local/bin/docker": f"#!/bin/sh\n[ \"$*\" = 'exec k8s-wire crictl images -o json' ] || exit 1\n"
                                 f"echo '{crictl}'\n",
    }
    setup = ["chmod 755 /usr/local/bin/docker",
             "cd /home/wire && touch wire-server-deploy-static-demo-abc123.tgz && mkdir -p wire-server-deploy && "
             "cd wire-server-deploy && mkdir -p values/wire-server versions bin/wiab-demo "
             + " ".join(f"charts/{c}" for c in charts)
             + " && touch containers-helm.tar values/wire-server/secrets.yaml bin/wiab-demo/offline_deploy_k8s.sh"
             + f" && echo '{json.dumps(images)}' > versions/containers_helm_images.json"
             + " && chown -R wire:wire /home/wire"]
    h = lab.add_host("art", user="wire", files=files, setup=setup)
    res = run_check(tmp_path, lab, h, "test_demo_artifact")
    assert res["status"] == "pass", res
    assert res["evidence"]["images_expected"] == 2 and res["evidence"]["images_absent"] == []
    h.exec("rm /home/wire/wire-server-deploy/values/wire-server/secrets.yaml")
    res = run_check(tmp_path, lab, h, "test_demo_artifact")
    assert res["observed"] == ["missing /home/wire/wire-server-deploy/values/wire-server/secrets.yaml"]
