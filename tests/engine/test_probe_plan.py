"""Which ports a host's port probe covers: what the port checks that apply to it read, no more."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from suites.preflight.test_ports import probe_plan

RANGE = list(range(32768, 65536))


def plan(roles, profile="production", phase="preflight", overrides=None):
    site = SimpleNamespace(profile=profile, phase=phase, overrides=overrides or {})
    return probe_plan(SimpleNamespace(roles=roles, name="h"), site)


@pytest.mark.parametrize("role", ["cassandra", "elasticsearch", "minio", "postgresql", "assethost", "admin"])
def test_a_database_vm_gets_ssh_and_the_mtu_port_only(role):
    assert plan([role]) == {"tcp": [22], "udp": [32768], "echo_udp": []}


def test_a_kubernetes_node_gets_everything_clients_reach():
    p = plan(["kube-node", "kube-master", "etcd"])
    assert p["tcp"] == [22, 80, 443, 3478]
    assert p["udp"] == sorted({3478, *RANGE}) and p["echo_udp"] == [3478]


def test_restund_gets_turn_and_the_range_not_web_ports():
    p = plan(["restund"])
    assert p["tcp"] == [22, 3478] and p["udp"] == sorted({3478, *RANGE}) and p["echo_udp"] == [3478]


def test_the_demo_node_gets_the_installer_ports_too():
    p = plan(["deploy_node"], profile="demo")
    assert p["tcp"] == [22, 80, 443, 3478, 8080] and p["udp"] == sorted({3478, *RANGE})


def test_acceptance_does_not_probe_ssh_and_follows_a_range_override():
    p = plan(["restund"], phase="acceptance", overrides={"NET-PORT-UDP-RANGE": {"udp_range": "40000-40009"}})
    assert 22 not in p["tcp"] and p["udp"] == sorted({3478, *range(40000, 40010)})
