"""FakeKubeApiServer: a Kubernetes API *emulator* for tests (the real one runs in tests/lab/k8s.py; this one
serves what it cannot: stalled or malformed answers, recorded responses; see the README's stand-ins).

It serves the read-only subset of the Kubernetes REST API that wirecheck's probes use, over
HTTPS with a trustme CA and bearer-token authentication, on 127.0.0.1 only:

  GET /version, /readyz/etcd, /healthz/etcd
  GET /api/v1/{nodes,pods,services,secrets}            (+ /api/v1/namespaces/<ns>/<resource>)
  GET /api/v1/namespaces/<ns>/pods/<name>/log           (container, timestamps, limitBytes)
  GET /apis/apps/v1/{daemonsets,statefulsets,deployments} (+ namespaced)
  GET /apis/cert-manager.io/v1/certificates             (404 when the CRD is "not installed")

List calls honour `labelSelector` (=, ==, !=, in, notin, exists, !exists), `fieldSelector`
(=, ==, != on dotted paths) and `limit`/`continue` paging like the real server. Responses are
JSON objects shaped like the real API's. `write_kubeconfig()` writes a kubeconfig that the
official `kubernetes` client loads unchanged.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme

from .cluster import EmulatedCluster

JSON = dict[str, Any]

_LIST_KIND = {
    "nodes": "NodeList", "pods": "PodList", "services": "ServiceList", "secrets": "SecretList",
    "daemonsets": "DaemonSetList", "statefulsets": "StatefulSetList", "deployments": "DeploymentList",
    "certificates": "CertificateList",
}
_CORE = re.compile(r"^/api/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<res>nodes|pods|services|secrets)$")
_APPS = re.compile(r"^/apis/apps/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<res>daemonsets|statefulsets|deployments)$")
_CERTS = re.compile(r"^/apis/cert-manager\.io/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<res>certificates)$")
_LOG = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<pod>[^/]+)/log$")


@dataclass
class RecordedRequest:
    path: str
    query: dict[str, list[str]]
    authorized: bool


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _label_requirement_matches(req: str, labels: dict[str, str]) -> bool:
    req = req.strip()
    m = re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)", req)
    if m:
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        return (labels.get(key) in values) if op == "in" else (labels.get(key) not in values)
    if "!=" in req:
        key, value = req.split("!=", 1)
        return labels.get(key.strip()) != value.strip()
    if "=" in req:
        key, value = req.replace("==", "=").split("=", 1)
        return labels.get(key.strip()) == value.strip()
    if req.startswith("!"):
        return req[1:] not in labels
    return req in labels


def _split_selector(selector: str) -> list[str]:
    # commas inside "in (a,b)" do not separate requirements
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    return all(_label_requirement_matches(r, labels) for r in _split_selector(selector))


def field_selector_matches(selector: str, obj: JSON) -> bool:
    for req in _split_selector(selector):
        if "!=" in req:
            path, value = req.split("!=", 1)
            if str(_dig(obj, path.strip()) or "") == value.strip():
                return False
        else:
            path, value = req.replace("==", "=").split("=", 1)
            if str(_dig(obj, path.strip()) or "") != value.strip():
                return False
    return True


@dataclass
class FakeKubeApiServer:
    """Kubernetes API emulator on 127.0.0.1 (HTTPS, bearer token). Use as a context manager."""

    cluster: EmulatedCluster
    token: str = "wirecheck-test-token"
    # path prefix -> seconds to wait before answering (to exercise client timeouts)
    stall: dict[str, float] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ca = trustme.CA()
        self._cert = self._ca.issue_cert("127.0.0.1", "localhost")
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> FakeKubeApiServer:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(ctx)
        handler = self._make_handler()
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="FakeKubeApiServer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeKubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "emulator not started"
        host, port = self._httpd.server_address[:2]
        return f"https://{host}:{port}"

    def write_kubeconfig(self, path: Path, *, token: str | None = None, context: str = "emulated") -> Path:
        """A kubeconfig for this emulator (YAML is a superset of JSON, so JSON is written)."""
        ca_pem = self._ca.cert_pem.bytes()
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulated-cluster", "cluster": {
                "server": self.url, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
            "users": [{"name": "emulated-admin", "user": {"token": token or self.token}}],
            "contexts": [{"name": context, "context": {"cluster": "emulated-cluster", "user": "emulated-admin"}}],
            "current-context": context,
        }
        path.write_text(json.dumps(cfg, indent=2))
        return path

    def paths_requested(self) -> list[str]:
        return [r.path for r in self.requests]

    # ------------------------------------------------------------ request handling
    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                authorized = self.headers.get("Authorization", "") == f"Bearer {emulator.token}"
                emulator.requests.append(RecordedRequest(parts.path, query, authorized))
                for prefix, seconds in emulator.stall.items():
                    if parts.path.startswith(prefix) and emulator._stopping.wait(seconds):
                        return
                try:
                    if not authorized:
                        self._status(401, "Unauthorized", "Unauthorized")
                        return
                    emulator._route(self, parts.path, query)
                except OSError:
                    # the client gave up (e.g. its timeout expired while we stalled)
                    self.close_connection = True

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, obj: Any) -> None:
                self._send(code, json.dumps(obj).encode())

            def _status(self, code: int, reason: str, message: str) -> None:
                self._json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": message, "reason": reason, "code": code})

        return Handler

    def _route(self, h: Any, path: str, query: dict[str, list[str]]) -> None:
        c = self.cluster
        path = path.rstrip("/") or "/"
        if path == "/version":
            major, minor = c.git_version.lstrip("v").split(".")[:2]
            h._json(200, {"major": major, "minor": minor, "gitVersion": c.git_version,
                          "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2024-10-22T20:28:14Z",
                          "goVersion": "go1.22.8", "compiler": "gc", "platform": "linux/amd64"})
            return
        if path in ("/readyz/etcd", "/healthz/etcd", "/livez/etcd"):
            code, body = c.etcd_readyz
            h._send(code, body.encode(), "text/plain; charset=utf-8")
            return
        m = _LOG.match(path)
        if m:
            container = (query.get("container") or [""])[0]
            key = (m["ns"], m["pod"], container)
            if key not in c.pod_logs:
                h._status(404, "NotFound", f'pods "{m["pod"]}" not found or container "{container}" has no log')
                return
            text = c.pod_logs[key]
            # the API server parses booleans like Go's strconv.ParseBool ("true", "True", "1", ...)
            if (query.get("timestamps") or ["false"])[0].lower() not in ("true", "1", "t"):
                text = "\n".join(line.split(" ", 1)[1] if " " in line else line
                                 for line in text.splitlines()) + "\n"
            data = text.encode()
            limit = query.get("limitBytes")
            if limit:
                data = data[: int(limit[0])]
            h._send(200, data, "text/plain")
            return
        for rx, api_version in ((_CORE, "v1"), (_APPS, "apps/v1"), (_CERTS, "cert-manager.io/v1")):
            m = rx.match(path)
            if m:
                self._list(h, m["res"], m["ns"], query, api_version)
                return
        h._status(404, "NotFound", "the server could not find the requested resource")

    def _list(self, h: Any, resource: str, namespace: str | None, query: dict[str, list[str]],
              api_version: str) -> None:
        items: list[JSON] | None = getattr(self.cluster, resource)
        if items is None:
            h._status(404, "NotFound", "the server could not find the requested resource")
            return
        selected = [o for o in items if namespace is None or o["metadata"].get("namespace") == namespace]
        if "labelSelector" in query:
            sel = query["labelSelector"][0]
            selected = [o for o in selected if label_selector_matches(sel, o["metadata"].get("labels") or {})]
        if "fieldSelector" in query:
            sel = query["fieldSelector"][0]
            selected = [o for o in selected if field_selector_matches(sel, o)]
        start = int((query.get("continue") or ["0"])[0] or 0)
        limit = int((query.get("limit") or ["0"])[0] or 0)
        page = selected[start: start + limit] if limit else selected[start:]
        meta: JSON = {"resourceVersion": "123456"}
        if limit and start + limit < len(selected):
            meta["continue"] = str(start + limit)
            meta["remainingItemCount"] = len(selected) - start - limit
        h._json(200, {"kind": _LIST_KIND[resource], "apiVersion": api_version, "metadata": meta,
                      "items": page})

