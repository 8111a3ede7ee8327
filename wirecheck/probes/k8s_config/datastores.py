"""Datastore VMs over SSH: the commands run on the datastore host (nodetool, Elasticsearch and MinIO
health) and the pure parsers that judge their output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Parsed:
    """Small result holder for the datastore parsers."""

    ok: bool
    summary: str
    problems: list[str] = field(default_factory=list)


# ====================================================================== datastore VMs (over SSH)
# The commands run on the datastore host itself (targets in [cassandra], [elasticsearch], [minio],
# [postgresql]); the parsers below are pure and judge their output.

CASSANDRA_COMMAND = "nodetool status"
ES_COMMAND = "curl -sS -m 5 http://127.0.0.1:9200/_cluster/health"
MINIO_COMMAND = "curl -sS -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:9000/minio/health/cluster"
_NODETOOL_LINE = re.compile(r"^(?P<state>[UD][NLJM])\s+(?P<addr>\S+)\s")


def parse_nodetool_status(text: str, min_nodes: int = 3) -> Parsed:
    nodes = [(m["state"], m["addr"]) for m in map(_NODETOOL_LINE.match, text.splitlines()) if m]
    if not nodes:
        return Parsed(False, "no node lines in `nodetool status` output", ["cannot parse nodetool status"])
    up = [a for s, a in nodes if s == "UN"]
    other = [f"{a} {s}" for s, a in nodes if s != "UN"]
    problems = [f"node(s) not Up/Normal: {', '.join(other)}"] if other else []
    if len(up) < min_nodes:
        problems.append(f"{len(up)} node(s) Up/Normal, need >= {min_nodes}")
    return Parsed(not problems, f"{len(up)} of {len(nodes)} node(s) UN", problems)


def parse_es_health(text: str, min_nodes: int = 3) -> Parsed:
    import json

    try:
        doc = json.loads(text)
    except ValueError:
        return Parsed(False, f"not JSON: {text[:80]!r}", ["cannot parse _cluster/health"])
    status, count = doc.get("status"), int(doc.get("number_of_nodes") or 0)
    problems = []
    if status != "green":
        problems.append(f"cluster status {status}")
    if count < min_nodes:
        problems.append(f"{count} node(s), need >= {min_nodes}")
    return Parsed(not problems, f"status {status}, {count} node(s)", problems)


def parse_minio_health(code: str) -> Parsed:
    code = code.strip()
    if code == "200":
        return Parsed(True, "GET /minio/health/cluster 200 (write quorum)")
    return Parsed(False, f"GET /minio/health/cluster {code or 'no answer'}",
                  ["the MinIO cluster has no write quorum (HTTP 503)" if code == "503"
                   else f"unexpected answer {code!r}"])
