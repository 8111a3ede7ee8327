"""Closed vs filtered, from the packets that come back (scapy).

Used where the cooperative listener cannot prove anything: a port already in use on the target,
or a port that did not get through and should be described (dropped vs rejected). Sends raw probes,
so it needs root (CAP_NET_RAW) on the machine running it. ICMP errors are rate-limited by the
target's kernel (about 6 back to back, then 1 per second per peer), so callers classify a few sample
ports, not whole ranges.
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterable

#: scapy's configuration is global (conf.L3socket): one exchange at a time
_SCAPY_LOCK = threading.Lock()
#: the routing table scapy last read (see _routes_changed)
_ROUTES: dict[str, object] = {}
_ROUTES_LOCK = threading.Lock()

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
    with _ROUTES_LOCK:
        # namespaces and veths may have appeared since scapy read the routes; reading them again costs
        # a tenth of a second of CPU on a machine with many interfaces, so only when they changed
        key = _routing_key()
        if key is None or key != _ROUTES.get("key"):
            conf.route.resync()
            _ROUTES["key"] = key
    return conf, IP, TCP, UDP, ICMP, IPerror, sr


def _routing_key() -> tuple | None:
    """The kernel's IPv4 routes and the interfaces, as this process sees them (None: unknown, read
    the routes again).  A new address brings its prefix route, a new interface its index."""
    try:
        with open("/proc/net/route", encoding="ascii", errors="replace") as fh:
            routes = fh.read()
        return routes, tuple(sorted(socket.if_nameindex()))
    except OSError:
        return None


def _exchange(sr, pkts, address: str, timeout: float, retries: int):
    """sr() that only reads what can answer a probe of address: its packets and ICMP errors (from it
    or a router on the way). Without the filter scapy dissects every packet on the machine while
    it waits (other probes' datagrams included); without libpcap to compile it, it does that."""
    from scapy.error import Scapy_Exception
    try:
        return sr(pkts, timeout=timeout, retry=retries, inter=0.01, filter=f"host {address} or icmp")
    except (ImportError, OSError, Scapy_Exception) as exc:
        if "filter" not in str(exc).lower() and "pcap" not in str(exc).lower():
            raise
    return sr(pkts, timeout=timeout, retry=retries, inter=0.01)


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
    return classify_batch(address, ports, (), timeout, retries)[0]


def classify_tcp(address: str, ports: Iterable[int], timeout: float = 1.5, retries: int = 1) -> dict[int, str]:
    """Per port: ``open (SYN/ACK)``, ``closed (RST)`` (reached a host, nothing listening, or a
    ``REJECT --reject-with tcp-reset``), ``filtered (rejected) (ICMP ...)`` or ``filtered (dropped ...)``.
    """
    return classify_batch(address, (), ports, timeout, retries)[1]


def classify_batch(address: str, udp_ports: Iterable[int], tcp_ports: Iterable[int], timeout: float = 0.6,
                   retries: int = 1) -> tuple[dict[int, str], dict[int, str]]:
    """classify_udp and classify_tcp in one exchange: every probe goes out at once and one wait covers
    all of them (a host with a dropped UDP band and a dropped TCP port pays the wait once)."""
    udp_ports, tcp_ports = sorted(set(udp_ports)), sorted(set(tcp_ports))
    if not udp_ports and not tcp_ports:
        return {}, {}
    conf, IP, TCP, UDP, ICMP, IPerror, sr = _scapy()
    sport = random.randint(20000, 30000)
    pkts = [IP(dst=address) / UDP(sport=sport, dport=p) / b"wirecheck-classify" for p in udp_ports]
    pkts += [IP(dst=address) / TCP(sport=sport + 1, dport=p, flags="S", seq=random.randint(1, 2**31))
             for p in tcp_ports]
    sock = _l3socket(address)
    with _SCAPY_LOCK:
        old = conf.L3socket
        try:
            if sock is not None:
                conf.L3socket = sock
            answered, _unanswered = _exchange(sr, pkts, address, timeout, retries)
        finally:
            conf.L3socket = old
    udp_out = {p: NO_REPLY for p in udp_ports}
    tcp_out = {p: FILTERED_DROPPED for p in tcp_ports}
    for sent, reply in answered:
        if sent.haslayer(UDP):
            port = int(sent[UDP].dport)
            if reply.haslayer(ICMP) and int(reply[ICMP].type) == 3:
                udp_out[port] = _icmp_verdict(reply[ICMP])
            elif reply.haslayer(UDP):
                udp_out[port] = f"{OPEN} (answered)"
        else:
            port = int(sent[TCP].dport)
            if reply.haslayer(ICMP) and int(reply[ICMP].type) == 3:
                tcp_out[port] = _icmp_verdict(reply[ICMP])
            elif reply.haslayer(TCP):
                flags = str(reply[TCP].flags)
                if "S" in flags and "A" in flags:
                    tcp_out[port] = f"{OPEN} (SYN/ACK)"
                elif "R" in flags:
                    tcp_out[port] = f"{CLOSED} (RST)"
    return udp_out, tcp_out


def warm_up() -> None:
    """Import scapy ahead of time (about a second), e.g. in a thread while the probe runs."""
    try:
        _scapy()
    except Exception:  # noqa: BLE001 - the classification itself reports what is wrong
        pass
