"""The service acceptance checks (suites/acceptance/test_services.py), run through pytest against the
stand-in's real nginx + websocket backend + coturn, started (Popen) inside a lab host's network
namespace on the real ports 443/3478: passing on a good stack, failing with the right evidence on a
broken one. (A namespace, not loopback: other tests briefly hold 0.0.0.0:443/3478 on this machine.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from provisioners.gate import run_gate_until
from tests.lab import Lab, lab_unavailable_reason
from tests.lab.fixtures import lab_required
from tests.provision.stack import DOMAIN, REPO, Coturn, LoopbackStack, make_certs

# without a lab these skip, except where a lab is required (CI): there they run and fail loudly
pytestmark = pytest.mark.skipif(lab_unavailable_reason() is not None and not lab_required(),
                                reason=str(lab_unavailable_reason()))

SERVICES = ["ACC-NGINZ-STATUS", "ACC-WEBAPP", "ACC-STATIC-SITES", "ACC-WEBSOCKET", "ACC-TURN-STUN",
            "ACC-SFTD-HTTPS", "ACC-INTERNAL-ENDPOINTS-BLOCKED"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def lab():
    with Lab() as lab:
        yield lab


def _host(lab, name):
    # private_tmp=False: nginx and coturn read their configuration from the test's tmp_path
    h = lab.add_host(name, user="wire", private_tmp=False)
    return h, h.address


def run_checks(tmp_path: Path, address: str, ca_bundle: Path | None, *extra: str) -> dict[str, dict]:
    report = tmp_path / f"report-{time.monotonic_ns()}"
    argv = [sys.executable, "-m", "pytest", "suites/acceptance/test_services.py", "-p", "no:cacheprovider",
            "-k", "not test_demo_", "--report-dir", str(report), "--wire-ip", address, *extra]
    if "--profile" not in extra:
        argv += ["--profile", "demo"]
    if "--no-domain" in extra:
        argv.remove("--no-domain")
    else:
        argv += ["--domain", DOMAIN]
    if ca_bundle:
        argv += ["--ca-bundle", str(ca_bundle)]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    path = report / "compliance.json"
    assert path.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(path.read_text())
    return {r["id"]: r for r in data["requirements"] if r["id"] in SERVICES}


def _one(reqs: dict, rid: str) -> dict:
    (result,) = reqs[rid]["results"]
    return result


def test_good_stack_passes(lab, tmp_path, certs):
    h, addr = _host(lab, "good")
    with LoopbackStack(addr, tmp_path / "stack", certs, host=h), Coturn(addr, 3478, tmp_path / "coturn", host=h):
        reqs = run_checks(tmp_path, addr, certs.ca_bundle)
    assert {rid: r["status"] for rid, r in reqs.items()} == dict.fromkeys(SERVICES, "pass")
    stun = _one(reqs, "ACC-TURN-STUN")["evidence"]
    (mapped,) = {e["mapped_address"] for e in stun["stun"].values()}
    assert mapped == f"{addr.rsplit('.', 1)[0]}.1"  # the runner's bridge address, as coturn saw it
    assert stun["stun"][f"udp://{addr}:3478"]["response_type"] == "0x0101"
    ws = _one(reqs, "ACC-WEBSOCKET")["evidence"]["websocket"]
    assert ws["status"] == 101 and ws["accept_valid"] is True
    assert _one(reqs, "ACC-WEBAPP")["evidence"]["connect_src"]


def test_broken_stack_fails_each_check_with_evidence(lab, tmp_path, certs):
    h, addr = _host(lab, "broken")
    broken = {
        'location = /status { return 200 ""; }': "location = /status { return 503; }",
        "location /i/ { return 404; }": 'location /i/ { return 200 "internal"; }',
        f"wss://*.{DOMAIN}\"": "\"",
        'location / { return 403 "AccessDenied"; }': "location / { return 502; }",
        "server_name sftd.wiab.test; location / { return 404; }": "server_name sftd.wiab.test; location / { return 500; }",
    }
    # no websocket backend (nginx answers 502) and no coturn at all
    with LoopbackStack(addr, tmp_path / "stack", certs, overrides=broken, websocket=False, host=h):
        reqs = run_checks(tmp_path, addr, certs.ca_bundle)
    status = {rid: r["status"] for rid, r in reqs.items()}
    assert status == {**dict.fromkeys(SERVICES, "fail"), "ACC-INTERNAL-ENDPOINTS-BLOCKED": "warn"}
    assert _one(reqs, "ACC-NGINZ-STATUS")["observed"] == 503
    assert _one(reqs, "ACC-WEBAPP")["observed"] == [f"wss://nginz-ssl.{DOMAIN}"]
    assert _one(reqs, "ACC-STATIC-SITES")["observed"] == [f"https://assets.{DOMAIN}/: HTTP 502 (want <500)"]
    assert "502" in _one(reqs, "ACC-WEBSOCKET")["observed"]
    assert _one(reqs, "ACC-SFTD-HTTPS")["observed"] == 500
    turn = _one(reqs, "ACC-TURN-STUN")
    udp, tcp = turn["observed"]
    assert "port unreachable" in udp and "refused" in tcp
    assert turn["evidence"]["mapped_addresses"] == []
    internal = _one(reqs, "ACC-INTERNAL-ENDPOINTS-BLOCKED")
    assert internal["observed"][0] == "/i/status → HTTP 200" and len(internal["observed"]) == 8


def test_untrusted_certificate_fails(lab, tmp_path, certs):
    h, addr = _host(lab, "tls")
    other = make_certs(tmp_path / "other")
    with LoopbackStack(addr, tmp_path / "stack", certs, host=h):
        reqs = run_checks(tmp_path, addr, other.ca_bundle, "-k", "nginz_status or static_sites")
    res = _one(reqs, "ACC-NGINZ-STATUS")
    assert res["status"] == "fail" and "CERTIFICATE_VERIFY_FAILED" in res["observed"]
    assert _one(reqs, "ACC-STATIC-SITES")["status"] == "fail"


def test_inputs_missing_and_features_unused(tmp_path):
    # nothing listens at 198.18.0.1 (never routed): the checks stop before any probe
    reqs = run_checks(tmp_path, "198.18.0.1", None, "--no-domain", "-k", "nginz_status")
    res = _one(reqs, "ACC-NGINZ-STATUS")
    assert res["status"] == "not_evaluated" and "--domain" in res["message"]
    reqs = run_checks(tmp_path, "198.18.0.1", None, "--profile", "production", "-k", "sftd")
    res = _one(reqs, "ACC-SFTD-HTTPS")
    assert res["status"] == "not_applicable" and "SFT" in res["message"]


def test_gate_waits_for_a_converging_stack(lab, tmp_path, certs):
    """coturn comes up only after the first attempt: the gate retries, shows the time left, then passes."""
    h, addr = _host(lab, "converging")
    coturn = Coturn(addr, 3478, tmp_path / "coturn", host=h)
    lines: list[str] = []
    started = threading.Event()

    def say(line: str) -> None:
        lines.append(line)
        if "retrying" in line and not started.is_set():
            coturn.start()
            started.set()

    try:
        with LoopbackStack(addr, tmp_path / "stack", certs, host=h):
            res = run_gate_until("acceptance", tmp_path / "gate", timeout=60, interval=1, say=say,
                                 profile="demo", inventory=None, suites=REPO / "suites", pytest_args=[],
                                 phase_args=["-k", "test_services and not test_demo_", "--domain", DOMAIN,
                                             "--wire-ip", addr, "--ca-bundle", str(certs.ca_bundle)])
    finally:
        coturn.stop()
    assert res.passed, lines
    assert [a["blocking"] for a in res.attempts] == [["ACC-TURN-STUN"], []]
    assert any("retrying in 1s" in line and "s of 60s left" in line for line in lines)


def test_gate_gives_up_after_the_timeout(lab, tmp_path, certs):
    h, addr = _host(lab, "timeout")
    lines: list[str] = []
    with LoopbackStack(addr, tmp_path / "stack", certs, host=h):
        start = time.monotonic()
        res = run_gate_until("acceptance", tmp_path / "gate", timeout=4, interval=2, say=lines.append,
                             profile="demo", inventory=None, suites=REPO / "suites", pytest_args=[],
                             phase_args=["-k", "turn_stun", "--domain", DOMAIN, "--wire-ip", addr])
    assert not res.passed and 1 <= len(res.attempts) <= 3
    assert time.monotonic() - start < 4 + 2 + 30  # bounded: timeout + one interval + one run
    assert "ACC-TURN-STUN" in res.summary_line()


def test_turn_over_tls_when_configured(lab, tmp_path, certs):
    """With turn_tls_port in the inventory, ACC-TURN-STUN also runs a Binding request inside TLS."""
    h, addr = _host(lab, "turntls")
    turn_certs = make_certs(tmp_path / "turn", names=["turn"])

    def run(tls_port: int) -> dict:
        inv = lab.inventory_yaml(tmp_path / f"inv{tls_port}.yml", hosts=[h], vars={
            "target_domain": DOMAIN, "wire_ip": addr, "turn_tls_port": tls_port, "turn_tls_name": f"turn.{DOMAIN}"})
        return run_checks(tmp_path, addr, turn_certs.ca_bundle, "-k", "turn_stun", "--ansible-inventory", str(inv))

    with Coturn(addr, 3478, tmp_path / "coturn", host=h, tls_port=5349, certs=turn_certs):
        good = _one(run(5349), "ACC-TURN-STUN")
        bad = _one(run(5350), "ACC-TURN-STUN")  # nothing listens there
    assert good["status"] == "pass", good
    assert good["evidence"]["stun"][f"tls://{addr}:5349"]["transport"] == "tls"
    assert bad["status"] == "fail" and bad["observed"] == [f"TLS {addr}:5350: TCP connect failed: [Errno 111] Connection refused"]


def test_turn_not_applicable_when_calling_is_disabled(lab, tmp_path):
    h, addr = _host(lab, "nocalling")
    inv = lab.inventory_yaml(tmp_path / "inv.yml", hosts=[h], vars={"target_domain": DOMAIN, "wire_ip": addr,
                                                                   "calling_enabled": False})
    res = _one(run_checks(tmp_path, addr, None, "-k", "turn_stun", "--ansible-inventory", str(inv)), "ACC-TURN-STUN")
    assert res["status"] == "not_applicable" and "calling_enabled: false" in res["message"]
