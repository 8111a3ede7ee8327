"""Datastore VMs after install (ansible/*.yml of wire-server-deploy; versions.md › Persistence;
the offline guide's datastore checks): Cassandra, Elasticsearch, MinIO and PostgreSQL.

Each check runs on the datastore host itself over SSH (hosts of [cassandra], [elasticsearch],
[minio], [postgresql] in the inventory) with the datastore's own health tool or API:
`nodetool status`, `GET :9200/_cluster/health`, `GET :9000/minio/health/cluster`, and on
PostgreSQL `pg_is_in_recovery()` + `pg_stat_replication`. Sites without such hosts get
not_applicable from the engine (no host in the role). A tool that is missing or an API that does
not answer is `error` (could not measure), never pass.
"""

from __future__ import annotations

import re

from wirecheck import cannot_measure, expect, record, requirement
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
    record(not_measured="Cassandra version, keyspace replication factor and data-disk usage")
    out = _run(target, kc.CASSANDRA_COMMAND, float(spec.get("timeout_s", 30)), "nodetool")
    _judge(kc.parse_nodetool_status(out, int(spec.get("min_nodes", 3))), "Cassandra ring", kc.CASSANDRA_COMMAND)


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
def test_postgresql(site, spec, target):
    record(not_measured="postgresql-external chart, wire-server DB/user and synced k8s secrets")
    command = "sudo -n -u postgres " + kc.POSTGRES_COMMAND
    out = _run(target, command, float(spec.get("timeout_s", 15)), "psql")
    _judge(kc.parse_pg_replication(out, int(spec.get("standbys", 2))), "PostgreSQL replication", command)
