"""Machines, not names: the pure decisions of wirecheck.machines (fast; the lab tests in
tests/checks/test_production_checks.py prove the same on real hosts)."""

from __future__ import annotations

import pytest

from wirecheck.machines import (
    Identity,
    Machine,
    count_machines,
    group_machines,
    identify,
    machine_of,
    merged_names,
)

MID_A = "0123456789abcdef0123456789abcdef"
MID_B = "fedcba9876543210fedcba9876543210"
BOOT_1 = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
BOOT_2 = "2c5f39cb-3fb2-22e3-994f-1127e4ddb538"


def test_machine_id_identifies():
    i = identify(MID_A, BOOT_1, "10.0.0.5", 22)
    assert i.key == ("machine-id", MID_A, BOOT_1)
    assert i.how == f"machine-id {MID_A}, boot id {BOOT_1}"
    assert not i.by_address


def test_machine_id_normalised():
    assert identify(MID_A.upper() + "\n", " " + BOOT_1.upper(), "x").key == ("machine-id", MID_A, BOOT_1)


def test_machine_id_without_boot_id():
    i = identify(MID_A, None, "10.0.0.5")
    assert i.key == ("machine-id", MID_A, "") and i.how == f"machine-id {MID_A}"


@pytest.mark.parametrize("mid, why", [
    (None, "/etc/machine-id is empty or missing"),
    ("", "/etc/machine-id is empty or missing"),
    ("uninitialized", "/etc/machine-id holds 'uninitialized', not a machine-id"),
    (MID_A[:-1], f"/etc/machine-id holds {MID_A[:-1]!r}, not a machine-id"),
    (MID_A + "0", f"/etc/machine-id holds {MID_A + '0'!r}, not a machine-id"),
    ("g" * 32, f"/etc/machine-id holds {'g' * 32!r}, not a machine-id"),
])
def test_unreadable_machine_id_falls_back_to_address_and_says_so(mid, why):
    i = identify(mid, BOOT_1, "10.0.0.5", 2222)
    assert i.by_address and i.key == ("address", "10.0.0.5", "2222")
    assert i.how == f"address 10.0.0.5:2222 (machine-id not read: {why})"


def test_unreachable_host_falls_back_to_address_and_says_why():
    i = identify(MID_A, BOOT_1, "10.0.0.5", None, problem="ssh: connection refused")
    assert i.key == ("address", "10.0.0.5", "22")
    assert i.how == "address 10.0.0.5 (machine-id not read: ssh: connection refused)"


def test_ports_tell_machines_behind_one_address_apart():
    assert identify(None, None, "10.0.0.5", 2201).key != identify(None, None, "10.0.0.5", 2202).key
    assert identify(None, None, "10.0.0.5", None).key == identify(None, None, "10.0.0.5", 22).key


def test_two_names_of_one_machine_carry_both_roles():
    same = identify(MID_A, BOOT_1, "10.0.0.5")
    also = identify(MID_A, BOOT_1, "10.0.0.6")      # a second address of the same VM
    other = identify(MID_B, BOOT_1, "10.0.0.7")
    ms = group_machines([("es1", ["elasticsearch"], also), ("cas1", ["cassandra", "cassandra_seed"], same),
                         ("cas2", ["cassandra"], other)])
    assert [m.names for m in ms] == [["cas1", "es1"], ["cas2"]]
    m = machine_of("es1", ms)
    assert m.roles == {"cassandra", "cassandra_seed", "elasticsearch"} and m.merged and m.label == "cas1 = es1"
    assert machine_of("cas1", ms) is m
    assert not machine_of("cas2", ms).merged and machine_of("cas2", ms).roles == {"cassandra"}
    assert merged_names(ms) == {"cas1 = es1": ["cas1", "es1"]}
    assert m.identity == same                       # the first name's identity stands for the machine
    with pytest.raises(KeyError, match="nope"):
        machine_of("nope", ms)


def test_clones_with_one_machine_id_but_their_own_boots_stay_apart():
    ms = group_machines([("a", ["cassandra"], identify(MID_A, BOOT_1, "10.0.0.5")),
                         ("b", ["cassandra"], identify(MID_A, BOOT_2, "10.0.0.6"))])
    assert len(ms) == 2 and merged_names(ms) == {}


def test_duplicates_count_once_toward_three():
    one = identify(MID_A, BOOT_1, "10.0.0.5")
    ms = group_machines([("kube1", ["kube-node"], one), ("kube1-again", ["kube-node"], one),
                         ("kube2", ["kube-node"], identify(MID_B, BOOT_1, "10.0.0.6")),
                         ("db", ["postgresql"], identify(None, None, "10.0.0.9"))])
    assert [m.names for m in count_machines(ms, ["kube-node"])] == [["kube1", "kube1-again"], ["kube2"]]
    assert len(count_machines(ms, ["kube-node", "postgresql"])) == 3
    assert count_machines(ms, ["etcd"]) == []


def test_machine_defaults():
    m = Machine(Identity(("address", "a", "22"), "address a"))
    assert m.names == [] and m.roles == set() and not m.merged
