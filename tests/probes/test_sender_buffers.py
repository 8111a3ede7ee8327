"""The sendmmsg(2) buffers of the sender (udp_sender.batch_buffers), read back as the kernel reads them:
each datagram goes to its own port with the run's token and that port in its payload."""

from __future__ import annotations

import ctypes
import socket
import struct

import pytest

from wirecheck.probes import udp_listener as agent
from wirecheck.probes import udp_sender as sender

TOKEN = b"0123456789abcdef"


def read_back(hdrs, n: int) -> list[tuple[int, int, str, int, bytes]]:
    out = []
    for i in range(n):
        name, namelen, iov, iovlen = hdrs[8 * i], hdrs[8 * i + 1], hdrs[8 * i + 2], hdrs[8 * i + 3]
        assert iovlen == 1 and namelen & 0xFFFFFFFF == 16 and not any(hdrs[8 * i + 4:8 * i + 8])
        sa = ctypes.string_at(name, 16)
        base, length = struct.unpack("=QQ", ctypes.string_at(iov, 16))
        out.append((struct.unpack("=H", sa[:2])[0], int.from_bytes(sa[2:4], "big"), socket.inet_ntoa(sa[4:8]),
                    length, ctypes.string_at(base, length)))
    return out


@pytest.mark.parametrize(("ports", "size"), [
    (list(range(32768, 65536)), 0),            # the whole range: one width of digits
    ([1, 80, 443, 3478, 9999, 65535], 0),      # mixed widths: zero-padded
    ([32768, 40000], 1400),                    # padded to a size (the path-MTU probe)
])
def test_every_datagram_carries_its_own_port(ports: list[int], size: int) -> None:
    hdrs, _keep = sender.batch_buffers(ctypes, "198.18.7.9", ports, TOKEN, size)
    got = read_back(hdrs, len(ports))
    assert [g[1] for g in got] == ports
    assert {(g[0], g[2]) for g in got} == {(socket.AF_INET, "198.18.7.9")}
    assert [agent.parse_payload(g[4], TOKEN) for g in got] == ports
    assert all(agent.parse_payload(g[4], b"fedcba9876543210") is None for g in got)
    lengths = {g[3] for g in got}
    assert len(lengths) == 1 and (size == 0 or lengths == {size})


def test_sent_over_loopback_each_port_gets_its_own_datagram() -> None:
    socks = []
    try:
        for _ in range(8):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
            socks.append(s)
        ports = [s.getsockname()[1] for s in socks]
        mmsg = sender.sendmmsg_function()
        assert mmsg is not None
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            assert sender.send_batch(mmsg, out, "127.0.0.1", ports, TOKEN, 0, retry=False) == (8, {})
        finally:
            out.close()
        for s, port in zip(socks, ports, strict=True):
            assert agent.parse_payload(s.recv(2048), TOKEN) == port
    finally:
        for s in socks:
            s.close()
