"""STUN probe against a real coturn on loopback (and a silent / garbage-answering UDP socket)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.provision.stack import Coturn, free_port
from wirecheck.probes import stun

ADDR = "127.0.0.61"
# a free high port: other tests briefly hold 0.0.0.0:3478 for the port-reachability checks
PORT = free_port(ADDR)


@pytest.fixture(scope="module")
def coturn(tmp_path_factory):
    with Coturn(ADDR, PORT, tmp_path_factory.mktemp("coturn")) as c:
        yield c


def test_udp_binding_success_has_our_mapped_address(coturn):
    res = stun.stun_binding_udp(ADDR, PORT, timeout=3)
    assert res.ok, res.error
    assert res.response_type == "0x0101"
    assert res.mapped_from == "XOR-MAPPED-ADDRESS"
    # no NAT on loopback: the server saw exactly our socket address
    assert (res.mapped_address, res.mapped_port) == (res.local_address, res.local_port)
    assert res.mapped_matches_local is True
    assert "Coturn" in (res.software or "")
    ev = res.evidence()
    assert ev["mapped_address"] == res.local_address and ev["transport"] == "udp"


def test_tcp_binding_success(coturn):
    res = stun.stun_binding_tcp(ADDR, PORT, timeout=3)
    assert res.ok, res.error
    assert res.transport == "tcp" and res.mapped_matches_local


def test_stopped_server_fails_fast_with_reason(tmp_path):
    addr = "127.0.0.62"
    port = free_port(addr)
    with Coturn(addr, port, tmp_path):
        assert stun.stun_binding_udp(addr, port, timeout=2).ok
    udp = stun.stun_binding_udp(addr, port, timeout=2)
    tcp = stun.stun_binding_tcp(addr, port, timeout=2)
    assert not udp.ok and "port unreachable" in udp.error
    assert not tcp.ok and "refused" in tcp.error
    assert udp.mapped_address is None


class _UdpResponder:
    """A UDP socket on loopback that stays silent or answers with the given function."""

    def __init__(self, answer=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.63", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(2048)
            except OSError:
                continue
            if self.answer:
                for reply in self.answer(data, peer):
                    self.sock.sendto(reply, peer)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.sock.close()


def test_silence_times_out_within_the_budget():
    with _UdpResponder() as r:
        start = time.monotonic()
        res = stun.stun_binding_udp("127.0.0.63", r.port, timeout=1.0, attempts=2)
        took = time.monotonic() - start
    assert not res.ok and res.attempts == 2
    assert "no STUN response within 1 s" in res.error
    assert took < 1.5


def test_wrong_transaction_id_and_garbage_are_rejected():
    def answer(data, peer):
        tid = data[8:20]
        yield b"not stun at all, but twenty+ bytes long"
        other = bytes(12)
        attr = stun.encode_xor_mapped_address(peer[0], peer[1], other)
        yield (stun.HEADER.pack(stun.BINDING_SUCCESS, 4 + len(attr), stun.MAGIC_COOKIE, other)
               + b"\x00\x20" + len(attr).to_bytes(2, "big") + attr)
        del tid

    with _UdpResponder(answer) as r:
        res = stun.stun_binding_udp("127.0.0.63", r.port, timeout=0.6, attempts=1)
    assert not res.ok
    assert "no STUN response" in res.error


def test_error_response_is_reported():
    def answer(data, peer):
        tid = data[8:20]
        err = b"\x00\x00\x04\x00" + b"Bad Request"  # class 4, number 0
        pad = b"\x00" * (-len(err) % 4)
        yield (stun.HEADER.pack(stun.BINDING_ERROR, 4 + len(err) + len(pad), stun.MAGIC_COOKIE, tid)
               + b"\x00\x09" + len(err).to_bytes(2, "big") + err + pad)

    with _UdpResponder(answer) as r:
        res = stun.stun_binding_udp("127.0.0.63", r.port, timeout=1, attempts=1)
    assert not res.ok and res.error == "Binding error response 400 Bad Request"


@pytest.mark.parametrize("ip", ["192.0.2.77", "203.0.113.200", "2001:db8::1"])
def test_xor_mapped_address_roundtrip(ip):
    tid = stun.new_transaction_id()
    value = stun.encode_xor_mapped_address(ip, 54321, tid)
    assert stun.decode_address(value, tid, xor=True) == (ip, 54321)


def test_request_encoding_matches_scapy_stun_layer():
    from scapy.contrib.stun import STUN

    tid = bytes(range(12))
    pkt = STUN(stun.encode_binding_request(tid))
    assert pkt.stun_message_type == 0x0001
    assert pkt.magic_cookie == stun.MAGIC_COOKIE
    assert pkt.transaction_id == int.from_bytes(tid, "big")
    assert pkt.length == 0


@pytest.mark.parametrize("data, reason", [
    (b"\x01\x01\x00\x00", "shorter than a STUN header"),
    (b"\x01\x01\x00\x00" + b"\x00" * 16, "magic cookie"),
    (b"\xc1\x01\x00\x00\x21\x12\xa4\x42" + b"\x00" * 12, "not STUN"),
    (b"\x01\x01\x00\x08\x21\x12\xa4\x42" + b"\x00" * 12, "inconsistent"),
])
def test_decoder_rejects_malformed(data, reason):
    with pytest.raises(stun.StunDecodeError, match=reason):
        stun.decode_message(data)


def test_stun_over_tls_and_tls_handshake(tmp_path):
    from tests.provision.stack import make_certs

    addr = "127.0.0.64"
    certs = make_certs(tmp_path / "certs", names=["turn"])
    port, tls_port = free_port(addr), free_port(addr)
    with Coturn(addr, port, tmp_path / "coturn", tls_port=tls_port, certs=certs):
        res = stun.stun_binding_tcp(addr, tls_port, timeout=3, tls=True, server_hostname="turn.wiab.test",
                                    ca_bundle=str(certs.ca_bundle))
        hs = stun.tls_handshake(addr, tls_port, timeout=3, server_hostname="turn.wiab.test",
                                ca_bundle=str(certs.ca_bundle))
        wrong_name = stun.tls_handshake(addr, tls_port, timeout=3, server_hostname="other.wiab.test",
                                        ca_bundle=str(certs.ca_bundle))
    closed = stun.tls_handshake(addr, tls_port, timeout=2, server_hostname="turn.wiab.test",
                                ca_bundle=str(certs.ca_bundle))
    assert res.ok and res.transport == "tls" and res.mapped_matches_local, res.error
    assert hs.ok and hs.tls_version.startswith("TLS")
    assert not wrong_name.ok and "match" in wrong_name.error.lower()
    assert not closed.ok and "refused" in closed.error
