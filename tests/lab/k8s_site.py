"""Cluster states built on the lab's real API server (tests/lab/k8s.py), as a site's cluster has them.

Everything goes through the API with the official `kubernetes` client as the cluster admin:
objects are created, then their status subresource is patched with what a kubelet or controller
would report (no kubelet, scheduler or controller-manager runs, so nothing changes them
afterwards). Helm releases are made by the real `helm` binary installing the small local chart
tests/data/charts/wire-stub under the release names of Wire's charts, so each release Secret is
Helm's own.

`production_site()` lays out a kubespray cluster as Wire's offline guide builds it; the `break_*`
functions each turn one fact bad, the way a broken site shows it.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.lab.k8s import REPO, ControlPlane, KubeletLogs

JSON = dict[str, Any]

CHART = REPO / "tests/data/charts/wire-stub"
CERT_CRD = REPO / "tests/data/k8s/cert-manager-certificate-crd.yaml"
READONLY_ROLE = REPO / "deploy/wirecheck-readonly-clusterrole.yaml"

# Wire's charts in a production install (helm-prod.md) and where they live
PROD_RELEASES = [("databases-ephemeral", "default"), ("reaper", "default"), ("wire-server", "default"),
                 ("ingress-nginx-controller", "default"), ("nginx-ingress-services", "default"),
                 ("webapp", "default"), ("account-pages", "default"), ("sftd", "default"),
                 ("cert-manager", "cert-manager-ns")]
WIRE_SERVICES = ["brig", "galley", "cannon", "cargohold", "gundeck", "spar", "background-worker", "webapp"]
NODES = ["kubenode1", "kubenode2", "kubenode3"]
INGRESS_LABELS = {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller",
                  "app.kubernetes.io/instance": "ingress-nginx-controller"}
SFT_LABELS = {"app.kubernetes.io/name": "sftd", "app.kubernetes.io/instance": "sftd"}


def ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_address(i: int) -> str:
    """Node InternalIPs are loopback addresses: anything the API server might dial stays on the machine."""
    return f"127.0.1.{11 + i}"


class Site:
    """The admin's hands on the lab API server."""

    def __init__(self, cp: ControlPlane) -> None:
        from kubernetes import client

        self.cp = cp
        self.api = cp.admin_client()
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.ext = client.ApiextensionsV1Api(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.uids: dict[tuple[str, str], str] = {}  # (kind, name) -> uid

    def close(self) -> None:
        self.api.close()

    # ------------------------------------------------------------------ building blocks
    def namespace(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.create_namespace({"metadata": {"name": name}})
        except ApiException as exc:
            if exc.status != 409:
                raise
        # what kube-controller-manager's service-account controller would create
        try:
            self.core.create_namespaced_service_account(name, {"metadata": {"name": "default"}})
        except ApiException as exc:
            if exc.status != 409:
                raise

    def node(self, name: str, *, kubelet_version: str, address: str, cpu: str = "8",
             labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
             taints: list[JSON] | None = None, kubelet_port: int = 10250) -> None:
        all_labels = {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name,
                      "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", **(labels or {})}
        spec: JSON = {"podCIDR": "10.233.64.0/24"}
        if taints:
            spec["taints"] = taints
        obj = self.core.create_node({"metadata": {"name": name, "labels": all_labels,
                                                  "annotations": dict(annotations or {})}, "spec": spec})
        self.uids[("Node", name)] = obj.metadata.uid
        heartbeat = ts(self.now - timedelta(seconds=20))
        since = ts(self.now - timedelta(days=30))
        conditions = [
            {"type": t, "status": "False", "reason": reason, "message": f"kubelet has {what}",
             "lastHeartbeatTime": heartbeat, "lastTransitionTime": since}
            for t, reason, what in (("MemoryPressure", "KubeletHasSufficientMemory", "sufficient memory available"),
                                    ("DiskPressure", "KubeletHasNoDiskPressure", "no disk pressure"),
                                    ("PIDPressure", "KubeletHasSufficientPID", "sufficient PID available"))]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "kubelet is posting ready status", "lastHeartbeatTime": heartbeat,
                           "lastTransitionTime": since})
        self.core.patch_node_status(name, {"status": {
            "capacity": {"cpu": cpu, "memory": "16318856Ki", "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": "15716456Ki", "pods": "110"},
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {"kubeletVersion": kubelet_version, "kubeProxyVersion": kubelet_version,
                         "osImage": "Ubuntu 22.04.4 LTS", "containerRuntimeVersion": "containerd://1.7.22",
                         "kernelVersion": "5.15.0-119-generic", "architecture": "amd64", "operatingSystem": "linux",
                         "machineID": uuid.uuid4().hex, "systemUUID": str(uuid.uuid4()), "bootID": str(uuid.uuid4())},
        }})

    def patch_node_condition(self, name: str, ctype: str, status: str, reason: str, message: str) -> None:
        node = self.core.read_node_status(name)
        conds = []
        for c in node.status.conditions:
            d = self.api.sanitize_for_serialization(c)
            if d["type"] == ctype:
                d.update(status=status, reason=reason, message=message, lastTransitionTime=ts(datetime.now(UTC)))
            conds.append(d)
        self.core.patch_node_status(name, {"status": {"conditions": conds}})

    @staticmethod
    def running(name: str, *, ready: bool = True, restarts: int = 0, waiting: tuple[str, str] | None = None,
                terminated: tuple[str, int] | None = None, started: datetime | None = None) -> JSON:
        """A containerStatus as the kubelet reports it."""
        started = started or datetime.now(UTC) - timedelta(days=3)
        if waiting:
            state: JSON = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
        elif terminated:
            state = {"terminated": {"reason": terminated[0], "exitCode": terminated[1],
                                    "startedAt": ts(started), "finishedAt": ts(started + timedelta(minutes=1))}}
        else:
            state = {"running": {"startedAt": ts(started)}}
        out: JSON = {"name": name, "ready": ready, "restartCount": restarts, "state": state, "started": ready,
                     "image": f"quay.io/wire/{name}:5.10.0",
                     "imageID": f"quay.io/wire/{name}@sha256:{uuid.uuid4().hex}{uuid.uuid4().hex}",
                     "containerID": f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}"}
        if restarts:
            out["lastState"] = {"terminated": {"reason": "Error", "exitCode": 1, "startedAt": ts(started),
                                               "finishedAt": ts(datetime.now(UTC) - timedelta(minutes=2))}}
        return out

    def pod(self, name: str, ns: str, *, node: str, labels: dict[str, str] | None = None,
            owner: tuple[str, str] | None = None, containers: list[str] | None = None,
            statuses: list[JSON] | None = None, phase: str = "Running", host_network: bool = False,
            command: list[str] | None = None, node_selector: dict[str, str] | None = None,
            mirror: bool = False, started: datetime | None = None) -> None:
        names = containers or [name.split("-")[0]]
        spec_containers: list[JSON] = []
        for i, c in enumerate(names):
            sc: JSON = {"name": c, "image": f"quay.io/wire/{c}:5.10.0"}
            if i == 0 and command:
                sc["command"] = command
            spec_containers.append(sc)
        spec: JSON = {"containers": spec_containers, "nodeName": node}
        if host_network:
            spec["hostNetwork"] = True
        if node_selector:
            spec["nodeSelector"] = node_selector
        meta: JSON = {"name": name, "labels": dict(labels or {})}
        if mirror:  # a static pod's mirror, as the kubelet posts it
            meta["annotations"] = {"kubernetes.io/config.mirror": uuid.uuid4().hex,
                                   "kubernetes.io/config.source": "file"}
            spec["priorityClassName"] = "system-node-critical"
        if owner:
            kind, oname = owner
            api_version = "v1" if kind == "Node" else "batch/v1" if kind == "Job" else "apps/v1"
            uid = self.uids.get((kind, oname)) or str(uuid.uuid4())
            meta["ownerReferences"] = [{"apiVersion": api_version, "kind": kind, "name": oname, "uid": uid,
                                        "controller": True}]
        self.core.create_namespaced_pod(ns, {"metadata": meta, "spec": spec})
        started = started or datetime.now(UTC) - timedelta(days=3)
        statuses = statuses if statuses is not None else [self.running(c, started=started) for c in names]
        ready = phase == "Running" and all(s["ready"] for s in statuses)
        node_ip = node_address(NODES.index(node)) if node in NODES else "127.0.1.250"
        self.core.patch_namespaced_pod_status(name, ns, {"status": {
            "phase": phase, "startTime": ts(started), "hostIP": node_ip, "hostIPs": [{"ip": node_ip}],
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Initialized", "status": "True"},
                           {"type": "ContainersReady", "status": "True" if ready else "False"},
                           {"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": statuses}})

    def set_container_status(self, name: str, ns: str, status: JSON) -> None:
        pod = self.core.read_namespaced_pod_status(name, ns)
        conds = [self.api.sanitize_for_serialization(c) for c in pod.status.conditions]
        for c in conds:
            if c["type"] in ("Ready", "ContainersReady"):
                c.update(status="True" if status["ready"] else "False",
                         reason="" if status["ready"] else "ContainersNotReady")
        self.core.patch_namespaced_pod_status(name, ns, {"status": {"containerStatuses": [status],
                                                                    "conditions": conds}})

    def workload(self, kind: str, name: str, ns: str, *, replicas: int = 1, ready: int | None = None,
                 release: str | None = None, labels: dict[str, str] | None = None,
                 node_selector: dict[str, str] | None = None, host_network: bool = False) -> None:
        sel = {"app.kubernetes.io/name": name}
        meta_labels = {**sel, **(labels or {})}
        annotations = {}
        if release:
            meta_labels.update({"app.kubernetes.io/instance": release, "app.kubernetes.io/managed-by": "Helm"})
            annotations = {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": ns}
        pod_spec: JSON = {"containers": [{"name": name.split("-")[0], "image": f"quay.io/wire/{name}:5.10.0"}]}
        if node_selector:
            pod_spec["nodeSelector"] = node_selector
        if host_network:
            pod_spec["hostNetwork"] = True
        body: JSON = {"metadata": {"name": name, "labels": meta_labels, "annotations": annotations},
                      "spec": {"selector": {"matchLabels": sel},
                               "template": {"metadata": {"labels": sel}, "spec": pod_spec}}}
        n = replicas if ready is None else ready
        if kind == "Deployment":
            body["spec"]["replicas"] = replicas
            obj = self.apps.create_namespaced_deployment(ns, body)
            self.apps.patch_namespaced_deployment_status(name, ns, {"status": {
                "replicas": replicas, "readyReplicas": n, "availableReplicas": n, "updatedReplicas": replicas,
                "observedGeneration": 1}})
        elif kind == "DaemonSet":
            obj = self.apps.create_namespaced_daemon_set(ns, body)
            self.apps.patch_namespaced_daemon_set_status(name, ns, {"status": {
                "desiredNumberScheduled": replicas, "currentNumberScheduled": replicas, "updatedNumberScheduled":
                replicas, "numberReady": n, "numberAvailable": n, "numberMisscheduled": 0, "observedGeneration": 1}})
        else:
            body["spec"].update(replicas=replicas, serviceName=name)
            obj = self.apps.create_namespaced_stateful_set(ns, body)
            self.apps.patch_namespaced_stateful_set_status(name, ns, {"status": {
                "replicas": replicas, "readyReplicas": n, "currentReplicas": replicas, "updatedReplicas": replicas,
                "availableReplicas": n, "observedGeneration": 1}})
        self.uids[(kind, name)] = obj.metadata.uid

    def service(self, name: str, ns: str, *, type_: str = "ClusterIP", ports: list[JSON] | None = None,
                labels: dict[str, str] | None = None) -> None:
        self.core.create_namespaced_service(ns, {
            "metadata": {"name": name, "labels": dict(labels or {})},
            "spec": {"type": type_, "selector": {"app": name},
                     "ports": ports or [{"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}]}})

    def install_certificate_crd(self, timeout: float = 30) -> None:
        self.ext.create_custom_resource_definition(yaml.safe_load(CERT_CRD.read_text()))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            crd = self.ext.read_custom_resource_definition_status("certificates.cert-manager.io")
            if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
                return
            time.sleep(0.1)
        raise TimeoutError("the Certificate CRD was not established")

    def certificate(self, name: str, ns: str, dns_names: list[str]) -> None:
        self.custom.create_namespaced_custom_object("cert-manager.io", "v1", ns, "certificates", {
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": name},
            "spec": {"secretName": name, "dnsNames": dns_names,
                     "issuerRef": {"kind": "Issuer", "name": "letsencrypt-http01"}}})
        self.certificate_ready(name, ns, "True", "Ready", "Certificate is up to date and has not expired")

    def certificate_ready(self, name: str, ns: str, status: str, reason: str, message: str) -> None:
        self.custom.patch_namespaced_custom_object_status("cert-manager.io", "v1", ns, "certificates", name, {
            "status": {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message,
                                       "lastTransitionTime": ts(datetime.now(UTC)), "observedGeneration": 1}],
                       "notAfter": ts(self.now + timedelta(days=60)),
                       "renewalTime": ts(self.now + timedelta(days=30))}})

    def event(self, ns: str, involved: JSON, reason: str, message: str, *, type_: str = "Warning",
              source: str = "kubelet", host: str = "", count: int = 1) -> None:
        t = ts(datetime.now(UTC))
        self.core.create_namespaced_event(ns, {
            "metadata": {"name": f"{involved['name']}.{uuid.uuid4().hex[:16]}", "namespace": ns},
            "involvedObject": involved, "reason": reason, "message": message, "type": type_, "count": count,
            "firstTimestamp": t, "lastTimestamp": t, "source": {"component": source, "host": host}})

    def helm_install(self, release: str, ns: str, *values: str) -> None:
        args = [a for v in values for a in ("--set", v)]
        self.cp.helm("install", release, str(CHART), "--namespace", ns, *args)

    # ------------------------------------------------------------------ who reads
    def readonly_token(self, sa: str = "wirecheck", ns: str = "kube-system", role_file: Path = READONLY_ROLE) -> str:
        """The deploy/ ClusterRole bound to a service account; a token for it from the TokenRequest API.

        The default bindings that give every authenticated user discovery, /version and /readyz
        (system:basic-user, system:discovery, system:public-info-viewer) are removed first, so
        that the token has that role and nothing else."""
        for binding in ("system:basic-user", "system:discovery", "system:public-info-viewer"):
            self.rbac.delete_cluster_role_binding(binding)
        role = yaml.safe_load(role_file.read_text())
        self.rbac.create_cluster_role(role)
        self.core.create_namespaced_service_account(ns, {"metadata": {"name": sa}})
        self.rbac.create_cluster_role_binding({
            "metadata": {"name": role["metadata"]["name"]},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role["metadata"]["name"]},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]})
        tr = self.core.create_namespaced_service_account_token(sa, ns, {"spec": {"expirationSeconds": 3600}})
        return str(tr.status.token)


# ====================================================================== the production site


def nginz_log(age: timedelta, lines: int = 5) -> str:
    """nginz access log lines as `kubectl logs --timestamps` shows them, the first `age` old."""
    first = datetime.now(UTC) - age
    out = []
    for i in range(lines):
        t = first + timedelta(minutes=i)
        out.append(f"{t.strftime('%Y-%m-%dT%H:%M:%S.%f')}000Z 10.233.64.1 - - "
                   f"[{t.strftime('%d/%b/%Y:%H:%M:%S +0000')}] \"GET /status HTTP/1.1\" 200 0")
    return "\n".join(out) + "\n"


NGINZ_POD = "nginz-5c8d7f6b4-xk2lm"


def production_site(s: Site, version: str, kubelet: KubeletLogs | None = None) -> None:
    """A kubespray cluster as Wire's offline guide builds it: kubenode1..3 are control plane, etcd and
    workers at once (kubespray leaves them untainted then); etcd runs on the hosts, so the API shows
    it through the kube-apiserver pods' --etcd-servers and /readyz/etcd; ingress-nginx as a DaemonSet
    behind NodePorts 31772/31773; SFT as a hostNetwork StatefulSet on nodes labelled wire.com/role=sftd.
    With `kubelet` (serving kubenode1's logs), nginz runs there, 10 days old, its first log line 70 h old."""
    for ns in ("default", "kube-system", "cert-manager-ns"):
        s.namespace(ns)
    for i, name in enumerate(NODES):
        labels = {"node-role.kubernetes.io/control-plane": ""}
        annotations = {}
        if i < 2:
            labels["wire.com/role"] = "sftd"
            annotations["wire.com/external-ip"] = f"203.0.113.{11 + i}"
        port = kubelet.port if kubelet and kubelet.address == node_address(i) else 10250
        s.node(name, kubelet_version=version, address=node_address(i), labels=labels, annotations=annotations,
               kubelet_port=port)
    etcd_servers = ",".join(f"https://{node_address(i)}:2379" for i in range(3))
    kube_system_apiserver_pods(s, etcd_servers)
    for i, name in enumerate(NODES):
        s.pod(f"kube-proxy-{i}x7k", "kube-system", node=name, host_network=True, labels={"k8s-app": "kube-proxy"},
              owner=("DaemonSet", "kube-proxy"))
        s.pod(f"calico-node-{i}q2w", "kube-system", node=name, host_network=True, labels={"k8s-app": "calico-node"},
              owner=("DaemonSet", "calico-node"), containers=["calico-node"])
    s.pod("coredns-77f7cc69db-abcde", "kube-system", node=NODES[0], labels={"k8s-app": "kube-dns"},
          owner=("ReplicaSet", "coredns-77f7cc69db"))

    for i, svc in enumerate(WIRE_SERVICES):
        s.pod(f"{svc}-6d9f8b7c5-{i:02d}abc", "default", node=NODES[i % 3], labels={"app": svc},
              owner=("ReplicaSet", f"{svc}-6d9f8b7c5"), containers=[svc])
    if kubelet:
        s.pod(NGINZ_POD, "default", node=NODES[0], labels={"app": "nginz"}, owner=("ReplicaSet", "nginz-5c8d7f6b4"),
              containers=["nginz", "nginz-disco"], started=datetime.now(UTC) - timedelta(days=10))
        kubelet.logs[("default", NGINZ_POD, "nginz")] = nginz_log(timedelta(hours=70))
    s.pod("cassandra-migrations-8xk2p", "default", node=NODES[1], phase="Succeeded",
          labels={"app": "cassandra-migrations"}, owner=("Job", "cassandra-migrations"),
          statuses=[s.running("cassandra-migrations", ready=False, terminated=("Completed", 0))])
    s.workload("StatefulSet", "redis-ephemeral-master", "default", release="databases-ephemeral")
    s.pod("redis-ephemeral-master-0", "default", node=NODES[1],
          labels={"app.kubernetes.io/instance": "databases-ephemeral"},
          owner=("StatefulSet", "redis-ephemeral-master"), containers=["redis"])

    s.workload("DaemonSet", "ingress-nginx-controller-controller", "default", replicas=3,
               release="ingress-nginx-controller", labels=INGRESS_LABELS)
    for i, name in enumerate(NODES):
        s.pod(f"ingress-nginx-controller-controller-{i}zz9", "default", node=name, labels=INGRESS_LABELS,
              owner=("DaemonSet", "ingress-nginx-controller-controller"), containers=["controller"])
    s.service("ingress-nginx-controller-controller", "default", type_="NodePort", labels=INGRESS_LABELS, ports=[
        {"name": "http", "port": 80, "nodePort": 31772, "protocol": "TCP", "targetPort": "http"},
        {"name": "https", "port": 443, "nodePort": 31773, "protocol": "TCP", "targetPort": "https"}])
    s.service("ingress-nginx-controller-controller-admission", "default", labels=INGRESS_LABELS,
              ports=[{"name": "https-webhook", "port": 443, "protocol": "TCP", "targetPort": "webhook"}])
    for svc in ("brig", "galley", "nginz", "webapp"):
        s.service(svc, "default", labels={"app": svc})

    s.workload("StatefulSet", "sftd", "default", replicas=2, release="sftd", labels=SFT_LABELS,
               node_selector={"wire.com/role": "sftd"}, host_network=True)
    for i in range(2):
        s.pod(f"sftd-{i}", "default", node=NODES[i], host_network=True, labels=SFT_LABELS, owner=("StatefulSet", "sftd"),
              node_selector={"wire.com/role": "sftd"}, containers=["sftd"])

    s.install_certificate_crd()
    s.certificate("nginx-ingress-services-cert", "default", ["nginz-https.example.com", "webapp.example.com"])
    s.certificate("sftd", "default", ["sftd.example.com"])

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda r: s.helm_install(*r), PROD_RELEASES))
    # a second revision: the checks must judge the newest one, with revision 1 left as superseded
    s.cp.helm("upgrade", "wire-server", str(CHART), "--namespace", "default", "--set", "message=upgraded")


def kube_system_apiserver_pods(s: Site, etcd_servers: str) -> None:
    """The kube-apiserver static pods' mirrors, with kubespray's command line."""
    for name in NODES:
        s.pod(f"kube-apiserver-{name}", "kube-system", node=name, host_network=True, mirror=True,
              labels={"component": "kube-apiserver", "tier": "control-plane"}, owner=("Node", name),
              containers=["kube-apiserver"],
              command=["kube-apiserver", f"--advertise-address={node_address(NODES.index(name))}",
                       "--allow-privileged=true", "--authorization-mode=Node,RBAC",
                       f"--etcd-servers={etcd_servers}", "--etcd-cafile=/etc/ssl/etcd/ssl/ca.pem",
                       "--secure-port=6443"])


# ====================================================================== breaking it, one fact each


DEMO_NODE = "k8s-wire"
# wire-server-deploy's demo charts_to_deploy, all in `default`
DEMO_CHARTS = ["fake-aws", "smtp", "rabbitmq", "databases-ephemeral", "postgresql", "reaper", "wire-server", "webapp",
               "account-pages", "team-settings", "ingress-nginx-controller", "coturn", "sftd"]
DEMO_DATASTORES = [("StatefulSet", "cassandra-ephemeral", "databases-ephemeral"),
                   ("StatefulSet", "elasticsearch-ephemeral", "databases-ephemeral"),
                   ("StatefulSet", "redis-ephemeral", "databases-ephemeral"),
                   ("StatefulSet", "postgresql", "postgresql"), ("StatefulSet", "rabbitmq", "rabbitmq"),
                   ("Deployment", "fake-aws-sqs", "fake-aws"), ("Deployment", "fake-aws-s3", "fake-aws")]


def demo_site(s: Site, version: str) -> None:
    """Wire-in-a-Box: one minikube node that is control plane and worker, etcd as a kubeadm static pod,
    the datastores as Helm-managed StatefulSets and Deployments, every chart in `default`."""
    for ns in ("default", "kube-system"):
        s.namespace(ns)
    s.node(DEMO_NODE, kubelet_version=version, address=node_address(0), cpu="15",
           labels={"node-role.kubernetes.io/control-plane": "", "minikube.k8s.io/primary": "true"})
    for comp, cmd in (("etcd", ["etcd", "--advertise-client-urls=https://127.0.1.11:2379"]),
                      ("kube-apiserver", ["kube-apiserver", "--etcd-servers=https://127.0.0.1:2379"])):
        s.pod(f"{comp}-{DEMO_NODE}", "kube-system", node=DEMO_NODE, host_network=True, mirror=True,
              labels={"component": comp, "tier": "control-plane"}, owner=("Node", DEMO_NODE), containers=[comp],
              command=cmd)
    for kind, name, release in DEMO_DATASTORES:
        s.workload(kind, name, "default", release=release)
        pod = f"{name}-0" if kind == "StatefulSet" else f"{name}-7f9c4d8b6-abcde"
        owner = (kind, name) if kind == "StatefulSet" else ("ReplicaSet", f"{name}-7f9c4d8b6")
        s.pod(pod, "default", node=DEMO_NODE, labels={"app.kubernetes.io/instance": release}, owner=owner,
              containers=[name.split("-")[0]])
    for svc in WIRE_SERVICES:
        s.pod(f"{svc}-6d9f8b7c5-abcde", "default", node=DEMO_NODE, labels={"app": svc},
              owner=("ReplicaSet", f"{svc}-6d9f8b7c5"), containers=[svc])
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda chart: s.helm_install(chart, "default"), DEMO_CHARTS))


def break_demo_datastore(s: Site) -> None:
    """rabbitmq's only replica is not ready."""
    s.apps.patch_namespaced_stateful_set_status("rabbitmq", "default", {"status": {"readyReplicas": 0,
                                                                                   "availableReplicas": 0}})


def break_workers(s: Site) -> None:
    """kubenode3 cordoned (`kubectl cordon`): two schedulable workers left."""
    s.core.patch_node("kubenode3", {"spec": {"unschedulable": True}})


def break_node_ready(s: Site) -> None:
    """kubenode2's kubelet reports NotReady, as it does when the CNI is gone."""
    msg = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady"
    s.patch_node_condition("kubenode2", "Ready", "False", "KubeletNotReady", msg)
    s.event("default", {"kind": "Node", "name": "kubenode2", "uid": s.uids[("Node", "kubenode2")]},
            "NodeNotReady", "Node kubenode2 status is now: NodeNotReady", type_="Normal", source="node-controller")


def break_etcd_members(s: Site) -> None:
    """The control-plane pods list two etcd members (an even number, below three)."""
    for name in NODES:
        s.core.delete_namespaced_pod(f"kube-apiserver-{name}", "kube-system", grace_period_seconds=0)
    deadline = time.monotonic() + 30
    while s.core.list_namespaced_pod("kube-system", label_selector="component=kube-apiserver").items:
        if time.monotonic() > deadline:
            raise TimeoutError("kube-apiserver mirror pods not deleted")
        time.sleep(0.1)
    kube_system_apiserver_pods(s, ",".join(f"https://{node_address(i)}:2379" for i in range(2)))


def break_kubelet_version(s: Site, old: str) -> None:
    """kubenode3 still runs an older kubelet after an upgrade."""
    s.core.patch_node_status("kubenode3", {"status": {"nodeInfo": {"kubeletVersion": old, "kubeProxyVersion": old}}})


def break_helm(s: Site) -> str:
    """A real failed `helm upgrade` of wire-server (its new Service asks for a NodePort that the ingress
    controller holds, and the API server refuses it) and a `helm uninstall` of webapp. Returns the
    failed upgrade's error output."""
    failed = s.cp.helm("upgrade", "wire-server", str(CHART), "--namespace", "default", "--set", "nodePort=31773",
                       check=False)
    if failed.returncode == 0:
        raise AssertionError("the helm upgrade that takes a held NodePort did not fail")
    s.cp.helm("uninstall", "webapp", "--namespace", "default")
    return failed.stderr


def break_pod(s: Site) -> None:
    """brig crash-loops, as the kubelet reports it, with the kubelet's BackOff event."""
    name = "brig-6d9f8b7c5-00abc"
    s.set_container_status(name, "default", s.running(
        "brig", ready=False, restarts=14,
        waiting=("CrashLoopBackOff", f"back-off 5m0s restarting failed container=brig pod={name}_default")))
    s.event("default", {"kind": "Pod", "name": name, "namespace": "default", "fieldPath": "spec.containers{brig}"},
            "BackOff", "Back-off restarting failed container brig in pod " + name, host=NODES[0], count=14)


def break_certificate(s: Site) -> None:
    s.certificate_ready("nginx-ingress-services-cert", "default", "False", "Failed",
                        "ACME challenge failed: connection refused")


def break_sft(s: Site) -> None:
    """sftd scaled to 3 replicas with only two nodes labelled for it; the third pod landed beside sftd-0."""
    s.apps.patch_namespaced_stateful_set_scale("sftd", "default", {"spec": {"replicas": 3}})
    s.pod("sftd-2", "default", node=NODES[0], host_network=True, labels=SFT_LABELS, owner=("StatefulSet", "sftd"),
          node_selector={"wire.com/role": "sftd"}, containers=["sftd"])


def break_ingress(s: Site) -> None:
    """The controller's https NodePort moved off 31773 (the API server re-allocates the port)."""
    svc = s.core.read_namespaced_service("ingress-nginx-controller-controller", "default")
    ports = [s.api.sanitize_for_serialization(p) for p in svc.spec.ports]
    for p in ports:
        if p["name"] == "https":
            p["nodePort"] = 30443
    s.core.patch_namespaced_service("ingress-nginx-controller-controller", "default", {"spec": {"ports": ports}})


def break_log_retention(kubelet: KubeletLogs) -> None:
    """nginz keeps log lines 100 h old (log rotation not set up)."""
    kubelet.logs[("default", NGINZ_POD, "nginz")] = nginz_log(timedelta(hours=100))


def break_exposure(s: Site) -> None:
    """MinIO published on a NodePort."""
    s.service("minio-external", "default", type_="NodePort", labels={"app": "minio-external"},
              ports=[{"name": "s3", "port": 9000, "nodePort": 30900, "protocol": "TCP", "targetPort": 9000}])
