"""The cluster judges (wirecheck.probes.clusters) on member facts, both ways, for the states the lab
tests cannot reach cheaply: a tool missing or sudo refused (error, never pass), a host not reached
beside a measured failure (fail), a standby streaming from another server, an extra WAL client, an
etcd host that is not a member, a RabbitMQ partition or two separate clusters. The real servers'
output is exercised in tests/checks/test_{postgresql,etcd,rabbitmq}_cluster.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wirecheck.probes import clusters as cl
from wirecheck.transport import CommandResult


@dataclass
class FakeTarget:
    """A target whose commands answer from a script: (substring of the command, rc, stdout, stderr)."""

    name: str
    address: str
    answers: list[tuple[str, int, str, str]] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)

    def run(self, command: str, timeout: float | None = None, sudo: bool = False, stdin=None) -> CommandResult:
        for needle, rc, out, err in self.answers:
            if needle in command:
                return CommandResult(command, rc, out, err, 0.0)
        raise AssertionError(f"unexpected command {command}")


def pg(name: str, addr: str, **facts: Any) -> cl.Member:
    return cl.Member(name=name, addresses={addr}, names={name}, state=cl.UP, facts=facts)


def primary(*senders: dict[str, Any]) -> cl.Member:
    return pg("pg1", "10.0.0.1", in_recovery=False, senders=list(senders))


def standby(name: str, addr: str, sender_host: str = "10.0.0.1", status: str = "streaming", **kw: Any) -> cl.Member:
    return pg(name, addr, **{"in_recovery": True, "replay_paused": False,
                             "receiver": [{"status": status, "sender_host": sender_host}], **kw})


def sender(addr: str | None, app: str = "walreceiver", lag: float = 0) -> dict[str, Any]:
    return {"client_addr": addr, "application_name": app, "state": "streaming", "lag_bytes": lag}


def test_pg_one_primary_two_standbys_pass_and_lag_fails():
    members = [primary(sender("10.0.0.2"), sender("10.0.0.3", lag=100)), standby("pg2", "10.0.0.2"),
               standby("pg3", "10.0.0.3")]
    assert cl.judge_pg_cluster(members, 2).ok
    j = cl.judge_pg_cluster(members, 2, max_lag_bytes=99)
    assert not j.ok and "pg3: in recovery but replay is 100 bytes behind the primary, more than 99" in j.message


def test_pg_standby_matched_by_application_name_and_wrong_upstream():
    # repmgr names the walsender after the node: matched by application_name though the address differs (NAT)
    ok = [primary(sender("192.0.2.9", app="pg2"), sender("10.0.0.3")), standby("pg2", "10.0.0.2"),
          standby("pg3", "10.0.0.3")]
    assert cl.judge_pg_cluster(ok, 2).ok
    # pg3 streams from some other server; the primary's extra client (a backup tool) does not count for it
    bad = [primary(sender("10.0.0.2"), sender("10.0.0.1", app="pg_receivewal")), standby("pg2", "10.0.0.2"),
           standby("pg3", "10.0.0.3", sender_host="10.0.0.99")]
    j = cl.judge_pg_cluster(bad, 2)
    assert not j.ok
    assert "pg3: in recovery but it streams from 10.0.0.99, not from the primary pg1 (10.0.0.1)" in j.message
    assert "the primary pg1 has no WAL sender to it" in j.message
    assert "other WAL clients of the primary (not counted): pg_receivewal from 10.0.0.1" in j.observed


def test_pg_unreached_member_is_error_alone_and_a_note_beside_a_failure():
    lost = cl.Member(name="pg3", addresses={"10.0.0.3"}, reason="not reached: ssh: connect timed out")
    healthy = [primary(sender("10.0.0.2"), sender("10.0.0.3")), standby("pg2", "10.0.0.2"), lost]
    j = cl.judge_pg_cluster(healthy, 2)
    assert not j.ok and not j.measurable and "pg3: not reached" in j.message
    assert "pg3: not measured on its host; the primary streams to it (10.0.0.3)" in j.observed
    # the primary itself says nothing streams to the unreachable member: measured from that side
    j = cl.judge_pg_cluster([primary(sender("10.0.0.2")), standby("pg2", "10.0.0.2"), lost], 2)
    assert not j.ok and j.measurable
    assert "pg3: the primary pg1 has no WAL sender to it (and its host could not be asked)" in j.message
    broken = [primary(sender("10.0.0.2")), standby("pg2", "10.0.0.2", replay_paused=True), lost]
    j = cl.judge_pg_cluster(broken, 1)
    assert j.measurable and not j.ok
    assert "pg2: in recovery but WAL replay is paused" in j.message and "not measured: pg3: not reached" in j.message


def test_psql_output_classified_on_the_member():
    warn = 'could not change directory to "/home/wire": Permission denied\n'
    down = FakeTarget("pg1", "10.0.0.1", [("psql", 2, "@hostname pg1\n@addresses 10.0.0.1\n", warn + (
        'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: Connection refused\n'
        "\tIs the server running locally and accepting connections on that socket?\n"))])
    m = cl.measure_pg_member(down, 5432, 5)
    assert m.state == cl.DOWN and m.reason.startswith("psql: error: connection to server on socket")
    assert m.reason.endswith("Connection refused Is the server running locally and accepting connections on that socket?")
    assert warn.strip() in m.stderr          # the whole stderr stays in the evidence
    missing = FakeTarget("pg1", "10.0.0.1", [("psql", 1, "", "sudo: psql: command not found\n")])
    m = cl.measure_pg_member(missing, 5432, 5)
    assert m.state == cl.UNMEASURED and m.reason.startswith("psql is not available on pg1")
    sudo = FakeTarget("pg1", "10.0.0.1", [("psql", 1, "", "sudo: a password is required\n")])
    m = cl.measure_pg_member(sudo, 5432, 5)
    assert m.state == cl.UNMEASURED and m.reason == "sudo: a password is required"
    j = cl.judge_pg_cluster([m], 2)
    assert not j.ok and not j.measurable and "could not measure pg1: sudo: a password is required" == j.message


def etcd_host(name: str, addr: str, members: list[tuple[int, str, str]], healthy: dict[str, bool],
              leader: int = 1) -> cl.Member:
    return cl.Member(name=name, addresses={addr}, names={name}, state=cl.UP, facts={
        "members": [{"ID": i, "name": n, "clientURLs": [f"https://{a}:2379"], "peerURLs": [f"https://{a}:2380"]}
                    for i, n, a in members],
        "health": [{"endpoint": f"https://{a}:2379", "health": ok, **({} if ok else {"error": "context deadline exceeded"})}
                   for a, ok in healthy.items()],
        "status": [{"Endpoint": f"https://{a}:2379", "Status": {"leader": leader}} for a, ok in healthy.items() if ok]})


ETCD3 = [(1, "etcd1", "10.0.0.1"), (2, "etcd2", "10.0.0.2"), (3, "etcd3", "10.0.0.3")]


def test_etcd_members_and_hosts():
    all_ok = {a: True for _, _, a in ETCD3}
    hosts = [etcd_host(n, a, ETCD3, all_ok) for _, n, a in ETCD3]
    j = cl.judge_etcd_cluster(hosts)
    assert j.ok and j.observed == "3 member(s), 3 healthy; leader etcd1"
    # an [etcd] host whose etcd belongs to no member, and a cluster of four (even)
    four = ETCD3 + [(4, "etcd4", "10.0.0.4")]
    hosts = [etcd_host(n, a, four, {**all_ok, "10.0.0.4": True}) for _, n, a in four]
    hosts.append(etcd_host("kubenode9", "10.0.0.9", four, {**all_ok, "10.0.0.4": True}))
    j = cl.judge_etcd_cluster(hosts)
    assert not j.ok and "4 is an even number of etcd members; it must be odd" in j.message
    assert "kubenode9 is in [etcd] but no etcd member advertises its address (10.0.0.9)" in j.message


def test_etcd_certificates_missing_is_error_not_down():
    t = FakeTarget("kubenode1", "10.0.0.1", [("etcdctl", 1, "", "Error: open /etc/ssl/etcd/ssl/admin-kubenode1.pem: "
                                              "no such file or directory\n")])
    m = cl.measure_etcd_member(t, cl.EtcdAccess(), 5)
    assert m.state == cl.UNMEASURED and "admin-kubenode1.pem: no such file or directory" in m.reason
    assert "--cert=/etc/ssl/etcd/ssl/admin-kubenode1.pem" in m.command and "https://10.0.0.1:2379" in m.command
    j = cl.judge_etcd_cluster([m])
    assert not j.ok and not j.measurable


def rmq(name: str, nodes: list[str], running: list[str], **facts: Any) -> cl.Member:
    return cl.Member(name=name, addresses={f"10.1.0.{name[-1]}"}, names={name}, state=cl.UP,
                     facts={"disk_nodes": nodes, "ram_nodes": [], "running_nodes": running, "partitions": {},
                            "alarms": [], "guest_login": "refused", **facts})


def test_rabbitmq_partition_alarm_and_split_clusters():
    nodes = ["rabbit@rmq1", "rabbit@rmq2", "rabbit@rmq3"]
    good = [rmq(f"rmq{i}", nodes, nodes) for i in (1, 2, 3)]
    assert cl.judge_rabbitmq_cluster(good).ok
    part = [rmq("rmq1", nodes, nodes, partitions={"rabbit@rmq1": ["rabbit@rmq3"]}), *good[1:]]
    j = cl.judge_rabbitmq_cluster(part)
    assert not j.ok and "network partition: rabbit@rmq1 cannot see rabbit@rmq3" in j.message
    alarm = [rmq("rmq1", nodes, nodes, alarms=["disk_free_alarm"]), *good[1:]]
    assert "resource alarm(s) block publishers: disk_free_alarm" in cl.judge_rabbitmq_cluster(alarm).message
    split = [rmq("rmq1", nodes[:2], nodes[:2]), rmq("rmq2", nodes[:2], nodes[:2]), rmq("rmq3", nodes[2:], nodes[2:])]
    j = cl.judge_rabbitmq_cluster(split)
    assert not j.ok and j.message.startswith("the [rmq-cluster] hosts do not form one cluster")


def test_rabbitmq_cookie_mismatch_is_error():
    t = FakeTarget("rmq1", "10.1.0.1", [("cluster_status", 69, "", (
        "Error: unable to perform an operation on node 'rabbit@rmq1'.\n * Target node is not running\n\n"
        "rabbit@rmq1:\n  * connected to epmd (port 4369) on rmq1\n  * epmd reports node 'rabbit' uses port 25672\n"
        "  * TCP connection succeeded but Erlang distribution failed\n"
        "  * Authentication failed (rejected by the remote node), please check the Erlang cookie\n"))])
    m = cl.measure_rabbitmq_member(t, 5)
    assert m.state == cl.UNMEASURED and m.reason.startswith("Authentication failed")
    assert not cl.judge_rabbitmq_cluster([m]).measurable


def test_combine_names_the_paths():
    good = cl.Judgement(ok=True, observed="fine", expected="x", method="m1")
    bad = cl.Judgement(ok=False, observed="broken", expected="x", method="m2", message="member down")
    lost = cl.Judgement(ok=False, observed="?", expected="x", method="m3", message="API: 403", measurable=False)
    j = cl.combine([("etcdctl", bad), ("Kubernetes API", lost)])
    assert not j.ok and j.measurable and j.message == "etcdctl: member down"
    j = cl.combine([("etcdctl", good), ("Kubernetes API", lost)])
    assert not j.ok and not j.measurable and j.message == "Kubernetes API: API: 403"
    j = cl.combine([("etcdctl", good)])
    assert j.ok and j.observed == "etcdctl: fine" and j.evidence["paths"] == ["etcdctl"]


def test_one_machine_under_two_names_is_one_member():
    """pg1 listed twice (pg1 and pgdb, same ansible_host): one primary, not "two primaries"; docker0's
    172.17.0.1 on every host does not make the hosts one machine."""
    p = primary(sender("10.0.0.2"), sender("10.0.0.3"))
    twin = pg("pgdb", "10.0.0.1", in_recovery=False, senders=p.facts["senders"])
    members = [p, twin, standby("pg2", "10.0.0.2"), standby("pg3", "10.0.0.3")]
    for m in members:
        m.inventory_addresses = set(m.addresses)
        m.addresses.add("172.17.0.1")
    j = cl.judge_pg_cluster(members, 2)
    assert j.ok, j.message
    assert "pgdb is the same machine as pg1 (counted once)" in j.observed
    assert j.evidence["same_machine"] == {"pgdb": "pg1"}
