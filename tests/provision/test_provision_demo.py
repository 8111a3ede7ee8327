"""The demo provisioner end to end against the wire-server-deploy stand-in on a lab host.

Preflight and acceptance run the real suites as pytest subprocesses; the install runs the
stand-in's deploy_wiab.yml through ansible-runner over SSH into the lab host. The preflight is
narrowed to one check (DEMO-SYS-CPU) because a lab host cannot meet the demo's hardware minimums;
its threshold is lowered with --param for the runs meant to pass and left at 16 for the run meant
to fail. Acceptance is narrowed to the service checks (no Kubernetes here).
"""

from __future__ import annotations

import json

import pytest

from tests.lab import Lab, lab_unavailable_reason
from tests.lab.fixtures import lab_required
from tests.provision.stack import DOMAIN, STANDIN_WSD, make_certs, run_provision

# without a lab these skip, except where a lab is required (CI): there they run and fail loudly
pytestmark = pytest.mark.skipif(lab_unavailable_reason() is not None and not lab_required(),
                                reason=str(lab_unavailable_reason()))

PRE_PASS = "-k test_cpu_cores --param DEMO-SYS-CPU.min_cores=1"
PRE_FAIL = "-k test_cpu_cores"
# the stand-in brings up the services and the NAT rules, not minikube, docker or the offline bundle
ACC_SELECT = "test_services and not test_demo_packages and not test_demo_artifact"


@pytest.fixture
def lab():
    with Lab() as lab:
        yield lab


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def _setup(lab, certs, tmp_path):
    # Wire's plays target the host named deploy_node, so every test gets its own lab
    host = lab.add_host("deploy_node", user="wire", sudo=True)
    inv = lab.inventory_yaml(tmp_path / "host.yml", hosts=[host], vars={
        "target_domain": DOMAIN, "wire_ip": host.address, "use_cert_manager": False,
        "standin_tls_cert": str(certs.cert), "standin_tls_key": str(certs.key)})
    return host, inv


def _args(inv, certs, pre=PRE_PASS, *extra):
    return ["demo", "--ansible-inventory", str(inv), "--wire-server-deploy", str(STANDIN_WSD),
            "--preflight-args", pre, "--acceptance-args", f"-k '{ACC_SELECT}' --ca-bundle {certs.ca_bundle}",
            "--acceptance-timeout", "0", *extra]


def _results(report_dir, rid):
    data = json.loads((report_dir / "compliance.json").read_text())
    return next(r for r in data["requirements"] if r["id"] == rid)


def test_demo_end_to_end_then_broken_turn(lab, certs, tmp_path):
    host, inv = _setup(lab, certs, tmp_path)
    run = run_provision(_args(inv, certs), tmp_path / "report")
    assert run.rc == 0, run.stderr[-3000:]
    assert "PROVISION OK" in run.stderr
    # live progress: play, task, host, counts, elapsed
    assert "PLAY [Services (stand-in for helm_install)] | TASK [start coturn] | deploy_node changed | ok=" in run.stderr
    rd = run.report_dir
    assert (rd / "preflight" / "compliance.json").is_file()
    assert "TASK [start nginx]" in (rd / "install" / "ansible.log").read_text()
    assert _results(rd / "preflight", "DEMO-SYS-CPU")["status"] == "pass"
    for rid in ("ACC-NGINZ-STATUS", "ACC-WEBAPP", "ACC-STATIC-SITES", "ACC-WEBSOCKET", "ACC-TURN-STUN",
                "ACC-SFTD-HTTPS", "ACC-INTERNAL-ENDPOINTS-BLOCKED", "DEMO-ACC-IPTABLES", "DEMO-ACC-CLEANUP"):
        assert _results(rd / "acceptance", rid)["status"] == "pass", rid
    stun = _results(rd / "acceptance", "ACC-TURN-STUN")["results"][0]["evidence"]
    assert stun["mapped_addresses"], stun  # the XOR-MAPPED-ADDRESS the server saw
    prov = run.provision
    assert prov["exit_code"] == 0 and prov["failed_phase"] is None and prov["forced"] is False
    assert prov["phases"]["install"]["steps"][0]["counts"]["failed"] == 0

    # stop coturn (by its pid file, on the host) and run the acceptance gate alone
    host.exec("kill $(cat /home/wire/standin/coturn/turnserver.pid)")
    from pathlib import Path

    from provisioners.gate import run_gate_once
    gate = run_gate_once("acceptance", tmp_path / "again", profile="demo", inventory=inv,
                         suites=Path(__file__).resolve().parents[2] / "suites", pytest_args=[],
                         phase_args=["-k", ACC_SELECT, "--ca-bundle", str(certs.ca_bundle)], timeout=300)
    assert not gate.passed
    assert [b["id"] for b in gate.blocking] == ["ACC-TURN-STUN"]
    assert "ACC-TURN-STUN" in gate.summary_line()


def test_preflight_failure_stops_before_install(lab, certs, tmp_path):
    host, inv = _setup(lab, certs, tmp_path)
    run = run_provision(_args(inv, certs, PRE_FAIL), tmp_path / "report")
    assert run.rc == 3, run.stderr[-2000:]
    assert "FAILED in phase preflight" in run.stderr and "DEMO-SYS-CPU" in run.stderr
    assert not (run.report_dir / "install").exists()
    # the playbook never ran: nothing of the stand-in on the host, no DNAT rules
    assert host.exec("test -e /home/wire/standin", check=False).returncode != 0
    assert "Wire Iptables Rules" not in host.exec("iptables-save -t nat").stdout
    assert run.provision["failed_phase"] == "preflight"


def test_install_failure_skips_acceptance(lab, certs, tmp_path):
    _, inv = _setup(lab, certs, tmp_path)
    run = run_provision(_args(inv, certs, PRE_PASS, "-e", "standin_fail=true",
                              "-e", '{"standin_secret": "s3cr3t-value"}'), tmp_path / "report")
    assert run.rc == 4, run.stderr[-2000:]
    assert "FAILED in phase install" in run.stderr and "acceptance not run" in run.stderr
    assert "deliberately fail" in run.stderr
    assert not (run.report_dir / "acceptance").exists()
    assert "standin_fail" in (run.report_dir / "install" / "ansible.log").read_text()
    assert run.provision["failed_phase"] == "install"
    # extra vars may carry secrets: the report names them but never holds their values
    assert '"standin_secret": …' in run.provision["phases"]["install"]["steps"][0]["command"]
    for f in run.report_dir.rglob("*"):
        assert not f.is_file() or b"s3cr3t-value" not in f.read_bytes(), f


def test_forced_preflight_then_broken_service_fails_acceptance(lab, certs, tmp_path):
    _, inv = _setup(lab, certs, tmp_path)
    run = run_provision(_args(inv, certs, PRE_FAIL, "--force", "-e", '{"standin_break": ["coturn"]}'),
                        tmp_path / "report")
    assert run.rc == 5, run.stderr[-2000:]
    assert "--force given" in run.stderr
    assert "FAILED in phase acceptance" in run.stderr and "ACC-TURN-STUN" in run.stderr
    prov = run.provision
    assert prov["forced"] is True and prov["phases"]["preflight"]["overridden_by_force"] is True
    assert prov["phases"]["acceptance"]["blocking"][0]["id"] == "ACC-TURN-STUN"
