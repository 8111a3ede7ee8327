"""STUN Binding probe (RFC 5389 / RFC 8489) over UDP and TCP, plus plain TCP/TLS reachability.

Plain Python, no pytest. Every network call has an explicit timeout, so a probe never hangs.

The message codec is deliberately small: a Binding request is a 20-byte header (type 0x0001,
length, magic cookie 0x2112A442, 96-bit transaction id) with no attributes; a Binding success
response (type 0x0101) carries XOR-MAPPED-ADDRESS (0x0020) and possibly MAPPED-ADDRESS (0x0001),
SOFTWARE (0x8022), FINGERPRINT (0x8028). We validate cookie, transaction id and length, and decode
the mapped address so a check can show (and compare) the address the server saw.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Any

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111

ATTR_MAPPED_ADDRESS = 0x0001
ATTR_ERROR_CODE = 0x0009
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_SOFTWARE = 0x8022
ATTR_FINGERPRINT = 0x8028
ATTR_RESPONSE_ORIGIN = 0x802B
ATTR_OTHER_ADDRESS = 0x802C

HEADER = struct.Struct("!HHI12s")


class StunDecodeError(ValueError):
    """The bytes received are not a valid STUN message for our request."""


@dataclass
class StunMessage:
    msg_type: int
    transaction_id: bytes
    attributes: list[tuple[int, bytes]] = field(default_factory=list)

    def attr(self, attr_type: int) -> bytes | None:
        for t, v in self.attributes:
            if t == attr_type:
                return v
        return None


def new_transaction_id() -> bytes:
    return os.urandom(12)


def encode_binding_request(transaction_id: bytes) -> bytes:
    if len(transaction_id) != 12:
        raise ValueError("STUN transaction id must be 12 bytes")
    return HEADER.pack(BINDING_REQUEST, 0, MAGIC_COOKIE, transaction_id)


def decode_message(data: bytes) -> StunMessage:
    """Decode one STUN message; raises StunDecodeError on anything malformed."""
    if len(data) < HEADER.size:
        raise StunDecodeError(f"{len(data)} bytes is shorter than a STUN header (20)")
    msg_type, length, cookie, tid = HEADER.unpack_from(data)
    if msg_type & 0xC000:
        raise StunDecodeError(f"first two bits of message type not zero (0x{msg_type:04x}): not STUN")
    if cookie != MAGIC_COOKIE:
        raise StunDecodeError(f"magic cookie 0x{cookie:08x}, expected 0x{MAGIC_COOKIE:08x}")
    if length % 4 or HEADER.size + length > len(data):
        raise StunDecodeError(f"message length {length} inconsistent with {len(data)} bytes received")
    attributes: list[tuple[int, bytes]] = []
    pos = HEADER.size
    end = HEADER.size + length
    while pos + 4 <= end:
        a_type, a_len = struct.unpack_from("!HH", data, pos)
        pos += 4
        if pos + a_len > end:
            raise StunDecodeError(f"attribute 0x{a_type:04x} runs past the message end")
        attributes.append((a_type, data[pos : pos + a_len]))
        pos += (a_len + 3) & ~3
    return StunMessage(msg_type, tid, attributes)


def decode_address(value: bytes, transaction_id: bytes, xor: bool) -> tuple[str, int]:
    """Decode (XOR-)MAPPED-ADDRESS into (ip, port)."""
    if len(value) < 8:
        raise StunDecodeError("address attribute too short")
    family = value[1]
    port = struct.unpack_from("!H", value, 2)[0]
    raw = value[4:]
    if xor:
        port ^= MAGIC_COOKIE >> 16
        key = struct.pack("!I", MAGIC_COOKIE) + transaction_id
        raw = bytes(b ^ k for b, k in zip(raw, key, strict=False))
    if family == 0x01 and len(raw) == 4:
        return str(ipaddress.IPv4Address(raw)), port
    if family == 0x02 and len(raw) == 16:
        return str(ipaddress.IPv6Address(raw)), port
    raise StunDecodeError(f"unknown address family 0x{family:02x} / length {len(raw)}")


def encode_xor_mapped_address(ip: str, port: int, transaction_id: bytes) -> bytes:
    """Inverse of decode_address(xor=True); used by tests and by the stand-in responder."""
    addr = ipaddress.ip_address(ip)
    family = 0x01 if addr.version == 4 else 0x02
    key = struct.pack("!I", MAGIC_COOKIE) + transaction_id
    xaddr = bytes(b ^ k for b, k in zip(addr.packed, key, strict=False))
    return struct.pack("!BBH", 0, family, port ^ (MAGIC_COOKIE >> 16)) + xaddr


@dataclass
class StunResult:
    """Outcome of one STUN Binding exchange; `ok` means a valid Binding success response."""

    server: str
    port: int
    transport: str
    ok: bool = False
    mapped_address: str | None = None
    mapped_port: int | None = None
    mapped_from: str | None = None  # "XOR-MAPPED-ADDRESS" or "MAPPED-ADDRESS"
    local_address: str | None = None
    local_port: int | None = None
    response_type: str | None = None
    software: str | None = None
    rtt_ms: float | None = None
    attempts: int = 0
    error: str | None = None

    @property
    def mapped_matches_local(self) -> bool | None:
        """True when the server saw our own socket address (no NAT in between)."""
        if self.mapped_address is None or self.local_address is None:
            return None
        return self.mapped_address == self.local_address and self.mapped_port == self.local_port

    def evidence(self) -> dict[str, Any]:
        d = asdict(self)
        d["mapped_matches_local"] = self.mapped_matches_local
        return {k: v for k, v in d.items() if v is not None}

    def describe(self) -> str:
        where = f"{self.transport.upper()} {self.server}:{self.port}"
        if self.ok:
            return (f"{where}: Binding success, XOR-MAPPED-ADDRESS {self.mapped_address}:{self.mapped_port}"
                    f" ({self.rtt_ms:.1f} ms)")
        return f"{where}: {self.error}"


def _judge_response(result: StunResult, data: bytes, tid: bytes) -> None:
    msg = decode_message(data)
    if msg.transaction_id != tid:
        raise StunDecodeError("transaction id of the response does not match the request")
    result.response_type = f"0x{msg.msg_type:04x}"
    sw = msg.attr(ATTR_SOFTWARE)
    if sw is not None:
        result.software = sw.decode("utf-8", "replace")
    if msg.msg_type == BINDING_ERROR:
        err = msg.attr(ATTR_ERROR_CODE) or b""
        code = (err[2] & 0x7) * 100 + err[3] if len(err) >= 4 else 0
        reason = err[4:].decode("utf-8", "replace") if len(err) > 4 else ""
        result.error = f"Binding error response {code} {reason}".strip()
        return
    if msg.msg_type != BINDING_SUCCESS:
        result.error = f"unexpected STUN message type 0x{msg.msg_type:04x} (expected 0x0101)"
        return
    xma = msg.attr(ATTR_XOR_MAPPED_ADDRESS)
    if xma is not None:
        result.mapped_address, result.mapped_port = decode_address(xma, tid, xor=True)
        result.mapped_from = "XOR-MAPPED-ADDRESS"
    else:
        ma = msg.attr(ATTR_MAPPED_ADDRESS)
        if ma is None:
            result.error = "Binding success response without XOR-MAPPED-ADDRESS or MAPPED-ADDRESS"
            return
        result.mapped_address, result.mapped_port = decode_address(ma, tid, xor=False)
        result.mapped_from = "MAPPED-ADDRESS"
    result.ok = True
    result.error = None


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def stun_binding_udp(host: str, port: int = 3478, *, timeout: float = 3.0, attempts: int = 2,
                     source: str | None = None) -> StunResult:
    """Send a Binding request over UDP; retransmit up to `attempts` times, each waiting `timeout`/attempts.

    Total wall time is bounded by `timeout` (+ scheduling noise).
    """
    result = StunResult(server=host, port=port, transport="udp")
    attempts = max(1, attempts)
    per_try = timeout / attempts
    tid = new_transaction_id()
    request = encode_binding_request(tid)
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
            if source:
                sock.bind((source, 0))
            sock.connect((host, port))
            result.local_address, result.local_port = sock.getsockname()[:2]
            for i in range(attempts):
                result.attempts = i + 1
                sent = time.monotonic()
                sock.send(request)
                try_end = min(deadline, sent + per_try)
                while True:
                    remaining = try_end - time.monotonic()
                    if remaining <= 0:
                        break
                    sock.settimeout(remaining)
                    try:
                        data = sock.recv(2048)
                    except TimeoutError:
                        break
                    except ConnectionRefusedError:
                        result.error = "ICMP port unreachable (nothing listens on UDP)"
                        return result
                    try:
                        _judge_response(result, data, tid)
                    except StunDecodeError as exc:
                        result.error = f"invalid response: {exc}"
                        continue  # a stray datagram; keep waiting for ours
                    result.rtt_ms = (time.monotonic() - sent) * 1000
                    return result
            result.error = f"no STUN response within {timeout:g} s ({result.attempts} attempt(s))"
    except OSError as exc:
        result.error = f"socket error: {exc}"
    return result


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    buf = b""
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def stun_binding_tcp(host: str, port: int = 3478, *, timeout: float = 3.0, source: str | None = None,
                     tls: bool = False, server_hostname: str | None = None,
                     ca_bundle: str | None = None) -> StunResult:
    """Binding request over TCP (RFC 5389 framing: messages back to back), optionally inside TLS."""
    result = StunResult(server=host, port=port, transport="tls" if tls else "tcp", attempts=1)
    deadline = time.monotonic() + timeout
    tid = new_transaction_id()
    try:
        sock = socket.create_connection((host, port), timeout=timeout,
                                        source_address=(source, 0) if source else None)
    except (OSError, TimeoutError) as exc:
        result.error = f"TCP connect failed: {exc}"
        return result
    try:
        if tls:
            ctx = ssl.create_default_context(cafile=ca_bundle)
            if server_hostname is None:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock = ctx.wrap_socket(sock, server_hostname=server_hostname or host)
        result.local_address, result.local_port = sock.getsockname()[:2]
        sent = time.monotonic()
        sock.sendall(encode_binding_request(tid))
        header = _recv_exact(sock, HEADER.size, deadline)
        length = struct.unpack_from("!H", header, 2)[0]
        body = _recv_exact(sock, length, deadline) if length <= 4096 else b""
        _judge_response(result, header + body, tid)
        if result.ok:
            result.rtt_ms = (time.monotonic() - sent) * 1000
    except TimeoutError:
        result.error = f"connected, but no STUN response within {timeout:g} s"
    except StunDecodeError as exc:
        result.error = f"invalid response: {exc}"
    except (OSError, ConnectionError) as exc:
        result.error = f"connected, then: {exc}"
    finally:
        sock.close()
    return result


@dataclass
class ConnectResult:
    host: str
    port: int
    ok: bool
    elapsed_ms: float
    error: str | None = None
    tls_version: str | None = None

    def evidence(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def tcp_connect(host: str, port: int, *, timeout: float = 3.0) -> ConnectResult:
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except (OSError, TimeoutError) as exc:
        return ConnectResult(host, port, False, (time.monotonic() - start) * 1000, str(exc) or type(exc).__name__)
    return ConnectResult(host, port, True, (time.monotonic() - start) * 1000)


def tls_handshake(host: str, port: int, *, timeout: float = 3.0, server_hostname: str | None = None,
                  ca_bundle: str | None = None, verify: bool = True) -> ConnectResult:
    """Complete a TLS handshake (TURN over TLS on 5349); verifies the certificate unless verify=False."""
    start = time.monotonic()
    ctx = ssl.create_default_context(cafile=ca_bundle)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            raw.settimeout(timeout)
            with ctx.wrap_socket(raw, server_hostname=server_hostname or host) as tls:
                version = tls.version()
    except (OSError, TimeoutError) as exc:
        return ConnectResult(host, port, False, (time.monotonic() - start) * 1000, str(exc) or type(exc).__name__)
    return ConnectResult(host, port, True, (time.monotonic() - start) * 1000, tls_version=version)
