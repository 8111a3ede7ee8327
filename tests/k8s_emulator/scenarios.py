"""Ready-made emulated clusters: a kubespray-style production cluster and a minikube demo.

Tests start from one of these and break exactly one thing (a NotReady node, a failed Helm
release, a crash-looping pod...), so each failure test shows which fact the check reacts to.
"""

from __future__ import annotations

from datetime import timedelta

from .cluster import (
    NOW,
    EmulatedCluster,
    container_status,
    helm_release_secret,
    make_certificate,
    make_node,
    make_pod,
    make_service,
    make_workload,
    ts,
)

PROD_RELEASES: list[tuple[str, str]] = [
    ("cassandra-external", "default"),
    ("elasticsearch-external", "default"),
    ("minio-external", "default"),
    ("databases-ephemeral", "default"),
    ("fake-aws", "default"),
    ("demo-smtp", "default"),
    ("reaper", "default"),
    ("rabbitmq", "default"),
    ("wire-server", "default"),
    ("ingress-nginx-controller", "default"),
    ("nginx-ingress-services", "default"),
    ("webapp", "default"),
    ("account-pages", "default"),
    ("team-settings", "default"),
    ("sftd", "default"),
    ("cert-manager", "cert-manager-ns"),
]

DEMO_CHARTS = [
    "fake-aws", "smtp", "rabbitmq", "databases-ephemeral", "postgresql", "reaper", "smallstep-accomp",
    "wire-server", "webapp", "account-pages", "team-settings", "ingress-nginx-controller", "coturn", "sftd",
]

WIRE_SERVICES = ["brig", "galley", "cannon", "cargohold", "gundeck", "spar", "background-worker",
                 "federator", "webapp", "account-pages", "team-settings"]


def _nginz_log(start_age: timedelta, lines: int = 5) -> str:
    first = NOW - start_age
    out = []
    for i in range(lines):
        t = first + timedelta(minutes=i)
        out.append(f"{t.strftime('%Y-%m-%dT%H:%M:%S.%f')}000Z 10.233.64.1 - - "
                   f"[{t.strftime('%d/%b/%Y:%H:%M:%S +0000')}] \"GET /status HTTP/1.1\" 200 0")
    return "\n".join(out) + "\n"


def production_cluster(
    *,
    workers: int = 3,
    etcd_members: int = 3,
    version: str = "v1.29.10",
    sft_replicas: int = 2,
    sft_nodes: int = 2,
    node_cpu: str = "8",
    nginz_log_age: timedelta = timedelta(hours=70),
) -> EmulatedCluster:
    """A kubespray cluster as the offline guide builds it: kubenode1..3 are control plane, etcd
    and workers at once (kubespray does not taint them then); etcd runs on the hosts, so the
    API shows it only through kube-apiserver's `--etcd-servers` and `/readyz/etcd`."""
    c = EmulatedCluster(git_version=version, certificates=[])
    names = [f"kubenode{i}" for i in range(1, workers + 1)]
    for i, name in enumerate(names):
        labels: dict[str, str] = {}
        annotations: dict[str, str] = {}
        if i < sft_nodes:
            labels["wire.com/role"] = "sftd"
            annotations["wire.com/external-ip"] = f"203.0.113.{11 + i}"
        node = make_node(name, kubelet_version=version, cpu=node_cpu, address=f"172.16.0.{11 + i}",
                         labels=labels, annotations=annotations, taints=[])
        if i < 3:
            node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] = ""
        c.nodes.append(node)

    etcd_servers = ",".join(f"https://172.16.0.{11 + j}:2379" for j in range(etcd_members))
    for name in names[:3]:
        c.pods.append(make_pod(
            f"kube-apiserver-{name}", "kube-system", node=name, host_network=True,
            labels={"component": "kube-apiserver", "tier": "control-plane"},
            containers=[container_status("kube-apiserver")],
            command=["kube-apiserver", "--advertise-address=172.16.0.11", "--allow-privileged=true",
                     f"--etcd-servers={etcd_servers}", "--etcd-cafile=/etc/ssl/etcd/ssl/ca.pem",
                     "--secure-port=6443"],
            owner=("Node", name)))
    for name in names:
        c.pods.append(make_pod(f"kube-proxy-{name[-1]}x7k", "kube-system", node=name, host_network=True,
                               labels={"k8s-app": "kube-proxy"}, owner=("DaemonSet", "kube-proxy"),
                               containers=[container_status("kube-proxy")]))
        c.pods.append(make_pod(f"calico-node-{name[-1]}q2w", "kube-system", node=name, host_network=True,
                               labels={"k8s-app": "calico-node"}, owner=("DaemonSet", "calico-node"),
                               containers=[container_status("calico-node")]))
    c.pods.append(make_pod("coredns-77f7cc69db-abcde", "kube-system", node=names[0],
                           labels={"k8s-app": "kube-dns"}, owner=("ReplicaSet", "coredns-77f7cc69db"),
                           containers=[container_status("coredns")]))

    for i, svc in enumerate(WIRE_SERVICES):
        node = names[i % len(names)]
        c.pods.append(make_pod(f"{svc}-6d9f8b7c5-{i:02d}abc", "default", node=node, labels={"app": svc},
                               owner=("ReplicaSet", f"{svc}-6d9f8b7c5"), containers=[container_status(svc)]))
    c.pods.append(make_pod("nginz-5c8d7f6b4-xk2lm", "default", node=names[0], labels={"app": "nginz"},
                           owner=("ReplicaSet", "nginz-5c8d7f6b4"), age=timedelta(days=10),
                           containers=[container_status("nginz"), container_status("nginz-disco")]))
    c.pod_logs[("default", "nginz-5c8d7f6b4-xk2lm", "nginz")] = _nginz_log(nginz_log_age)
    c.pods.append(make_pod("cassandra-migrations-8xk2p", "default", node=names[1], phase="Succeeded",
                           labels={"app": "cassandra-migrations"}, owner=("Job", "cassandra-migrations"),
                           containers=[container_status("cassandra-migrations", ready=False,
                                                        terminated=("Completed", 0))]))
    c.pods.append(make_pod("redis-ephemeral-master-0", "default", node=names[1],
                           labels={"app.kubernetes.io/instance": "databases-ephemeral"},
                           owner=("StatefulSet", "redis-ephemeral-master"),
                           containers=[container_status("redis")]))

    # ingress-nginx as a DaemonSet behind a NodePort service (bare-metal setup from the docs)
    c.daemonsets.append(make_workload("DaemonSet", "ingress-nginx-controller-controller", "default",
                                      replicas=workers, release="ingress-nginx-controller"))
    for i, name in enumerate(names):
        c.pods.append(make_pod(
            f"ingress-nginx-controller-controller-{i}zz9", "default", node=name,
            labels={"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller",
                    "app.kubernetes.io/instance": "ingress-nginx-controller"},
            owner=("DaemonSet", "ingress-nginx-controller-controller"),
            containers=[container_status("controller")]))
    ingress_labels = {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller",
                      "app.kubernetes.io/instance": "ingress-nginx-controller"}
    c.services.append(make_service(
        "ingress-nginx-controller-controller", "default", type_="NodePort", labels=ingress_labels,
        ports=[{"name": "http", "port": 80, "nodePort": 31772, "protocol": "TCP", "targetPort": "http"},
               {"name": "https", "port": 443, "nodePort": 31773, "protocol": "TCP", "targetPort": "https"}]))
    c.services.append(make_service("ingress-nginx-controller-controller-admission", "default",
                                   labels=ingress_labels,
                                   ports=[{"name": "https-webhook", "port": 443, "protocol": "TCP"}]))
    for svc in ("brig", "galley", "nginz", "webapp"):
        c.services.append(make_service(svc, "default", labels={"app": svc}))

    # SFT: StatefulSet with hostNetwork on nodes labelled wire.com/role=sftd
    c.statefulsets.append(make_workload("StatefulSet", "sftd", "default", replicas=sft_replicas,
                                        release="sftd", node_selector={"wire.com/role": "sftd"},
                                        host_network=True))
    for i in range(sft_replicas):
        c.pods.append(make_pod(
            f"sftd-{i}", "default", node=names[i % max(1, sft_nodes)], host_network=True,
            labels={"app.kubernetes.io/name": "sftd", "app.kubernetes.io/instance": "sftd"},
            owner=("StatefulSet", "sftd"), node_selector={"wire.com/role": "sftd"},
            containers=[container_status("sftd")]))
    c.statefulsets.append(make_workload("StatefulSet", "redis-ephemeral-master", "default",
                                        release="databases-ephemeral"))

    for rel, ns in PROD_RELEASES:
        c.secrets.append(helm_release_secret(rel, ns, revision=1, status="superseded"))
        c.secrets.append(helm_release_secret(rel, ns, revision=2, status="deployed"))
    c.secrets.append({"metadata": {"name": "brig", "namespace": "default", "labels": {"app": "brig"}},
                      "type": "Opaque", "data": {"secret": "c2VjcmV0"}})

    assert c.certificates is not None
    c.certificates.append(make_certificate("nginx-ingress-services-cert", "default",
                                           dns_names=["nginz-https.example.com", "webapp.example.com"]))
    c.certificates.append(make_certificate("sftd", "default", dns_names=["sftd.example.com"]))
    return c


def demo_cluster(*, version: str = "v1.28.2") -> EmulatedCluster:
    """Wire-in-a-Box: one minikube node `k8s-wire`, etcd as a kubeadm static pod, all charts in
    `default`, cert-manager in `cert-manager-ns`."""
    c = EmulatedCluster(git_version=version, certificates=[])
    node = "k8s-wire"
    c.nodes.append(make_node(node, control_plane=True, taints=[], kubelet_version=version, cpu="15",
                             address="192.168.99.2"))
    c.pods.append(make_pod("etcd-k8s-wire", "kube-system", node=node, host_network=True,
                           labels={"component": "etcd", "tier": "control-plane"}, owner=("Node", node),
                           containers=[container_status("etcd")]))
    c.pods.append(make_pod("kube-apiserver-k8s-wire", "kube-system", node=node, host_network=True,
                           labels={"component": "kube-apiserver", "tier": "control-plane"},
                           owner=("Node", node), containers=[container_status("kube-apiserver")],
                           command=["kube-apiserver", "--etcd-servers=https://127.0.0.1:2379"]))
    datastores = [
        ("StatefulSet", "cassandra-ephemeral", "databases-ephemeral"),
        ("StatefulSet", "elasticsearch-ephemeral", "databases-ephemeral"),
        ("StatefulSet", "redis-ephemeral", "databases-ephemeral"),
        ("StatefulSet", "postgresql", "postgresql"),
        ("StatefulSet", "rabbitmq", "rabbitmq"),
        ("Deployment", "fake-aws-sqs", "fake-aws"),
        ("Deployment", "fake-aws-s3", "fake-aws"),
    ]
    for kind, name, release in datastores:
        wl = make_workload(kind, name, "default", release=release)
        (c.statefulsets if kind == "StatefulSet" else c.deployments).append(wl)
        pod_name = f"{name}-0" if kind == "StatefulSet" else f"{name}-7f9c-abcde"
        c.pods.append(make_pod(pod_name, "default", node=node,
                               labels={"app.kubernetes.io/instance": release},
                               owner=(kind if kind == "StatefulSet" else "ReplicaSet", name),
                               containers=[container_status(name.split("-")[0])]))
    for svc in WIRE_SERVICES:
        c.pods.append(make_pod(f"{svc}-6d9f8b7c5-abcde", "default", node=node, labels={"app": svc},
                               owner=("ReplicaSet", f"{svc}-6d9f8b7c5"), containers=[container_status(svc)]))
    for chart in DEMO_CHARTS:
        c.secrets.append(helm_release_secret(chart, "default"))
    c.secrets.append(helm_release_secret("nginx-ingress-services", "default"))
    c.secrets.append(helm_release_secret("cert-manager", "cert-manager-ns"))
    assert c.certificates is not None
    c.certificates.append(make_certificate("nginx-ingress-services-cert", "default"))
    c.pods.append(make_pod("coturn-0", "default", node=node, host_network=True, labels={"app": "coturn"},
                           owner=("StatefulSet", "coturn"), containers=[container_status("coturn")]))
    c.statefulsets.append(make_workload("StatefulSet", "sftd", "default", release="sftd",
                                        node_selector={"kubernetes.io/hostname": node}, host_network=True))
    c.pods.append(make_pod("sftd-0", "default", node=node, host_network=True,
                           labels={"app.kubernetes.io/name": "sftd"}, owner=("StatefulSet", "sftd"),
                           containers=[container_status("sftd")]))
    return c


def crashloop(c: EmulatedCluster, pod_name: str, restarts: int = 14) -> None:
    """Turn a running pod into a crash-looping one, as the kubelet reports it."""
    pod = c.pod(pod_name)
    cname = pod["status"]["containerStatuses"][0]["name"]
    pod["status"]["containerStatuses"][0] = container_status(
        cname, ready=False, restarts=restarts, waiting="CrashLoopBackOff",
        message=f"back-off 5m0s restarting failed container={cname} pod={pod_name}")
    pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"},
                                   {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]


def fail_release(c: EmulatedCluster, name: str, description: str) -> None:
    """Add a newer, failed revision of a Helm release (what a failed `helm upgrade` leaves)."""
    revs = [s for s in c.secrets if s["metadata"].get("labels", {}).get("name") == name
            and s["metadata"]["labels"].get("owner") == "helm"]
    ns = revs[0]["metadata"]["namespace"]
    latest = max(int(s["metadata"]["labels"]["version"]) for s in revs)
    c.secrets.append(helm_release_secret(name, ns, revision=latest + 1, status="failed", description=description))




def not_ready(c: EmulatedCluster, node_name: str, reason: str = "KubeletNotReady",
              message: str = "container runtime network not ready: NetworkReady=false") -> None:
    """Mark a node NotReady the way the kubelet reports it (Ready=False with reason and message)."""
    node = c.node(node_name)
    for cond in node["status"]["conditions"]:
        if cond["type"] == "Ready":
            cond.update(status="False", reason=reason, message=message)
    node["spec"].setdefault("taints", []).append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})


__all__ = ["production_cluster", "demo_cluster", "crashloop", "fail_release", "not_ready", "ts", "NOW"]
