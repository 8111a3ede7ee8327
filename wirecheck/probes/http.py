"""HTTP(S) and websocket probes for the acceptance gate.

Plain Python, no pytest; every call has an explicit timeout.

A client outside the installation reaches `https://<name>.<domain>` through DNS. The probes can
instead *connect to a given address* (the site's wire_ip) while still sending the right SNI and
Host header and verifying the certificate against the name, so acceptance does not depend on
public DNS being in place (DNS has its own checks).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# headers worth keeping as evidence (others are noise or may carry session data)
EVIDENCE_HEADERS = ("server", "content-type", "content-length", "location", "content-security-policy",
                    "upgrade", "connection", "sec-websocket-accept", "www-authenticate")


class _ConnectToAdapter(HTTPAdapter):
    """Connect to a fixed IP for every request while keeping SNI, Host and certificate name checks."""

    def __init__(self, connect_to: str, **kwargs: Any) -> None:
        self.connect_to = connect_to
        super().__init__(**kwargs)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):  # type: ignore[no-untyped-def]
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        name = host_params["host"]
        host_params["host"] = self.connect_to
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = name
            pool_kwargs["assert_hostname"] = name if verify is not False else False
        return host_params, pool_kwargs

    def send(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        parts = urlsplit(request.url)
        host = parts.hostname or ""
        default = 443 if parts.scheme == "https" else 80
        request.headers["Host"] = host if parts.port in (None, default) else f"{host}:{parts.port}"
        return super().send(request, *args, **kwargs)


@dataclass
class HttpResult:
    url: str
    connected_to: str | None
    status: int | None = None
    reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    elapsed_ms: float | None = None
    error: str | None = None
    error_kind: str | None = None  # tls | connect | timeout | http
    body_start: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None

    def evidence(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, "")}

    def target(self) -> str:
        return f"GET {self.url}" + (f" via {self.connected_to}" if self.connected_to else "")

    def observed(self) -> int | str:
        """The status code, or the error in words (for a verdict's observed value)."""
        return self.status if self.status is not None else f"{self.error_kind} error: {self.error}"

    def describe(self) -> str:
        if self.status is not None:
            return f"{self.target()}: HTTP {self.status} {self.reason or ''}".rstrip()
        return f"{self.target()}: {self.observed()}"


def _session(connect_to: str | None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never route probes through a proxy from the environment
    if connect_to:
        adapter = _ConnectToAdapter(connect_to, max_retries=0)
        s.mount("https://", adapter)
        s.mount("http://", adapter)
    return s


def _classify(exc: Exception) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connect"
    return "http"


_REASONS = [
    re.compile(r"\[SSL: [A-Z_]+\][^'\")]*"),  # [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ...
    re.compile(r"[Hh]ostname mismatch[^'\")]*"),
    re.compile(r"\[Errno -?\d+\][^'\")]*"),  # [Errno 111] Connection refused
    re.compile(r"(?:Read|Connect) timed out[^'\")]*"),
]


def _short_error(exc: Exception) -> str:
    """requests nests urllib3 reasons several levels deep; keep the informative innermost reason."""
    text = str(exc)
    for pattern in _REASONS:
        m = pattern.search(text)
        if m:
            return m.group(0).strip().rstrip(".,")[:300]
    return text[:300]


def http_get(url: str, *, connect_to: str | None = None, timeout: float = 10.0, ca_bundle: str | None = None,
             verify: bool = True, allow_redirects: bool = False,
             headers: dict[str, str] | None = None) -> HttpResult:
    """GET `url`; with `connect_to`, open the TCP connection to that address instead of resolving the name."""
    result = HttpResult(url=url, connected_to=connect_to)
    verify_arg: bool | str = (ca_bundle or True) if verify else False
    start = time.monotonic()
    with _session(connect_to) as s:
        try:
            resp = s.get(url, timeout=(timeout, timeout), verify=verify_arg, allow_redirects=allow_redirects,
                         headers=headers or {}, stream=True)
        except requests.exceptions.RequestException as exc:
            result.error = _short_error(exc)
            result.error_kind = _classify(exc)
            result.elapsed_ms = (time.monotonic() - start) * 1000
            return result
        try:
            result.status = resp.status_code
            result.reason = resp.reason
            result.headers = {k.lower(): v for k, v in resp.headers.items() if k.lower() in EVIDENCE_HEADERS}
            try:
                chunk = next(resp.iter_content(512), b"")
                result.body_start = chunk.decode("utf-8", "replace")[:200]
            except requests.exceptions.RequestException:
                pass
        finally:
            resp.close()
    result.elapsed_ms = (time.monotonic() - start) * 1000
    return result


def parse_csp(header: str | None) -> dict[str, list[str]]:
    """Content-Security-Policy header → {directive: [sources]} (directive names lower-cased)."""
    policy: dict[str, list[str]] = {}
    for part in (header or "").split(";"):
        tokens = part.split()
        if tokens:
            policy.setdefault(tokens[0].lower(), tokens[1:])
    return policy


def csp_allows(sources: list[str], wanted: str) -> bool:
    """True when a CSP source list allows `wanted` (e.g. "https://assets.example.com")."""
    scheme, _, host = wanted.partition("://")
    for src in sources:
        s = src.strip().rstrip("/")
        if s in ("*", wanted) or s == f"{scheme}:":
            return True
        s_scheme, sep, s_host = s.partition("://")
        if not sep or s_scheme != scheme:
            continue
        if s_host.startswith("*.") and host.endswith(s_host[1:]):
            return True
        if s_host == host:
            return True
    return False


@dataclass
class WebSocketResult:
    url: str
    connected_to: str | None
    status: int | None = None
    status_line: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    accept_valid: bool | None = None
    tls_version: str | None = None
    elapsed_ms: float | None = None
    error: str | None = None
    error_kind: str | None = None

    @property
    def reachable(self) -> bool:
        return self.status is not None

    @property
    def upgraded(self) -> bool:
        return self.status == 101 and bool(self.accept_valid)

    def evidence(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, "")}

    def describe(self) -> str:
        via = f" via {self.connected_to}" if self.connected_to else ""
        if self.status is None:
            return f"websocket {self.url}{via}: {self.error_kind} error: {self.error}"
        extra = ""
        if self.status == 101:
            extra = ", Sec-WebSocket-Accept valid" if self.accept_valid else ", Sec-WebSocket-Accept WRONG"
        return f"websocket {self.url}{via}: {self.status_line}{extra}"


def websocket_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()  # noqa: S324


def websocket_upgrade(url: str, *, connect_to: str | None = None, timeout: float = 10.0,
                      ca_bundle: str | None = None, verify: bool = True,
                      headers: dict[str, str] | None = None) -> WebSocketResult:
    """Send an HTTP/1.1 Upgrade: websocket request over a raw (TLS) socket and read the status line.

    Any status line proves the endpoint is reachable; 101 with a correct Sec-WebSocket-Accept proves
    the upgrade path works end to end.
    """
    result = WebSocketResult(url=url, connected_to=connect_to)
    parts = urlsplit(url)
    secure = parts.scheme in ("wss", "https")
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16)).decode()
    start = time.monotonic()
    deadline = start + timeout
    sock: socket.socket | None = None
    try:
        try:
            sock = socket.create_connection((connect_to or host, port), timeout=timeout)
        except (OSError, TimeoutError) as exc:
            result.error, result.error_kind = str(exc) or type(exc).__name__, "connect"
            return result
        if secure:
            ctx = ssl.create_default_context(cafile=ca_bundle)
            if not verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["http/1.1"])
            try:
                sock = ctx.wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, ssl.CertificateError) as exc:
                result.error, result.error_kind = str(exc), "tls"
                return result
            result.tls_version = sock.version()  # type: ignore[attr-defined]
        host_header = host if parts.port in (None, 443 if secure else 80) else f"{host}:{port}"
        lines = [f"GET {path} HTTP/1.1", f"Host: {host_header}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 f"Origin: https://{host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf and len(buf) < 65536:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        head = buf.split(b"\r\n\r\n", 1)[0].decode("iso-8859-1")
        if not head:
            result.error, result.error_kind = "connection closed without an HTTP answer", "http"
            return result
        status_line, *header_lines = head.split("\r\n")
        result.status_line = status_line.strip()
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
            result.error, result.error_kind = f"not an HTTP status line: {status_line[:80]!r}", "http"
            result.status_line = None
            return result
        result.status = int(fields[1])
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() in EVIDENCE_HEADERS:
                result.headers[name.strip().lower()] = value.strip()
        if result.status == 101:
            result.accept_valid = result.headers.get("sec-websocket-accept") == websocket_accept(key)
    except TimeoutError:
        result.error, result.error_kind = f"no HTTP answer within {timeout:g} s", "timeout"
    except OSError as exc:
        result.error, result.error_kind = str(exc), "connect"
    finally:
        result.elapsed_ms = (time.monotonic() - start) * 1000
        if sock is not None:
            sock.close()
    return result
