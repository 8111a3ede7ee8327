"""TURN checks probe the address clients are given, not the one wirecheck logs in to.

A restund host in a lab namespace whose inventory names a second address of the host as
``restund_public_ip`` (reachable from the runner, like a public IP in front of the VM) while its
``ansible_host`` stays the SSH address: a real coturn on the public IP makes ACC-TURN-STUN pass; coturn
only on the SSH address (the decoy) makes it fail, naming the public IP and why it was probed.
NET-PORT-TURN-3478 before the install sends its probes to the public IP with the listener on the host:
compliant when that address reaches the host, failing when the inventory's public IP is another
machine (which the old "probe ansible_host" reading would have passed).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.lab import lab_unavailable_reason
from tests.lab.fixtures import lab_required
from tests.provision.stack import Coturn
from tests.support.wc import run_suite

pytestmark = pytest.mark.skipif(lab_unavailable_reason() is not None and not lab_required(),
                                reason=str(lab_unavailable_reason()))

DOMAIN = "turn.example.test"


@pytest.fixture(scope="module")
def hosts(lab_module):
    public = f"198.18.{lab_module.index}.250"  # outside the lab's host numbering
    restund, elsewhere = lab_module.add_hosts([
        # private_tmp=False: coturn keeps its database in the test's tmp_path
        {"name": "restund01", "extra_addresses": [f"{public}/32"], "private_tmp": False},
        {"name": "elsewhere"},
    ])
    return {"lab": lab_module, "restund": restund, "elsewhere": elsewhere, "public": public}


def inventory(hosts, path: Path, **host_vars: str) -> Path:
    lab, restund = hosts["lab"], hosts["restund"]
    path.parent.mkdir(parents=True, exist_ok=True)
    inv = lab.inventory_ini(path, {"restund": [restund]}, vars={"target_domain": DOMAIN}, hosts=[restund])
    extra = "".join(f" {key}={value}" for key, value in host_vars.items())
    inv.write_text(re.sub(r"(?m)^(restund01 .*)$", lambda m: m.group(1) + extra, inv.read_text()))
    return inv


def acceptance(hosts, tmp_path: Path, *extra: str, **host_vars: str):
    inv = inventory(hosts, tmp_path / "hosts.ini", **host_vars)
    run = run_suite(["-k", "turn_stun", "--ansible-inventory", str(inv), "--profile", "production", *extra],
                    tmp_path / "report", suite="suites/acceptance/test_services.py")
    assert "INTERNALERROR" not in run.stdout + run.stderr, run.stdout[-3000:] + run.stderr[-3000:]
    return run.result("ACC-TURN-STUN")


def acceptance_port(hosts, tmp_path: Path, **host_vars: str):
    inv = inventory(hosts, tmp_path / "hosts.ini", **host_vars)
    run = run_suite(["-k", "turn_port_answers", "--ansible-inventory", str(inv), "--profile", "production"],
                    tmp_path / "report", suite="suites/acceptance/test_ports.py")
    assert "INTERNALERROR" not in run.stdout + run.stderr, run.stdout[-3000:] + run.stderr[-3000:]
    return run.result("NET-PORT-TURN-3478", "restund01")


def test_stun_probes_restund_public_ip_where_coturn_answers(hosts, tmp_path):
    public = hosts["public"]
    with Coturn(public, 3478, tmp_path / "coturn", host=hosts["restund"]):
        res = acceptance(hosts, tmp_path, restund_public_ip=public)
        port = acceptance_port(hosts, tmp_path / "port", restund_public_ip=public)
    assert port["status"] == "pass", port
    assert port["evidence"]["probed_address"] == public
    assert port["evidence"]["turn_address_source"] == "restund_public_ip of restund01"
    assert res["status"] == "pass", res
    assert res["evidence"]["turn_addresses"] == [{"address": public, "source": "restund_public_ip of restund01"}]
    assert set(res["evidence"]["stun"]) == {f"udp://{public}:3478", f"tcp://{public}:3478"}


def test_stun_fails_when_only_the_login_address_answers(hosts, tmp_path):
    public, login = hosts["public"], hosts["restund"].address
    with Coturn(login, 3478, tmp_path / "coturn", host=hosts["restund"]):  # the decoy: ansible_host
        res = acceptance(hosts, tmp_path, restund_public_ip=public)
        # the twin, proving the decoy answers: with --turn-ip naming it, the operator's address wins
        chosen = acceptance(hosts, tmp_path / "turn-ip", "--turn-ip", login, restund_public_ip=public)
        port = acceptance_port(hosts, tmp_path / "port", restund_public_ip=public)
    assert port["status"] == "fail", port
    assert f"the TURN port at {public} (restund_public_ip of restund01) does not answer" in port["message"]
    assert res["status"] == "fail", res
    assert f"probed: {public} (restund_public_ip of restund01)" in res["message"]
    assert all(f"{public}:3478" in problem for problem in res["observed"])
    assert f"{login}:3478" not in " ".join(res["observed"])
    assert chosen["status"] == "pass", chosen
    assert chosen["evidence"]["turn_addresses"] == [{"address": login, "source": "--turn-ip"}]


def test_without_a_public_ip_the_login_address_is_probed_and_said_so(hosts, tmp_path):
    login = hosts["restund"].address
    with Coturn(login, 3478, tmp_path / "coturn", host=hosts["restund"]):
        res = acceptance(hosts, tmp_path)
    assert res["status"] == "pass", res
    (entry,) = res["evidence"]["turn_addresses"]
    assert entry["address"] == login and entry["source"].startswith("ansible_host of restund01 (no restund_public_ip")


def preflight(hosts, tmp_path: Path, public: str):
    inv = inventory(hosts, tmp_path / "hosts.ini", restund_public_ip=public)
    run = run_suite(["-k", "turn_port_reachable", "--ansible-inventory", str(inv), "--profile", "production"],
                    tmp_path / "report")
    assert "INTERNALERROR" not in run.stdout + run.stderr, run.stdout[-3000:] + run.stderr[-3000:]
    return run.result("NET-PORT-TURN-3478", "restund01")


def test_preflight_turn_port_is_probed_at_the_public_ip(hosts, tmp_path):
    public = hosts["public"]
    good = preflight(hosts, tmp_path / "good", public)
    assert good["status"] == "pass", good
    evidence = good["evidence"]
    assert evidence["turn_address"] == public and evidence["probed_address"] == public
    assert evidence["turn_address_source"] == "restund_public_ip of restund01"
    decoy = hosts["elsewhere"].address  # the inventory's public IP is another machine
    bad = preflight(hosts, tmp_path / "bad", decoy)
    assert bad["status"] == "fail", bad
    assert bad["evidence"]["probed_address"] == decoy
    assert f"TCP and UDP 3478 sent to {decoy} (restund_public_ip of restund01) do not all reach restund01" \
        in bad["message"]
