"""Kubernetes probes: read cluster facts through the API and judge them against Wire's requirements.

Plain Python, no pytest. Every API call goes through the official `kubernetes` client (loaded
from a kubeconfig, so tokens, client certificates and exec plugins work as with kubectl) and
carries a timeout.

Two layers:
- *fact* functions (`node_facts`, `etcd_facts`, `helm_releases`, ...) take a `KubeApi` and a
  timeout and return dataclasses with what the API shows;
- *judge* functions (`judge_workers`, `judge_etcd`, ...) are pure: facts + thresholds in,
  `Judgement` out (ok, observed, expected, method, message, evidence). The checks in suites/
  turn a Judgement into a verdict.

Objects are handled as the JSON the API returns (camelCase keys), not as the client's model
classes: that is faster on big clusters and the same shape as recorded responses.

One module per job: `api` (KubeApi, paging, timeouts, errors), `judgement` (Judgement and the
helpers judges share), `nodes` (nodes, API server version), `pods` (pods, nginz log retention),
`etcd`, `helm` (releases from their Secrets, expected releases per profile), `workloads`
(workloads, demo datastores, cert-manager Certificates), `sft` (SFT placement), `exposure`
(ingress NodePorts, NAT forwards, public exposure). This package re-exports their names, so
`from wirecheck.probes import k8s; k8s.node_facts(...)` keeps working; to patch a setting in a
test, patch the module that reads it (`k8s.api.PAGE_SIZE`).
"""

from __future__ import annotations

from .api import DEFAULT_TIMEOUT, JSON, KubeApi, KubeApiError
from .etcd import EtcdFacts, etcd_facts, judge_etcd
from .exposure import (
    NAT_RULE,
    PUBLIC_ALLOWED_NAMES,
    PUBLIC_ALLOWED_NAMESPACES,
    ExposureItem,
    IngressFacts,
    ServiceFacts,
    ServicePort,
    exposure_items,
    ingress_facts,
    judge_ingress_nodeport,
    judge_public_exposure,
    nat_forwards,
    service_facts,
    service_from_json,
)
from .helm import (
    DEMO_RELEASES_DEFAULT,
    HELM_SECRET_TYPE,
    PRODUCTION_RELEASES_DEFAULT,
    ExpectedRelease,
    HelmRelease,
    decode_helm_release,
    expected_releases,
    helm_releases,
    judge_helm_releases,
    release_from_secret,
    truthy,
)
from .judgement import Judgement, parse_cpu, parse_k8s_time
from .nodes import (
    CONTROL_PLANE_TAINTS,
    DEFAULT_VERSION_PINS,
    NODES_METHOD,
    PRESSURE_CONDITIONS,
    NodeFacts,
    VersionFacts,
    judge_inventory_group,
    judge_nodes_healthy,
    judge_version,
    judge_version_pin,
    judge_workers,
    node_facts,
    node_from_json,
    parse_version,
    version_facts,
)
from .pods import (
    ContainerFacts,
    LogFacts,
    PodFacts,
    judge_log_retention,
    judge_pods,
    nginz_log_facts,
    pod_facts,
    pod_from_json,
    pod_problem,
)
from .sft import SftFacts, judge_sft_placement, sft_facts
from .workloads import (
    DEMO_DATASTORE_RELEASES,
    CertificateFacts,
    WorkloadFacts,
    certificate_facts,
    judge_certificates,
    judge_datastores,
    workload_facts,
    workload_from_json,
)

__all__ = [
    "CONTROL_PLANE_TAINTS", "CertificateFacts", "ContainerFacts", "DEFAULT_TIMEOUT",
    "DEFAULT_VERSION_PINS", "DEMO_DATASTORE_RELEASES", "DEMO_RELEASES_DEFAULT", "EtcdFacts",
    "ExpectedRelease", "ExposureItem", "HELM_SECRET_TYPE", "HelmRelease", "IngressFacts", "JSON",
    "Judgement", "KubeApi", "KubeApiError", "LogFacts", "NAT_RULE", "NODES_METHOD", "NodeFacts",
    "PRESSURE_CONDITIONS", "PRODUCTION_RELEASES_DEFAULT", "PUBLIC_ALLOWED_NAMES",
    "PUBLIC_ALLOWED_NAMESPACES", "PodFacts", "ServiceFacts", "ServicePort", "SftFacts", "VersionFacts",
    "WorkloadFacts", "certificate_facts", "decode_helm_release", "etcd_facts", "expected_releases",
    "exposure_items", "helm_releases", "ingress_facts", "judge_certificates", "judge_datastores",
    "judge_etcd", "judge_helm_releases", "judge_ingress_nodeport", "judge_inventory_group",
    "judge_log_retention", "judge_nodes_healthy", "judge_pods", "judge_public_exposure",
    "judge_sft_placement", "judge_version", "judge_version_pin", "judge_workers", "nat_forwards",
    "nginz_log_facts", "node_facts", "node_from_json", "parse_cpu", "parse_k8s_time", "parse_version",
    "pod_facts", "pod_from_json", "pod_problem", "release_from_secret", "service_facts",
    "service_from_json", "sft_facts", "truthy", "version_facts", "workload_facts", "workload_from_json",
]
