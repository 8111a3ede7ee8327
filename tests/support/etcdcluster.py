"""A real etcd cluster (Debian's etcd-server) across lab hosts, laid out as kubespray lays it out.

kubespray (roles/etcd, etcd_deployment_type: host) runs etcd as a host service on the [etcd] hosts,
with TLS for clients and peers from one CA in /etc/ssl/etcd/ssl: ``ca.pem``, ``member-<host>.pem``
(the server's certificate) and ``admin-<host>.pem`` (what etcdctl uses on that host), each with its
``-key.pem``; clients on https://<ip>:2379, peers on :2380, initial cluster token ``k8s_etcd``. Each
member runs as a Popen child inside its host, so stop() and close() wait() for it.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import trustme

from tests.support.labdaemon import LabDaemon

CERT_DIR = "/etc/ssl/etcd/ssl"
DATA_DIR = "/var/lib/etcd"


@dataclass
class EtcdMember(LabDaemon):
    LOG_NAME = "etcd.log"
    STOP_GRACE = 15.0

    host: Any                       # tests.lab.core.LabHost
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def client_url(self) -> str:
        return f"https://{self.host.address}:2379"

    @property
    def peer_url(self) -> str:
        return f"https://{self.host.address}:2380"

    def argv(self, initial_cluster: str, state: str) -> list[str]:
        c = CERT_DIR
        return ["etcd", "--name", f"etcd-{self.name}", "--data-dir", DATA_DIR,
                "--listen-client-urls", f"{self.client_url},https://127.0.0.1:2379",
                "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster, "--initial-cluster-token", "k8s_etcd",
                "--initial-cluster-state", state,
                "--client-cert-auth", "--trusted-ca-file", f"{c}/ca.pem",
                "--cert-file", f"{c}/member-{self.name}.pem", "--key-file", f"{c}/member-{self.name}-key.pem",
                "--peer-client-cert-auth", "--peer-trusted-ca-file", f"{c}/ca.pem",
                "--peer-cert-file", f"{c}/member-{self.name}.pem",
                "--peer-key-file", f"{c}/member-{self.name}-key.pem",
                "--heartbeat-interval", "100", "--election-timeout", "1000", "--log-level", "warn"]


class EtcdCluster:
    def __init__(self, hosts: list[Any]) -> None:
        self.members = [EtcdMember(h) for h in hosts]
        self.ca = trustme.CA()

    def member(self, name: str) -> EtcdMember:
        return next(m for m in self.members if m.name == name)

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"etcd-{m.name}={m.peer_url}" for m in self.members)

    def _install_certs(self, m: EtcdMember) -> None:
        server = self.ca.issue_cert(m.host.address, "127.0.0.1", m.name)
        admin = self.ca.issue_cert(f"admin-{m.name}")
        files = {"ca.pem": self.ca.cert_pem.bytes(),
                 f"member-{m.name}.pem": server.cert_chain_pems[0].bytes(),
                 f"member-{m.name}-key.pem": server.private_key_pem.bytes(),
                 f"admin-{m.name}.pem": admin.cert_chain_pems[0].bytes(),
                 f"admin-{m.name}-key.pem": admin.private_key_pem.bytes()}
        m.host.exec(f"install -d -m 0700 {CERT_DIR} && rm -rf {DATA_DIR}")
        for fname, content in files.items():
            m.host.exec(["sh", "-c", f"umask 077 && cat > {CERT_DIR}/{fname}"], input_text=content.decode())

    def build(self) -> EtcdCluster:
        for m in self.members:
            self._install_certs(m)
        for m in self.members:
            self.start(m.name, state="new")
        self.wait_healthy()
        return self

    def start(self, name: str, state: str = "existing") -> None:
        m = self.member(name)
        if m.running:
            return
        log = open(m.host.workdir / "etcd.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            m.proc = m.host.popen(m.argv(self.initial_cluster, state), stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=log)
        finally:
            log.close()

    def etcdctl(self, name: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        m = self.member(name)
        c = CERT_DIR
        return m.host.exec(["etcdctl", f"--cacert={c}/ca.pem", f"--cert={c}/admin-{m.name}.pem",
                            f"--key={c}/admin-{m.name}-key.pem", f"--endpoints={m.client_url}", *args],
                           check=check, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for m in self.members:
                if not m.running:
                    raise RuntimeError(f"etcd on {m.name} exited:\n{m.log()[-3000:]}")
            last = self.etcdctl(self.members[0].name, "endpoint", "health", "--cluster")
            if last.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"etcd cluster not healthy within {timeout}s: {last.stderr if last else ''}")

    def close(self) -> None:
        for m in self.members:
            with contextlib.suppress(Exception):
                m.stop()
