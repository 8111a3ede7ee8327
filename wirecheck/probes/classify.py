"""Closed vs filtered, from the packets that come back (scapy).

Used where the cooperative listener cannot prove anything: a port already in use on the target,
or a port that did not get through and should be described (dropped vs rejected). Sends raw probes,
so it needs root (CAP_NET_RAW) on the machine running it. ICMP errors are rate-limited by the
target's kernel (about 6 back to back, then 1 per second per peer), so callers classify a few sample
ports, not whole ranges.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

# ICMP destination-unreachable codes
_ICMP_TEXT = {
    0: "net unreachable",
    1: "host unreachable",
    3: "port unreachable",
    9: "net administratively prohibited",
    10: "host administratively prohibited",
    13: "communication administratively prohibited",
}

OPEN = "open"
CLOSED = "closed"
FILTERED_REJECTED = "filtered (rejected)"
FILTERED_DROPPED = "filtered (dropped: no reply)"
NO_REPLY = "no reply (dropped by a firewall, or a service that ignores the probe)"


def _scapy():
    # Imported lazily: scapy takes about a second to import and needs root only when sending.
    from scapy.config import conf
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror
    from scapy.sendrecv import sr

    conf.verb = 0
    conf.route.resync()  # namespaces and veths may have appeared since scapy was imported
    return conf, IP, TCP, UDP, ICMP, IPerror, sr


def _l3socket(address: str):
    """Loopback needs a raw IP socket; scapy's default packet socket does not see it."""
    from scapy.config import conf
    from scapy.supersocket import L3RawSocket

    iface = conf.route.route(address)[0]
    if address.startswith("127.") or str(iface) == "lo":
        return L3RawSocket
    return None


def _icmp_verdict(icmp) -> str:
    code = int(icmp.code)
    text = _ICMP_TEXT.get(code, f"code {code}")
    if code == 3:
        return f"{CLOSED} (ICMP {text})"
    return f"{FILTERED_REJECTED} (ICMP {text})"


def classify_udp(address: str, ports: Iterable[int], timeout: float = 1.0, retries: int = 1) -> dict[int, str]:
    """Per port: ``closed (ICMP port unreachable)`` (nothing listens, or a REJECT that mimics it),
    ``filtered (rejected) (ICMP ... prohibited)``, ``open (answered)`` or ``no reply ...``.
    """
    ports = sorted(set(ports))
    if not ports:
        return {}
    conf, IP, _TCP, UDP, ICMP, _IPerror, sr = _scapy()
    sport = random.randint(20000, 30000)
    pkts = [IP(dst=address) / UDP(sport=sport, dport=p) / b"wirecheck-classify" for p in ports]
    sock = _l3socket(address)
    old = conf.L3socket
    try:
        if sock is not None:
            conf.L3socket = sock
        answered, _unanswered = sr(pkts, timeout=timeout, retry=retries, inter=0.02)
    finally:
        conf.L3socket = old
    out = {p: NO_REPLY for p in ports}
    for sent, reply in answered:
        port = int(sent[UDP].dport)
        if reply.haslayer(ICMP) and int(reply[ICMP].type) == 3:
            out[port] = _icmp_verdict(reply[ICMP])
        elif reply.haslayer(UDP):
            out[port] = f"{OPEN} (answered)"
    return out


def classify_tcp(address: str, ports: Iterable[int], timeout: float = 1.5, retries: int = 1) -> dict[int, str]:
    """Per port: ``open (SYN/ACK)``, ``closed (RST)`` (reached a host, nothing listening, or a
    ``REJECT --reject-with tcp-reset``), ``filtered (rejected) (ICMP ...)`` or ``filtered (dropped ...)``.
    """
    ports = sorted(set(ports))
    if not ports:
        return {}
    conf, IP, TCP, _UDP, ICMP, _IPerror, sr = _scapy()
    sport = random.randint(20000, 30000)
    pkts = [IP(dst=address) / TCP(sport=sport, dport=p, flags="S", seq=random.randint(1, 2**31)) for p in ports]
    sock = _l3socket(address)
    old = conf.L3socket
    try:
        if sock is not None:
            conf.L3socket = sock
        answered, _unanswered = sr(pkts, timeout=timeout, retry=retries, inter=0.02)
    finally:
        conf.L3socket = old
    out = {p: FILTERED_DROPPED for p in ports}
    for sent, reply in answered:
        port = int(sent[TCP].dport)
        if reply.haslayer(ICMP) and int(reply[ICMP].type) == 3:
            out[port] = _icmp_verdict(reply[ICMP])
        elif reply.haslayer(TCP):
            flags = str(reply[TCP].flags)
            if "S" in flags and "A" in flags:
                out[port] = f"{OPEN} (SYN/ACK)"
            elif "R" in flags:
                out[port] = f"{CLOSED} (RST)"
    return out
