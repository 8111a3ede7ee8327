"""Datastore VMs after install (ansible/*.yml of wire-server-deploy; versions.md › Persistence;
the offline guide's datastore checks): Cassandra, Elasticsearch, MinIO and PostgreSQL.

Each check runs on the datastore host itself over SSH (hosts of [cassandra], [elasticsearch],
[minio], [postgresql] in the inventory) with the datastore's own health tool or API:
`nodetool status`, `GET :9200/_cluster/health`, `GET :9000/minio/health/cluster`. PostgreSQL is
judged as a cluster: psql on every [postgresql] member, then one verdict for the set
(wirecheck.probes.clusters). Sites without such hosts get not_applicable (no host in the role).
A tool that is missing or an API that does not answer is `error` (could not measure), never pass;
a member whose server is not running is a measured failure naming that member.
"""

from __future__ import annotations

import re

from suites.preflight.test_kubernetes import conclude
from suites.preflight.test_production import fan_out
from wirecheck import cannot_measure, expect, fail, not_applicable, record, requirement
from wirecheck.probes import clusters
from wirecheck.probes import datastores_ring as ring
from wirecheck.probes import k8s_config as kc


def _run(target, command: str, timeout: float, tool: str) -> str:
    res = target.run(command, timeout=timeout)
    record(command=command, rc=res.rc)
    if res.rc == 127 or (res.rc != 0 and "not found" in res.stderr.lower()):
        cannot_measure(f"{tool} is not available on {target.name}: {res.stderr.strip()[:200]}")
    if res.rc != 0:
        cannot_measure(f"`{command}` failed on {target.name} (exit {res.rc}): "
                       f"{(res.stderr or res.stdout).strip()[:200]}")
    return res.stdout


def _judge(parsed: kc.Parsed, what: str, method: str) -> None:
    record(summary=parsed.summary)
    if parsed.problems and parsed.problems[0].startswith("cannot parse"):
        cannot_measure(f"{parsed.problems[0]}: {parsed.summary}")
    expect(parsed.summary, what, method=method).satisfies(
        lambda _: parsed.ok, "healthy", message="; ".join(parsed.problems) or None)


@requirement("PROD-ACC-CASSANDRA")
def test_cassandra(site, spec, target):
    """The ring this member sees (`nodetool status` + `describecluster` on the member itself) must hold
    every [cassandra] host Up/Normal with one schema version; a member without a running Cassandra
    is a measured fail naming it (wirecheck/probes/datastores_ring.py judges)."""
    record(not_measured="Cassandra version, keyspace replication factor and data-disk usage")
    timeout = float(spec.get("timeout_s", 30))
    res = target.run(ring.STATUS_COMMAND, timeout=timeout)
    record(command=ring.STATUS_COMMAND, rc=res.rc)
    down = ring.not_running_reason(res.rc, res.stdout, res.stderr)
    if down:
        record(nodetool_output=(res.stderr + res.stdout).strip())
        fail(f"Cassandra is not running on {target.name}: `nodetool status` there says \"{down}\". Start it "
             "(`systemctl start cassandra`) and see its system.log if it does not stay up.",
             observed="no Cassandra answering on the JMX port", expected="Cassandra running, every node UN",
             method=ring.STATUS_COMMAND)
    status = _run_whole(target, res, ring.STATUS_COMMAND, "nodetool")
    desc = target.run(ring.DESCRIBE_COMMAND, timeout=timeout)
    describe = _run_whole(target, desc, ring.DESCRIBE_COMMAND, "nodetool")
    members = {t.name: _cassandra_addresses(t) for t in site.targets_with_role("cassandra")}
    v = ring.judge_ring(target.name, status, describe, members, int(spec.get("min_nodes", 3)))
    record(summary=v.summary, members=members, **v.evidence)
    if v.problems and v.problems[0].startswith("cannot parse"):
        cannot_measure(f"`{ring.STATUS_COMMAND}` on {target.name} printed no node rows", output=status[:2000])
    expect(v.summary, "Cassandra ring", method=f"{ring.STATUS_COMMAND}; {ring.DESCRIBE_COMMAND}").satisfies(
        lambda _: v.ok, "every [cassandra] host in one ring, Up/Normal, one schema version",
        message=f"Cassandra ring seen by {target.name}: " + "; ".join(v.problems) + ". " + _ring_fix(v, spec))


def _ring_fix(v: ring.Verdict, spec) -> str:
    fixes = []
    if v.evidence.get("down") or v.evidence.get("unreachable"):
        fixes.append("start or repair the nodes named (`nodetool status` on each) until every one is UN")
    if v.evidence.get("missing_members"):
        fixes.append("join the hosts that are not in the ring (same cluster_name and seeds in their "
                     "cassandra.yaml), or set their `ip` in the inventory to the address Cassandra listens on")
    if not fixes:
        fixes.append(f"add Cassandra nodes until {int(spec.get('min_nodes', 3))} are Up/Normal")
    text = "; ".join(fixes)
    return text[0].upper() + text[1:] + "."


def _run_whole(target, res, command: str, tool: str) -> str:
    """stdout of a finished command, or error with the tool's own reason kept whole in the evidence."""
    if res.rc == 0:
        return res.stdout
    said = (res.stderr or res.stdout).strip()
    record(**{f"{command.split()[-1]}_output": said})
    if res.rc == 127 or "not found" in res.stderr.lower():
        cannot_measure(f"{tool} is not available on {target.name}: {said.splitlines()[-1] if said else res.rc}")
    last = said.splitlines()[-1] if said else "no output"
    cannot_measure(f"`{command}` failed on {target.name} (exit {res.rc}): {last}")


def _cassandra_addresses(t) -> list[str]:
    """Where a [cassandra] host may appear in the ring: its `ip` variable (the address it listens on
    inside the site, as wire-server-deploy's inventory sets it), ansible_host, and what that resolves to."""
    out = [str(a) for a in (t.vars.get("ip"), t.address) if a]
    if t.address and not any(ch == ":" for ch in t.address) and not t.address.replace(".", "").isdigit():
        import socket
        try:
            out += sorted({ai[4][0] for ai in socket.getaddrinfo(t.address, None, proto=socket.IPPROTO_TCP)})
        except OSError:
            pass
    return list(dict.fromkeys(out))


@requirement("PROD-ACC-ELASTICSEARCH")
def test_elasticsearch(site, spec, target):
    record(not_measured="Elasticsearch version and read-only index blocks")
    out = _run(target, kc.ES_COMMAND, float(spec.get("timeout_s", 15)), "curl")
    _judge(kc.parse_es_health(out, int(spec.get("min_nodes", 3))), "Elasticsearch cluster", kc.ES_COMMAND)


@requirement("PROD-ACC-MINIO")
def test_minio(site, spec, target):
    record(not_measured="bucket `assets` and cargohold's dedicated IAM user (needs mc credentials)")
    res = target.run(kc.MINIO_COMMAND, timeout=float(spec.get("timeout_s", 15)))
    record(command=kc.MINIO_COMMAND, rc=res.rc)
    if res.rc == 127:
        cannot_measure(f"curl is not available on {target.name}")
    if res.rc != 0 or res.stdout.strip() in ("", "000"):   # curl writes 000 when nothing answered
        cannot_measure(f"MinIO on {target.name}:9000 did not answer: {res.stderr.strip()[:200]}")
    if not re.fullmatch(r"\d{3}", res.stdout.strip()):     # -w '%{http_code}' prints three digits, nothing else
        cannot_measure(f"curl printed no HTTP status on {target.name}: {res.stdout.strip()[:80]!r}")
    _judge(kc.parse_minio_health(res.stdout), "MinIO cluster health", kc.MINIO_COMMAND)


@requirement("PROD-ACC-POSTGRESQL")
def test_postgresql(site, spec):
    """The [postgresql] set judged as one cluster: psql on every member (its own socket, as the postgres
    user); exactly one primary, each other member a standby streaming from it."""
    members = site.targets_with_role("postgresql")
    if not members:
        not_applicable("no target has role postgresql")
    record(not_measured="postgresql-external chart, wire-server DB/user and synced k8s secrets")
    port, timeout = int(spec.get("port", 5432)), float(spec.get("timeout_s", 15))
    measured = fan_out(members, lambda t: clusters.measure_pg_member(t, port, timeout))
    result = [clusters.member_or_unreached(t, measured[t.name]) for t in members]
    method = f"on each [postgresql] member over SSH: sudo -n -u postgres psql -p {port} (pg_is_in_recovery(), " \
             "pg_is_wal_replay_paused(), pg_stat_wal_receiver, pg_stat_replication); hostname -I"
    conclude(clusters.judge_pg_cluster(result, int(spec.get("standbys", 2)),
                                       float(spec.get("max_lag_bytes", 1024 * 1024)), method),
             "PostgreSQL cluster")

