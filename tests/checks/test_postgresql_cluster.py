"""PROD-ACC-POSTGRESQL against a real PostgreSQL cluster (Debian's postgresql package) in three lab
hosts: one primary and two standbys made with `pg_basebackup -R`, checked over SSH with psql exactly as
on a site. One cluster for the whole module, taken through the cases in order (each case puts back what
it broke, the last two are destructive): healthy, a standby stopped, a standby cut off by pg_hba.conf
(with and without an extra pg_receivewal client), replay paused and lagging, no primary, two primaries.

One test function on purpose: under `pytest -n 2` the tests of a module may go to both workers, which
would build the cluster twice.
"""

from __future__ import annotations

import glob
import json
import subprocess
import time

import pytest

from tests.lab.fixtures import skip_or_fail
from tests.support.pgcluster import DATA, PORT, PgCluster, pg_bin
from tests.support.wc import run_suite

RID = "PROD-ACC-POSTGRESQL"


@pytest.fixture(scope="module")
def pg(lab_module):
    if not (glob.glob("/usr/lib/postgresql/*/bin/postgres")):
        skip_or_fail("postgresql (PostgreSQL server) not installed (scripts/install.sh --test installs it)")
    hosts = lab_module.add_hosts([{"name": n} for n in ("pg1", "pg2", "pg3")])
    cluster = PgCluster(hosts)
    try:
        yield cluster.build()
    finally:
        cluster.close()


def _check(lab, tmp_path, name: str, *extra: str, vars: dict | None = None):
    inv = lab.inventory_ini(tmp_path / f"{name}.ini", {"postgresql": lab.hosts}, vars)
    run = run_suite(["--ansible-inventory", str(inv), "--profile", "production", "-k", "test_postgresql", *extra],
                    tmp_path / name, suite="suites/acceptance/test_datastores.py")
    return run.result(RID)


def _wait(what: str, pred, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout}s: {what}")


def test_postgresql_cluster_judged_from_every_member(pg, lab_module, tmp_path):
    lab = lab_module
    p, s2, s3 = pg.servers
    addr = {s.name: s.host.address for s in pg.servers}

    # -- healthy: one primary, two standbys streaming from it
    r = _check(lab, tmp_path, "healthy")
    assert r["status"] == "pass", r
    assert "2 standby(s) streaming from pg1" in r["observed"], r["observed"]
    assert "pg1: primary" in r["observed"] and "pg3: standby (in recovery)" in r["observed"]
    assert r["evidence"]["streaming_standbys"] == ["pg2", "pg3"]
    assert "pg_stat_wal_receiver" in r["method"]

    # -- pg2's login user needs a password for sudo: without the inventory's become password pg2 is not
    # measured (error naming sudo); with ansible_become_pass psql runs as postgres there too, and passes
    pw = "pg2 sudo pass"
    with s2.host.sudo_asks_password(pw):
        r = _check(lab, tmp_path, "become-none")
        assert r["status"] == "error", r
        assert "could not measure pg2: sudo: a password is required" in r["message"], r["message"]
        r = _check(lab, tmp_path, "become-pass", vars={"ansible_become_pass": pw})
        assert r["status"] == "pass", r
        assert "2 standby(s) streaming from pg1" in r["observed"], r["observed"]
        assert pw not in json.dumps(r)

    # -- a standby stopped: a measured failure naming it, psql's reason whole in the evidence
    s3.stop()
    try:
        r = _check(lab, tmp_path, "stopped")
    finally:
        s3.start()
    assert r["status"] == "fail", r
    assert "pg3: PostgreSQL is not running (psql: error: connection to server on socket" in r["message"], r["message"]
    assert "No such file or directory Is the server running locally" in r["message"]
    assert "1 inventory standby(s) streaming from the primary pg1, need 2" in r["message"]
    m3 = r["evidence"]["members"]["pg3"]
    assert m3["state"] == "down" and "Is the server running locally" in m3["stderr"]
    pg.wait_streaming([addr["pg3"]])

    # -- a standby cut off by pg_hba.conf: still "in recovery", but not receiving WAL
    hba = f"{DATA}/pg_hba.conf"
    p.as_postgres(f"sed -i '1i host replication all {addr['pg3']}/32 reject' {hba}")
    p.reload()
    p.sql(f"select pg_terminate_backend(pid) from pg_stat_replication where client_addr = '{addr['pg3']}'")
    pg.wait_streaming([addr["pg3"]], present=False)
    receivewal = None
    try:
        r = _check(lab, tmp_path, "cut-off")
        assert r["status"] == "fail", r
        assert "pg3: in recovery but" in r["message"], r["message"]
        assert "the primary pg1 has no WAL sender to it" in r["message"]
        # another streaming client on the primary (a WAL archiver) must not stand in for pg3
        p.host.exec("install -d -o postgres -g postgres /var/lib/postgresql/walarchive")
        receivewal = p.host.popen(["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                                   f"{pg_bin()}/pg_receivewal", "-h", addr["pg1"], "-p", str(PORT), "-U", "postgres",
                                   "-D", "/var/lib/postgresql/walarchive", "-n"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait("pg_receivewal streaming", lambda: "pg_receivewal" in p.sql(
            "select application_name from pg_stat_replication where state = 'streaming'"))
        r = _check(lab, tmp_path, "cut-off-receivewal")
        assert r["status"] == "fail", r
        assert "1 inventory standby(s) streaming from the primary pg1, need 2" in r["message"], r["message"]
        assert f"other WAL clients of the primary (not counted): pg_receivewal from {addr['pg1']}" in r["observed"]
    finally:
        if receivewal is not None:
            receivewal.terminate()
            receivewal.wait(timeout=10)
        p.as_postgres(f"sed -i '1d' {hba}")
        p.reload()
    pg.wait_streaming([addr["pg3"]])

    # -- replay paused on pg2 while the primary writes: paused, and behind by more than the threshold
    s2.sql("select pg_wal_replay_pause()")
    try:
        p.sql("create table filler as select g, repeat('x', 200) as pad from generate_series(1, 2000) g")
        _wait("pg2 behind", lambda: int(float(p.sql(
            f"select coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0) from pg_stat_replication "
            f"where client_addr = '{addr['pg2']}'") or 0)) > 65536)
        r = _check(lab, tmp_path, "paused", "--param", f"{RID}.max_lag_bytes=65536")
    finally:
        s2.sql("select pg_wal_replay_resume()")
    assert r["status"] == "fail", r
    assert "pg2: in recovery but WAL replay is paused (resume it: select pg_wal_replay_resume())" in r["message"], r["message"]
    assert "bytes behind the primary, more than 65,536" in r["message"]
    assert "pg3" not in r["message"]

    # -- no primary: pg1 restarted as a standby of pg2, so all three are in recovery (writes refused)
    p.stop()
    p.as_postgres(f"touch {DATA}/standby.signal && echo \"primary_conninfo = 'host={addr['pg2']} port={PORT} "
                  f"user=postgres'\" >> {DATA}/postgresql.auto.conf")
    p.start()
    r = _check(lab, tmp_path, "no-primary")
    assert r["status"] == "fail", r
    assert "on site: no primary: pg1, pg2, pg3 are all in recovery, nothing accepts writes" in r["message"], r["message"]

    # -- two primaries: pg1 and pg2 promoted, each accepts writes (split brain)
    for s in (p, s2):
        s.sql("select pg_promote(true, 30)")
    r = _check(lab, tmp_path, "two-primaries")
    assert r["status"] == "fail", r
    assert "on site: two primaries (pg1, pg2): more than one member accepts writes" in r["message"], r["message"]

