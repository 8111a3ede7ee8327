"""PROD-ACC-CASSANDRA against a real Apache Cassandra ring (tests/lab/cassandra.py): two nodes in lab
hosts, `nodetool` from the same jars on every host, the check run over SSH as on a site.

One test walks through the states on one ring (a ring costs ~40 s of the machine's 2 cores and
~1 GiB of memory; under `pytest -n 2` a second test could start a second ring on the other worker):
healthy -> pass; the catalog's 3 nodes against a 2-node ring -> fail; an inventory member where no
Cassandra runs -> that member fails "not running" and the others say it is not in their ring; a node
stopped -> the survivor names it DN and the stopped one fails "not running".
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.lab import cassandra as cz
from tests.lab.core import Lab
from tests.lab.fixtures import skip_or_fail
from tests.support.wc import run_suite

RID = "PROD-ACC-CASSANDRA"


@pytest.fixture(scope="module")
def ring(lab_module: Lab) -> Iterator[tuple[Lab, cz.CassandraRing]]:
    try:
        lib = cz.lib_dir()
    except cz.CassandraUnavailable as exc:
        skip_or_fail(str(exc))
    first = lab_module._next_host
    addresses = [f"198.18.{lab_module.index}.{first + i}" for i in range(3)]
    seeds = addresses[:1]
    hosts = lab_module.add_hosts([
        {"name": f"cassandra{i + 1}", "files": cz.node_files(lib, addr, seeds), "tmpfs": {cz.DATA: "200m"}}
        for i, addr in enumerate(addresses)])
    assert [h.address for h in hosts] == addresses
    the_ring = cz.CassandraRing.on(hosts[:2], lib)   # cassandra3 has nodetool but no Cassandra
    try:
        started = time.monotonic()
        the_ring.start_all(timeout=300)
        print(f"cassandra ring of 2 up in {time.monotonic() - started:.1f} s")
        yield lab_module, the_ring
    finally:
        the_ring.close()


def _acceptance(lab: Lab, tmp, members: list[str], *extra: str):
    tmp.mkdir(parents=True)
    hosts = [lab.host(m) for m in members]
    inv = lab.inventory_ini(tmp / "hosts.ini", {"cassandra": hosts}, hosts=hosts)
    return run_suite(["--ansible-inventory", str(inv), "--profile", "production", "-k", "test_cassandra", *extra],
                     tmp / "report", suite="suites/acceptance/test_datastores.py")


def test_cassandra_ring_pass_and_fail_on_a_real_ring(ring, tmp_path):
    lab, the_ring = ring
    one, two = the_ring.nodes
    a1, a2, a3 = (lab.host(f"cassandra{i}").address for i in (1, 2, 3))

    # healthy two-node ring, the requirement's count set to the ring's size: pass on both members
    ok = _acceptance(lab, tmp_path / "ok", ["cassandra1", "cassandra2"], "--param", f"{RID}.min_nodes=2")
    assert ok.status(RID) == "pass", ok.requirement(RID)
    for member in ("cassandra1", "cassandra2"):
        r = ok.result(RID, member)
        assert r["status"] == "pass", r
        ev = r["evidence"]
        assert {n["address"]: n["state"] for n in ev["ring"]} == {a1: "UN", a2: "UN"}, ev
        assert ev["cluster_name"] == cz.CLUSTER_NAME and len(ev["schema_versions"]) == 1, ev

    # the catalog's 3 nodes: the same ring is too small
    small = _acceptance(lab, tmp_path / "small", ["cassandra1", "cassandra2"])
    r = small.result(RID, "cassandra1")
    assert r["status"] == "fail", r
    assert "2 node(s) Up/Normal, the requirement needs at least 3" in r["message"], r

    # an inventory member where nothing runs: it fails itself, the others do not have it in their ring
    extra = _acceptance(lab, tmp_path / "extra", ["cassandra1", "cassandra2", "cassandra3"],
                        "--param", f"{RID}.min_nodes=2")
    assert extra.status(RID) == "fail"
    r3 = extra.result(RID, "cassandra3")
    assert r3["status"] == "fail" and "Cassandra is not running on cassandra3" in r3["message"], r3
    assert "Connection refused" in r3["message"] and "Connection refused" in r3["evidence"]["nodetool_output"]
    r1 = extra.result(RID, "cassandra1")
    assert r1["status"] == "fail" and f"cassandra3 ({a3}) is not in the ring" in r1["message"], r1
    assert r1["evidence"]["missing_members"] == ["cassandra3"]

    # a node stopped: the survivor names it DN, the stopped member fails as not running
    the_ring.stop(two)
    the_ring.wait_down(one, a2)
    down = _acceptance(lab, tmp_path / "down", ["cassandra1", "cassandra2"], "--param", f"{RID}.min_nodes=2")
    assert down.status(RID) == "fail"
    r1 = down.result(RID, "cassandra1")
    assert r1["status"] == "fail", r1
    assert f"cassandra2 ({a2}) is DN (Down/Normal)" in r1["message"], r1
    assert r1["evidence"]["down"] == [a2] and a2 in r1["evidence"]["unreachable"], r1["evidence"]
    r2 = down.result(RID, "cassandra2")
    assert r2["status"] == "fail" and "Cassandra is not running on cassandra2" in r2["message"], r2
