"""HTTP and websocket probes against the stand-in's real nginx (trustme certificates) on loopback."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.provision.stack import DOMAIN, LoopbackStack, free_port, make_certs
from wirecheck.probes.http import csp_allows, http_get, parse_csp, websocket_accept, websocket_upgrade

ADDR = "127.0.0.71"
# a free high port: other tests briefly hold 0.0.0.0:443 for the port-reachability checks
PORT = free_port(ADDR)
D = f"{DOMAIN}:{PORT}"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory, certs):
    with LoopbackStack(ADDR, tmp_path_factory.mktemp("stack"), certs, https_port=PORT,
                       http_port=free_port(ADDR)) as s:
        yield s


def test_connect_to_ip_with_sni_and_host(stack, certs):
    res = http_get(f"https://nginz-https.{D}/status", connect_to=ADDR, ca_bundle=str(certs.ca_bundle), timeout=5)
    assert res.status == 200, res.describe()
    assert res.headers["server"].startswith("nginx")
    # Host header picks the virtual server: the same address gives 403 for the asset host
    assets = http_get(f"https://assets.{D}/", connect_to=ADDR, ca_bundle=str(certs.ca_bundle), timeout=5)
    assert assets.status == 403 and "AccessDenied" in assets.body_start


def test_certificate_is_verified(stack, tmp_path):
    other = make_certs(tmp_path / "other")  # a CA that did not issue the server certificate
    res = http_get(f"https://webapp.{D}/", connect_to=ADDR, ca_bundle=str(other.ca_bundle), timeout=5)
    assert res.status is None and res.error_kind == "tls"
    assert "CERTIFICATE_VERIFY_FAILED" in res.error


def test_name_not_in_certificate_is_a_tls_error(stack, certs):
    res = http_get(f"https://unknown.{D}/", connect_to=ADDR, ca_bundle=str(certs.ca_bundle), timeout=5)
    assert res.error_kind == "tls", res.describe()


def test_connection_refused_and_timeout_are_classified():
    res = http_get(f"https://webapp.{DOMAIN}:{free_port('127.0.0.72')}/", connect_to="127.0.0.72", timeout=2)
    assert res.error_kind == "connect" and res.status is None
    with socket.socket() as srv:  # accepts TCP but never speaks TLS
        srv.bind(("127.0.0.72", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        res = http_get(f"https://webapp.{DOMAIN}:{port}/", connect_to="127.0.0.72", timeout=1)
    assert res.error_kind in ("timeout", "tls") and res.status is None
    assert res.elapsed_ms < 5000


def test_csp_header_is_parsed(stack, certs):
    res = http_get(f"https://webapp.{D}/", connect_to=ADDR, ca_bundle=str(certs.ca_bundle), timeout=5)
    policy = parse_csp(res.headers["content-security-policy"])
    assert csp_allows(policy["connect-src"], f"wss://nginz-ssl.{DOMAIN}")
    assert csp_allows(policy["connect-src"], f"https://assets.{DOMAIN}")
    assert not csp_allows(policy["connect-src"], "https://assets.elsewhere.test")
    assert not csp_allows(["https://*.wiab.test"], "wss://nginz-ssl.wiab.test")
    assert not csp_allows(["https://*.wiab.test"], "https://wiab.test")


def test_websocket_upgrade_accepted(stack, certs):
    res = websocket_upgrade(f"wss://nginz-ssl.{D}/await", connect_to=ADDR, ca_bundle=str(certs.ca_bundle),
                            timeout=5)
    assert res.status == 101 and res.accept_valid and res.upgraded, res.describe()
    assert res.tls_version.startswith("TLS")


def test_websocket_on_plain_site_is_reachable_but_not_upgraded(stack, certs):
    res = websocket_upgrade(f"wss://account.{D}/", connect_to=ADDR, ca_bundle=str(certs.ca_bundle), timeout=5)
    assert res.reachable and res.status == 200 and not res.upgraded


def test_websocket_wrong_accept_detected():
    """A server answering 101 with a made-up Sec-WebSocket-Accept is caught."""
    srv = socket.socket()
    srv.bind(("127.0.0.73", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + websocket_accept("bogus").encode() + b"\r\n\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        res = websocket_upgrade(f"ws://x.{DOMAIN}:{port}/", connect_to="127.0.0.73", timeout=3)
    finally:
        t.join(5)
        srv.close()
    assert res.status == 101 and res.accept_valid is False and not res.upgraded


def test_websocket_silence_times_out():
    with socket.socket() as srv:
        srv.bind(("127.0.0.73", 0))
        srv.listen(1)
        res = websocket_upgrade(f"ws://x.{DOMAIN}:{srv.getsockname()[1]}/", connect_to="127.0.0.73", timeout=0.5)
    assert res.error_kind == "timeout" and not res.reachable
