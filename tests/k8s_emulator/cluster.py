"""Emulated cluster state for the Kubernetes API emulator.

A `EmulatedCluster` holds plain JSON-shaped objects exactly as a real API server returns them
(camelCase keys, `metadata`/`spec`/`status`), so the probes parse the same shapes they meet on a
real cluster. The builders below construct such objects; the shapes follow the Kubernetes API
reference and what kubespray/kubeadm/minikube/Helm 3 produce (labels, static-pod commands,
Helm release secrets). Nothing here talks to a real cluster: it is test data for
`FakeKubeApiServer`.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

# Ages in emulated objects are relative to the moment the test session started, so checks that
# compare with the real clock (log retention, pod age) see consistent data.
NOW = datetime.now(UTC).replace(microsecond=0)


def ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class EmulatedCluster:
    """Everything the emulator serves. Lists of API objects keyed by resource."""

    git_version: str = "v1.29.10"
    nodes: list[JSON] = field(default_factory=list)
    pods: list[JSON] = field(default_factory=list)
    services: list[JSON] = field(default_factory=list)
    secrets: list[JSON] = field(default_factory=list)
    daemonsets: list[JSON] = field(default_factory=list)
    statefulsets: list[JSON] = field(default_factory=list)
    deployments: list[JSON] = field(default_factory=list)
    # None: the cert-manager CRD is not installed (the API answers 404 for the resource).
    certificates: list[JSON] | None = None
    # (HTTP status, body) of GET /readyz/etcd
    etcd_readyz: tuple[int, str] = (200, "ok")
    # (namespace, pod, container) -> log text, each line prefixed by an RFC 3339 timestamp
    pod_logs: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def copy(self) -> EmulatedCluster:
        return copy.deepcopy(self)

    # resources that a recording directory may hold, as `kubectl get <resource> -A -o json` writes them
    RECORDED = ("nodes", "pods", "services", "secrets", "daemonsets", "statefulsets", "deployments", "certificates")

    @classmethod
    def from_recording(cls, directory: Path) -> EmulatedCluster:
        """Replay responses recorded from a cluster (or constructed in the same format).

        The directory holds `<resource>.json` files as written by
        `kubectl get <resource> -A -o json` (a List with `items`), `version.json` from
        `kubectl get --raw /version`, optionally `readyz-etcd.txt` (first line: HTTP status,
        rest: body) and `logs/<namespace>_<pod>_<container>.log` from `kubectl logs --timestamps`.
        A missing `certificates.json` means cert-manager is not installed.
        """
        c = cls(certificates=None)
        version = json.loads((directory / "version.json").read_text())
        c.git_version = (version.get("serverVersion") or version)["gitVersion"]
        for resource in cls.RECORDED:
            f = directory / f"{resource}.json"
            if f.exists():
                setattr(c, resource, list(json.loads(f.read_text()).get("items") or []))
        readyz = directory / "readyz-etcd.txt"
        if readyz.exists():
            status, _, body = readyz.read_text().partition("\n")
            c.etcd_readyz = (int(status.strip()), body)
        logs = directory / "logs"
        if logs.is_dir():
            for f in sorted(logs.glob("*.log")):
                ns, pod, container = f.stem.split("_", 2)
                c.pod_logs[(ns, pod, container)] = f.read_text()
        return c

    def node(self, name: str) -> JSON:
        for n in self.nodes:
            if n["metadata"]["name"] == name:
                return n
        raise KeyError(name)

    def pod(self, name: str) -> JSON:
        for p in self.pods:
            if p["metadata"]["name"] == name:
                return p
        raise KeyError(name)


# ---------------------------------------------------------------- nodes

PRESSURE_TYPES = ("MemoryPressure", "DiskPressure", "PIDPressure")
# condition type -> (reason when False, reason when True), as the kubelet reports them
_PRESSURE_REASONS = {
    "MemoryPressure": ("KubeletHasSufficientMemory", "KubeletHasInsufficientMemory"),
    "DiskPressure": ("KubeletHasNoDiskPressure", "KubeletHasDiskPressure"),
    "PIDPressure": ("KubeletHasSufficientPID", "KubeletHasInsufficientPID"),
}


def make_node(
    name: str,
    *,
    control_plane: bool = False,
    ready: bool = True,
    pressures: tuple[str, ...] = (),
    kubelet_version: str = "v1.29.10",
    cpu: str = "8",
    address: str = "172.16.0.10",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    taints: list[JSON] | None = None,
    unschedulable: bool = False,
) -> JSON:
    all_labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    if control_plane:
        all_labels["node-role.kubernetes.io/control-plane"] = ""
    all_labels.update(labels or {})
    heartbeat = ts(NOW - timedelta(seconds=20))
    conditions: list[JSON] = [
        {
            "type": t,
            "status": "True" if t in pressures else "False",
            "reason": _PRESSURE_REASONS[t][t in pressures],
            "message": f"kubelet has {'insufficient' if t in pressures else 'sufficient'} resources ({t})",
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": ts(NOW - timedelta(days=30)),
        }
        for t in PRESSURE_TYPES
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": "True" if ready else "Unknown",
            "reason": "KubeletReady" if ready else "NodeStatusUnknown",
            "message": "kubelet is posting ready status" if ready else "Kubelet stopped posting node status.",
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": ts(NOW - timedelta(days=30 if ready else 0, hours=0 if ready else 2)),
        }
    )
    spec: JSON = {"podCIDR": "10.233.64.0/24"}
    node_taints = list(taints or [])
    if control_plane and taints is None:
        node_taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
    if not ready:
        node_taints.append({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule",
                            "timeAdded": ts(NOW - timedelta(hours=2))})
    if node_taints:
        spec["taints"] = node_taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-node-{name}",
            "labels": all_labels,
            "annotations": dict(annotations or {}),
            "creationTimestamp": ts(NOW - timedelta(days=40)),
        },
        "spec": spec,
        "status": {
            "capacity": {"cpu": cpu, "memory": "16318856Ki", "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": "15716456Ki", "pods": "110"},
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
            "nodeInfo": {
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": kubelet_version,
                "osImage": "Ubuntu 22.04.4 LTS",
                "containerRuntimeVersion": "containerd://1.7.22",
                "architecture": "amd64",
                "operatingSystem": "linux",
            },
        },
    }


# ---------------------------------------------------------------- pods

def container_status(
    name: str,
    *,
    ready: bool = True,
    restarts: int = 0,
    waiting: str | None = None,
    terminated: tuple[str, int] | None = None,
    message: str = "",
) -> JSON:
    if waiting:
        state: JSON = {"waiting": {"reason": waiting, "message": message}}
    elif terminated:
        state = {"terminated": {"reason": terminated[0], "exitCode": terminated[1],
                                "finishedAt": ts(NOW - timedelta(minutes=5))}}
    else:
        state = {"running": {"startedAt": ts(NOW - timedelta(days=3))}}
    out: JSON = {"name": name, "ready": ready, "restartCount": restarts, "state": state,
                 "image": f"quay.io/wire/{name}:5.10.0", "started": ready}
    if restarts:
        out["lastState"] = {"terminated": {"reason": "Error", "exitCode": 1,
                                           "finishedAt": ts(NOW - timedelta(minutes=2))}}
    return out


def make_pod(
    name: str,
    namespace: str = "wire",
    *,
    node: str | None = "kubenode1",
    phase: str = "Running",
    containers: list[JSON] | None = None,
    labels: dict[str, str] | None = None,
    owner: tuple[str, str] | None = None,
    host_network: bool = False,
    host_ports: list[int] | None = None,
    command: list[str] | None = None,
    reason: str | None = None,
    message: str | None = None,
    conditions: list[JSON] | None = None,
    age: timedelta = timedelta(days=3),
    node_selector: dict[str, str] | None = None,
) -> JSON:
    statuses = containers if containers is not None else [container_status(name.split("-")[0])]
    spec_containers: list[JSON] = []
    for i, cs in enumerate(statuses):
        c: JSON = {"name": cs["name"], "image": cs.get("image", f"quay.io/wire/{cs['name']}")}
        if i == 0 and command:
            c["command"] = command
        if i == 0 and host_ports:
            c["ports"] = [{"containerPort": p, "hostPort": p, "protocol": "TCP"} for p in host_ports]
        spec_containers.append(c)
    spec: JSON = {"containers": spec_containers}
    if node:
        spec["nodeName"] = node
    if host_network:
        spec["hostNetwork"] = True
    if node_selector:
        spec["nodeSelector"] = node_selector
    meta: JSON = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-pod-{namespace}-{name}",
        "labels": dict(labels or {}),
        "creationTimestamp": ts(NOW - age),
    }
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1],
                                    "uid": f"uid-{owner[1]}", "controller": True}]
    status: JSON = {"phase": phase, "containerStatuses": statuses, "startTime": ts(NOW - age)}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if conditions is not None:
        status["conditions"] = conditions
    else:
        all_ready = phase == "Running" and all(c.get("ready") for c in statuses)
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True" if node else "False"},
            {"type": "Ready", "status": "True" if all_ready else "False"},
        ]
    return {"metadata": meta, "spec": spec, "status": status}


# ---------------------------------------------------------------- services, workloads

def make_service(
    name: str,
    namespace: str,
    *,
    type_: str = "ClusterIP",
    ports: list[JSON] | None = None,
    labels: dict[str, str] | None = None,
    lb_ingress: list[JSON] | None = None,
) -> JSON:
    status: JSON = {"loadBalancer": {"ingress": lb_ingress} if lb_ingress else {}}
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {}),
                     "uid": f"uid-svc-{namespace}-{name}"},
        "spec": {"type": type_, "ports": ports or [{"name": "http", "port": 8080, "protocol": "TCP",
                                                    "targetPort": 8080}],
                 "clusterIP": "10.233.10.10"},
        "status": status,
    }


def make_workload(
    kind: str,
    name: str,
    namespace: str,
    *,
    replicas: int = 1,
    ready: int | None = None,
    release: str | None = None,
    node_selector: dict[str, str] | None = None,
    host_network: bool = False,
) -> JSON:
    ready_n = replicas if ready is None else ready
    annotations = {}
    labels: dict[str, str] = {"app.kubernetes.io/name": name}
    if release:
        annotations = {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace}
        labels["app.kubernetes.io/managed-by"] = "Helm"
        labels["app.kubernetes.io/instance"] = release
    template_spec: JSON = {"containers": [{"name": name, "image": f"quay.io/wire/{name}"}]}
    if node_selector:
        template_spec["nodeSelector"] = node_selector
    if host_network:
        template_spec["hostNetwork"] = True
    obj: JSON = {
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations,
                     "uid": f"uid-{kind}-{namespace}-{name}"},
        "spec": {"template": {"metadata": {"labels": {"app.kubernetes.io/name": name}}, "spec": template_spec}},
    }
    if kind == "DaemonSet":
        obj["status"] = {"desiredNumberScheduled": replicas, "currentNumberScheduled": replicas,
                         "numberReady": ready_n, "numberAvailable": ready_n}
    else:
        obj["spec"]["replicas"] = replicas
        obj["status"] = {"replicas": replicas, "readyReplicas": ready_n, "availableReplicas": ready_n}
    return obj


# ---------------------------------------------------------------- helm releases

def helm_release_secret(
    name: str,
    namespace: str,
    *,
    revision: int = 1,
    status: str = "deployed",
    chart: str | None = None,
    chart_version: str = "5.10.0",
    app_version: str = "5.10.0",
    description: str | None = None,
) -> JSON:
    """A Secret exactly as Helm 3's secrets storage driver writes it.

    Helm serialises the release to JSON, gzips it and base64-encodes the result; the API server
    then base64-encodes the secret value once more in `data`.
    """
    release = {
        "name": name,
        "namespace": namespace,
        "version": revision,
        "info": {
            "first_deployed": ts(NOW - timedelta(days=10)),
            "last_deployed": ts(NOW - timedelta(days=1)),
            "deleted": "",
            "description": description or ("Install complete" if revision == 1 else "Upgrade complete"),
            "status": status,
        },
        "chart": {"metadata": {"name": chart or name, "version": chart_version, "appVersion": app_version,
                               "apiVersion": "v2"}},
        "config": {"example": "value"},
        "manifest": f"---\n# Source: {chart or name}/templates/x.yaml\n",
    }
    helm_payload = base64.b64encode(gzip.compress(json.dumps(release).encode()))
    return {
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{revision}",
            "namespace": namespace,
            "labels": {"name": name, "owner": "helm", "status": status, "version": str(revision),
                       "modifiedAt": "1732600000"},
            "uid": f"uid-helm-{namespace}-{name}-{revision}",
        },
        "type": "helm.sh/release.v1",
        "data": {"release": base64.b64encode(helm_payload).decode()},
    }


# ---------------------------------------------------------------- cert-manager

def make_certificate(name: str, namespace: str, *, ready: str = "True", reason: str = "Ready",
                     message: str = "Certificate is up to date and has not expired",
                     dns_names: list[str] | None = None) -> JSON:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-cert-{namespace}-{name}"},
        "spec": {"secretName": name, "dnsNames": dns_names or ["nginz-https.example.com"],
                 "issuerRef": {"kind": "Issuer", "name": "letsencrypt-http01"}},
        "status": {"conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": message}],
                   "notAfter": ts(NOW + timedelta(days=60))},
    }
