"""A real Kubernetes control plane for the tests: etcd and kube-apiserver on loopback, no kubelet.

The binaries are the released programs built from the Go module proxy by
tests/lab/build_components.sh into a cache keyed by version (tests/lab/components.env). They run
as a kubeadm cluster runs them, only on 127.0.0.1 and on free ports:

- etcd with TLS for clients and peers and client-certificate auth (its own CA, as kubeadm's
  /etc/kubernetes/pki/etcd/);
- kube-apiserver with TLS, client-certificate auth (cluster CA; the admin is in system:masters),
  a static token file, service-account signing keys (so TokenRequest works), the Node and RBAC
  authorizers, NodeRestriction admission, and an audit log (Metadata level, every request).

Nothing schedules or runs pods (no scheduler, controller-manager or kubelet): a test builds the
cluster state it needs through the API, status subresources included, which is what the
checks read. Node addresses are loopback addresses so that nothing the API server might dial
(it dials kubelets only for logs, exec and proxy, and here by InternalIP only) leaves the machine;
`KubeletLogs` stands in for a kubelet's log endpoint on such an address.

    with ControlPlane(tmp_dir) as cp:
        api = cp.admin_client()          # kubernetes.client.ApiClient (cluster admin)
        cp.helm("install", "webapp", chart)
        cp.kubeconfig_for_token(token)   # a kubeconfig as a site operator hands to wirecheck
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.freeport import free_port

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = "tests/lab/build_components.sh"
CACHE_ENV = "WIRECHECK_LAB_CACHE"
DEFAULT_CACHE = "/var/cache/wirecheck-lab"

# component -> the variable of components.env that holds its version
_VERSION_KEYS = {"kube-apiserver": "K8S_VERSION", "etcd": "ETCD_VERSION", "helm": "HELM_VERSION"}


class ComponentMissing(Exception):
    """A binary the lab needs has not been built (run tests/lab/build_components.sh)."""


def versions() -> dict[str, str]:
    """The pinned versions, read from tests/lab/components.env (the build script reads the same)."""
    out: dict[str, str] = {}
    for line in (REPO / "tests/lab/components.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            out[key.strip()] = value.strip()
    return out


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def component_dir(name: str) -> Path:
    return cache_dir() / f"{name}-{versions()[_VERSION_KEYS[name]]}"


def component(name: str) -> Path:
    """Path of a built binary; ComponentMissing naming the build command when it is not there."""
    path = component_dir(name) / name
    if not os.access(path, os.X_OK):
        raise ComponentMissing(f"{name} is not built ({path} missing): run {BUILD_SCRIPT} "
                               f"(scripts/install.sh --test runs it)")
    return path


def build_seconds(name: str) -> int | None:
    """Wall time of the component's first build, as the build script recorded it."""
    try:
        return int((component_dir(name) / "build-seconds").read_text().strip())
    except (OSError, ValueError):
        return None


def _write(path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)
    return path


AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
"""


@dataclass
class StartTimes:
    """Seconds from launching each program to its first healthy answer."""

    pki: float = 0.0
    etcd: float = 0.0
    apiserver: float = 0.0
    total: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class ControlPlaneError(Exception):
    pass


class KubeletLogs:
    """A stand-in for one kubelet's log endpoint, the one kubelet API the checks reach (pod logs).

    The real API server authorises `pods/log` and then fetches the log from the pod's node at
    https://<node InternalIP>:<status.daemonEndpoints.kubeletEndpoint.Port>/containerLogs/<ns>/<pod>/<container>
    (it does not verify a kubelet's certificate unless --kubelet-certificate-authority is given).
    This serves `logs[(namespace, pod, container)]` there, honouring limitBytes, on a loopback
    address; the lab runs no real kubelet, which would need a container runtime."""

    def __init__(self, workdir: Path, address: str = "127.0.1.11") -> None:
        self.workdir = Path(workdir)
        self.address = address
        self.port = 0
        self.logs: dict[tuple[str, str, str], str] = {}
        self.requests: list[str] = []
        self._server: Any = None
        self._thread: Any = None

    def start(self) -> KubeletLogs:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        import trustme

        stub = self
        cert = trustme.CA().issue_cert(self.address, common_name="kubelet")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(ctx)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                parts = urlsplit(self.path)
                stub.requests.append(self.path)
                segs = parts.path.strip("/").split("/")
                text = stub.logs.get(tuple(segs[1:4])) if len(segs) == 4 and segs[0] == "containerLogs" else None
                if text is None:
                    self.send_error(404)
                    return
                limit = int((parse_qs(parts.query).get("limitBytes") or ["0"])[0] or 0)
                body = text.encode()[:limit] if limit > 0 else text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((self.address, 0), Handler)
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None


class ControlPlane:
    """etcd + kube-apiserver in `workdir`; start() / stop(), or a context manager."""

    def __init__(self, workdir: Path, *, start_timeout: float = 120.0) -> None:
        self.workdir = Path(workdir)
        self.start_timeout = start_timeout
        self.pki = self.workdir / "pki"
        self.times = StartTimes()
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.etcd_port = self.etcd_peer_port = self.port = 0
        self.static_tokens: dict[str, str] = {}  # user -> token (the --token-auth-file)
        self.audit_log = self.workdir / "audit.log"
        self.apiserver_bin = component("kube-apiserver")
        self.etcd_bin = component("etcd")
        self.helm_bin = component("helm")

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> ControlPlane:
        t0 = time.monotonic()
        try:
            self._make_pki()
            self.times.pki = time.monotonic() - t0
            for attempt in range(1, attempts + 1):
                try:
                    self._start_etcd()
                    self._start_apiserver()
                    break
                except ControlPlaneError as exc:
                    # a free port can be taken by another process between our probe and the program's
                    # bind; anything else is a real failure
                    self.stop()
                    if "address already in use" not in str(exc) or attempt == attempts:
                        raise
        except BaseException:
            self.stop()
            raise
        self.times.total = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop every program this control plane started (API server first), waiting for each."""
        for name, proc in reversed(self._procs):
            self._stop_proc(name, proc)
        self._procs.clear()

    @staticmethod
    def _stop_proc(name: str, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                # kube-apiserver waits for requests in flight, up to a minute when etcd is gone:
                # nothing of this throw-away cluster needs keeping, so a few seconds are enough
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def stop_etcd(self) -> None:
        """Stop etcd alone (the API server keeps running and reports it unhealthy)."""
        for name, proc in self._procs:
            if name == "etcd":
                self._stop_proc(name, proc)

    # ------------------------------------------------------------------ PKI, as kubeadm lays it out
    def _make_pki(self) -> None:
        import trustme
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        p = self.pki
        p.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="wirecheck lab", organization_unit_name="kubernetes")
        etcd_ca = trustme.CA(organization_name="wirecheck lab", organization_unit_name="etcd")
        ca.cert_pem.write_to_path(str(p / "ca.crt"))
        etcd_ca.cert_pem.write_to_path(str(p / "etcd-ca.crt"))

        def leaf(ca_: Any, stem: str, *names: str, cn: str, org: str | None = None) -> None:
            cert = ca_.issue_cert(*names, common_name=cn, organization_name=org)
            cert.cert_chain_pems[0].write_to_path(str(p / f"{stem}.crt"))
            cert.private_key_pem.write_to_path(str(p / f"{stem}.key"))

        api_names = ("127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                     "kubernetes.default.svc.cluster.local")
        leaf(ca, "apiserver", *api_names, cn="kube-apiserver")
        leaf(ca, "admin", "kubernetes-admin", cn="kubernetes-admin", org="system:masters")
        leaf(etcd_ca, "etcd-server", "127.0.0.1", "localhost", cn="etcd")
        leaf(etcd_ca, "etcd-peer", "127.0.0.1", "localhost", cn="etcd-peer")
        leaf(etcd_ca, "apiserver-etcd-client", "kube-apiserver-etcd-client", cn="kube-apiserver-etcd-client")
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write(p / "sa.key", sa.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        _write(p / "sa.pub", sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
        for p_ in p.glob("*.key"):
            p_.chmod(0o600)

    # ------------------------------------------------------------------ etcd
    def _launch(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps it
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.workdir)
        finally:
            log.close()
        self._procs.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 25) -> str:
        with suppress(OSError):
            return "\n".join((self.workdir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _start_etcd(self) -> None:
        p = self.pki
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)  # a new member each start
        client_url = f"https://127.0.0.1:{self.etcd_port}"
        peer_url = f"https://127.0.0.1:{self.etcd_peer_port}"
        t0 = time.monotonic()
        proc = self._launch("etcd", [
            str(self.etcd_bin), "--name=lab-etcd", f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=lab-etcd={peer_url}", "--initial-cluster-state=new",
            "--listen-metrics-urls=", f"--cert-file={p / 'etcd-server.crt'}", f"--key-file={p / 'etcd-server.key'}",
            "--client-cert-auth=true", f"--trusted-ca-file={p / 'etcd-ca.crt'}",
            f"--peer-cert-file={p / 'etcd-peer.crt'}", f"--peer-key-file={p / 'etcd-peer.key'}",
            "--peer-client-cert-auth=true", f"--peer-trusted-ca-file={p / 'etcd-ca.crt'}",
            "--snapshot-count=10000", "--unsafe-no-fsync=true", "--log-level=warn",
        ])
        ctx = ssl.create_default_context(cafile=str(p / "etcd-ca.crt"))
        ctx.load_cert_chain(str(p / "apiserver-etcd-client.crt"), str(p / "apiserver-etcd-client.key"))
        self._wait_healthy("etcd", proc, self.etcd_port, "/health", ctx, lambda body: '"health":"true"' in body)
        self.times.etcd = time.monotonic() - t0

    # ------------------------------------------------------------------ kube-apiserver
    def _start_apiserver(self) -> None:
        p = self.pki
        self.port = free_port()
        self.static_tokens = {"wirecheck-unbound": secrets.token_hex(16)}
        _write(self.workdir / "tokens.csv",
               "".join(f"{tok},{user},uid-{user}\n" for user, tok in self.static_tokens.items()))
        _write(self.workdir / "audit-policy.yaml", AUDIT_POLICY, 0o644)
        t0 = time.monotonic()
        proc = self._launch("kube-apiserver", [
            str(self.apiserver_bin),
            "--advertise-address=127.0.0.1", "--bind-address=127.0.0.1", f"--secure-port={self.port}",
            "--allow-privileged=true", "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction", f"--client-ca-file={p / 'ca.crt'}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--etcd-servers=https://127.0.0.1:{self.etcd_port}", f"--etcd-cafile={p / 'etcd-ca.crt'}",
            f"--etcd-certfile={p / 'apiserver-etcd-client.crt'}", f"--etcd-keyfile={p / 'apiserver-etcd-client.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}", f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/12", f"--token-auth-file={self.workdir / 'tokens.csv'}",
            f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}", f"--audit-log-path={self.audit_log}",
            "--audit-log-mode=blocking", f"--cert-dir={self.workdir / 'cert-dir'}",
            # no endpoint for the `kubernetes` Service: the reconciler refuses a loopback address
            "--endpoint-reconciler-type=none", "--profiling=false", "--v=1",
            # reach a kubelet (pod logs) by the node's InternalIP only: never a name to resolve
            "--kubelet-preferred-address-types=InternalIP",
        ])
        ctx = self.ssl_context()
        self._wait_healthy("kube-apiserver", proc, self.port, "/readyz", ctx, lambda body: body.strip() == "ok")
        self.times.apiserver = time.monotonic() - t0
        self.write_admin_kubeconfig()

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _wait_healthy(self, name: str, proc: subprocess.Popen[bytes], port: int, path: str,
                      ctx: ssl.SSLContext, good: Any) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read().decode(errors="replace")
                conn.close()
                if resp.status == 200 and good(body):
                    return
                last = f"HTTP {resp.status}: {body[:300]}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ControlPlaneError(f"{name} not healthy within {self.start_timeout:g}s ({last}):\n{self.log_tail(name)}")

    # ------------------------------------------------------------------ access
    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _kubeconfig(self, user: dict[str, Any], name: str) -> dict[str, Any]:
        ca = base64.b64encode((self.pki / "ca.crt").read_bytes()).decode()
        return {"apiVersion": "v1", "kind": "Config", "current-context": name,
                "clusters": [{"name": "lab", "cluster": {"server": self.server, "certificate-authority-data": ca}}],
                "users": [{"name": name, "user": user}],
                "contexts": [{"name": name, "context": {"cluster": "lab", "user": name}}]}

    def write_admin_kubeconfig(self) -> Path:
        user = {"client-certificate-data": base64.b64encode((self.pki / "admin.crt").read_bytes()).decode(),
                "client-key-data": base64.b64encode((self.pki / "admin.key").read_bytes()).decode()}
        self.admin_kubeconfig = _write(self.workdir / "admin.kubeconfig",
                                       json.dumps(self._kubeconfig(user, "kubernetes-admin")))
        return self.admin_kubeconfig

    def kubeconfig_for_token(self, token: str, name: str, path: Path | None = None) -> Path:
        """A kubeconfig with a bearer token, as an operator writes one for a service account."""
        return _write(path or self.workdir / f"{name}.kubeconfig", json.dumps(self._kubeconfig({"token": token}, name)))

    def admin_client(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.admin_kubeconfig))

    def helm(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the real helm binary against this API server as the cluster admin."""
        home = self.workdir / "helm"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
               "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
               "HELM_DATA_HOME": str(home / "data"), "KUBECONFIG": str(self.admin_kubeconfig)}
        proc = subprocess.run([str(self.helm_bin), *args], capture_output=True, text=True, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"helm {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def audit_events(self, username: str | None = None) -> Iterator[dict[str, Any]]:
        """The API server's audit events (ResponseComplete / Panic stages), optionally of one user."""
        with suppress(FileNotFoundError), open(self.audit_log, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                ev = json.loads(line)
                if username is None or (ev.get("user") or {}).get("username") == username:
                    yield ev
