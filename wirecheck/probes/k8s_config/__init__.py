"""Configuration probes: Wire's Helm chart values (from the cluster or from values files) judged
against the installation docs, plus a few cluster facts the calling/federation checks need.

Plain Python, no pytest. Two sources give the same shape, `{release name: values dict}`:
- `release_values(api)`: the user-supplied values of every deployed Helm release, decoded from
  Helm's release Secrets (what `helm get values <release> -o json` prints; chart defaults are not
  in there, so "unset" means "the chart default");
- `values_dir(path)`: a wire-server-deploy `values/` directory before install
  (`values/<chart>/values.yaml` deep-merged with `values/<chart>/secrets.yaml`).

The judges are pure (values + site facts in, `k8s.Judgement` out) and are shared by the preflight
(files) and acceptance (cluster) checks.

One module per job: `values` (the two sources and the helpers that read values), `federation`,
`production` (SMTP, secrets, ephemeral scope), `calling` (SFT, TURN, coturn, demo calling values),
`internal_dns`, `reachability` (the API not public) and `datastores` (datastore VMs over SSH).
This package re-exports their names (`from wirecheck.probes import k8s_config as kc; kc.judge_smtp`).
"""

from __future__ import annotations

from ..k8s import decode_helm_release
from .calling import (
    TURN_URI,
    judge_coturn_placement,
    judge_demo_calling_values,
    judge_sft_config,
    judge_turn_uris,
    sft_used,
)
from .datastores import (
    CASSANDRA_COMMAND,
    ES_COMMAND,
    MINIO_COMMAND,
    Parsed,
    parse_es_health,
    parse_minio_health,
    parse_nodetool_status,
)
from .federation import (
    FED_DOMAIN_PATHS,
    FED_ENABLE_PATHS,
    federation_in_values,
    judge_federation_ca_trust,
    judge_federation_domain,
    judge_rabbitmq,
    pem_fingerprints,
)
from .internal_dns import EXTERNAL_SERVICES, InternalDnsFacts, internal_dns_facts, judge_internal_dns
from .production import AWS_REGION, judge_ephemeral_scope, judge_secrets, judge_smtp, node_pod_cidrs
from .reachability import Reach, api_endpoints, is_public, judge_api_not_public, tcp_reach
from .values import (
    FILES_METHOD,
    HELM_VALUES_METHOD,
    PLACEHOLDERS,
    ValuesSource,
    deep_merge,
    dig,
    is_placeholder,
    release_values,
    truthy,
    values_dir,
)

__all__ = [
    "decode_helm_release",  # read from Helm Secrets by the same code as k8s.helm_releases
    "AWS_REGION", "CASSANDRA_COMMAND", "ES_COMMAND", "EXTERNAL_SERVICES", "FED_DOMAIN_PATHS",
    "FED_ENABLE_PATHS", "FILES_METHOD", "HELM_VALUES_METHOD", "InternalDnsFacts", "MINIO_COMMAND",
    "PLACEHOLDERS", "Parsed", "Reach", "TURN_URI", "ValuesSource", "api_endpoints", "deep_merge", "dig",
    "federation_in_values", "internal_dns_facts", "is_placeholder", "is_public", "judge_api_not_public",
    "judge_coturn_placement", "judge_demo_calling_values", "judge_ephemeral_scope",
    "judge_federation_ca_trust", "judge_federation_domain", "judge_internal_dns", "judge_rabbitmq",
    "judge_secrets", "judge_sft_config", "judge_smtp", "judge_turn_uris", "node_pod_cidrs",
    "parse_es_health", "parse_minio_health", "parse_nodetool_status", "pem_fingerprints",
    "release_values", "sft_used", "tcp_reach", "truthy", "values_dir",
]
