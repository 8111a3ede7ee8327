"""FED-RABBITMQ against a real two-node RabbitMQ cluster (Debian's rabbitmq-server) in lab hosts, as an
external [rmq-cluster], checked over SSH with rabbitmqctl as on a site (no kubeconfig: the brokers are
the only path). One cluster, taken through the cases in order: running (guest removed, as a site must)
passes with min_nodes=2; the default guest/guest login accepted fails; a broker stopped fails naming
it. One test function: under `pytest -n 2` a module's tests may go to both workers.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.lab.fixtures import skip_or_fail
from tests.support.rabbitmq import RabbitCluster
from tests.support.wc import run_suite

RID = "FED-RABBITMQ"
PATH = "rabbitmqctl on the [rmq-cluster] hosts"


@pytest.fixture(scope="module")
def rmq(lab_module):
    if not (os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server") and shutil.which("epmd")):
        skip_or_fail("rabbitmq-server not installed (scripts/install.sh --test installs it)")
    hosts = lab_module.add_hosts([{"name": "rmq1"}, {"name": "rmq2"}])
    cluster = RabbitCluster(hosts)
    try:
        cluster.build()
        cluster.brokers[0].ctl("delete_user", "guest")
        yield cluster
    finally:
        cluster.close()


def _check(lab, tmp_path, name: str, *extra: str):
    inv = lab.inventory_ini(tmp_path / f"{name}.ini", {"rmq-cluster": lab.hosts})
    run = run_suite(["--ansible-inventory", str(inv), "--profile", "production", "--federation",
                     "-k", "test_federation_rabbitmq", *extra],
                    tmp_path / name, suite="suites/acceptance/test_federation.py")
    return run.result(RID)


def test_rabbitmq_cluster_judged_from_every_member(rmq, lab_module, tmp_path):
    lab = lab_module
    two = ("--param", f"{RID}.min_nodes=2")

    r = _check(lab, tmp_path, "running", *two)
    assert r["status"] == "pass", r
    assert r["observed"] == (f"{PATH}: 2 node(s) (rabbit@rmq1, rabbit@rmq2), running: rabbit@rmq1, rabbit@rmq2; "
                             "guest/guest refused"), r["observed"]
    assert "rabbitmqctl cluster_status --formatter json" in r["method"]
    assert r["evidence"]["paths"] == [PATH]
    assert "need --kubeconfig" in r["evidence"]["not_measured"]

    # the default guest/guest login
    rmq.brokers[0].ctl("add_user", "guest", "guest")
    try:
        r = _check(lab, tmp_path, "guest", *two)
    finally:
        rmq.brokers[0].ctl("delete_user", "guest")
    assert r["status"] == "fail", r
    assert f"{PATH}: the default guest/guest login is accepted" in r["message"], r["message"]

    # a broker stopped: its own host says so, and the other one no longer counts it as running
    rmq.broker("rmq2").stop()
    r = _check(lab, tmp_path, "stopped", *two)
    assert r["status"] == "fail", r
    assert f"{PATH}: rmq2: RabbitMQ is not running (epmd reports: node 'rabbit' not running at all)" in r["message"], \
        r["message"]
    assert "1 running node(s), need >= 2" in r["message"]
    assert "rmq1" not in r["message"].split("(on each")[0].replace("rabbit@rmq1", "")
    assert r["evidence"][PATH]["hosts"]["rmq2"]["state"] == "down"
    assert "Target node is not running" in r["evidence"][PATH]["hosts"]["rmq2"]["stderr"]
