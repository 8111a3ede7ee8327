"""A real DNS server for the tests: dnsmasq in the foreground on a 127.0.0.x address and a high port.

`Zone` describes what the server answers (A/AAAA, CNAME, TXT, MX, SRV, CAA records); `DnsmasqServer`
turns it into dnsmasq's command line, starts it with subprocess.Popen, waits until it answers, and
stops and reaps it on exit (also when the test fails).  `SilentResolver` is a UDP socket that reads
queries and never answers, for the "resolver times out" cases.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import dns.message
import dns.query
import dns.rcode

from tests.support.freeport import free_port

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


@dataclass
class Zone:
    """Records of one test zone, in a form close to what an operator publishes."""

    domain: str
    a: dict[str, list[str]] = field(default_factory=dict)  # name -> IPv4 and/or IPv6 addresses
    cname: dict[str, str] = field(default_factory=dict)  # alias -> target
    # name -> TXT records; a record is one string or a tuple of character strings (as long SPF records are)
    txt: dict[str, list[str | tuple[str, ...]]] = field(default_factory=dict)
    mx: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # name -> [(exchange, preference)]
    srv: dict[str, list[tuple[str, int, int, int]]] = field(default_factory=dict)  # name -> [(target, port, prio, weight)]
    caa: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)  # name -> [(flags, tag, value)]
    ttl: int = 600

    def fqdn(self, label: str) -> str:
        """`label` under the zone's domain; "@" is the domain itself; names with a dot are kept."""
        if label == "@":
            return self.domain
        if label.endswith("."):
            return label.rstrip(".")
        return f"{label}.{self.domain}"

    def dnsmasq_args(self) -> list[str]:
        # Authoritative for the whole top-level label, so parents (CAA climbing) get NXDOMAIN, not REFUSED.
        args = [f"--local=/{self.domain.rsplit('.', 1)[-1]}/", f"--local-ttl={self.ttl}"]
        for name, addresses in self.a.items():
            for address in addresses:
                args.append(f"--host-record={self.fqdn(name)},{address}")
        for alias, target in self.cname.items():
            args.append(f"--cname={self.fqdn(alias)},{self.fqdn(target)}")
        for name, records in self.txt.items():
            for record in records:
                strings = (record,) if isinstance(record, str) else record
                if any("," in string for string in strings):
                    # dnsmasq splits its argument at commas into character strings.
                    raise ValueError(f"TXT strings for dnsmasq cannot contain commas: {strings!r}")
                args.append(f"--txt-record={self.fqdn(name)}," + ",".join(strings))
        for name, exchanges in self.mx.items():
            for exchange, preference in exchanges:
                args.append(f"--mx-host={self.fqdn(name)},{self.fqdn(exchange)},{preference}")
        for name, services in self.srv.items():
            for target, port, priority, weight in services:
                args.append(f"--srv-host={self.fqdn(name)},{self.fqdn(target)},{port},{priority},{weight}")
        for name, entries in self.caa.items():
            for flags, tag, value in entries:
                # CAA rdata (RFC 8659): flags octet, tag length octet, tag, value; dnsmasq takes hex.
                rdata = bytes([flags, len(tag)]) + tag.encode() + value.encode()
                args.append(f"--dns-rr={self.fqdn(name)},257,{rdata.hex()}")
        return args


class DnsmasqServer:
    """dnsmasq serving `zone` on address:port (UDP and TCP); use as a context manager."""

    def __init__(self, zone: Zone, address: str = "127.0.0.53", port: int | None = None) -> None:
        self.zone = zone
        self.address = address
        self.port = port or free_port(address)
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False

    @property
    def nameserver(self) -> str:
        """The server as the `--nameserver` option takes it."""
        return f"{self.address}:{self.port}"

    def argv(self) -> list[str]:
        return [
            DNSMASQ,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            f"--listen-address={self.address}",
            "--except-interface=none",
            f"--port={self.port}",
            "--pid-file=",
            "--user=root",
            "--group=root",
            "--log-facility=-",
            *self.zone.dnsmasq_args(),
        ]

    def start(self, ready_timeout: float = 10.0) -> DnsmasqServer:
        self.proc = subprocess.Popen(
            self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + ready_timeout
        query = dns.message.make_query(self.zone.domain, "SOA")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                output = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
                raise RuntimeError(f"dnsmasq exited with {self.proc.returncode}: {output.strip()}")
            try:
                dns.query.udp(query, self.address, port=self.port, timeout=0.2, ignore_unexpected=True)
                return self
            except (dns.exception.Timeout, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dnsmasq on {self.nameserver} did not answer within {ready_timeout}s")

    def pause(self) -> None:
        """SIGSTOP the server: it keeps its socket but answers nothing (a resolver that hangs)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if self.stopped:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        else:
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> DnsmasqServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class SilentResolver:
    """A UDP socket on address:port that reads every query and never replies."""

    def __init__(self, address: str = "127.0.0.54") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 0))
        self.sock.settimeout(0.1)
        self.address, self.port = self.sock.getsockname()
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="silent-resolver", daemon=True)

    @property
    def nameserver(self) -> str:
        return f"{self.address}:{self.port}"

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                self.sock.recvfrom(4096)
                self.queries += 1
            except TimeoutError:
                continue
            except OSError:
                return

    def __enter__(self) -> SilentResolver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def wire_zone(domain: str, wire_ip: str, **changes: object) -> Zone:
    """A demo zone in which everything is right: the seven names, SPF, DMARC, CAA for Let's Encrypt."""
    names = ["nginz-https", "nginz-ssl", "assets", "webapp", "account", "teams", "sftd"]
    zone = Zone(
        domain=domain,
        a={"@": [wire_ip], **{name: [wire_ip] for name in names}, "mail": [wire_ip]},
        txt={"@": [f"v=spf1 a mx ip4:{wire_ip} -all"], "_dmarc": [f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}"]},
        mx={"@": [("mail", 10)]},
        caa={"@": [(0, "issue", "letsencrypt.org")]},
    )
    for key, value in changes.items():
        setattr(zone, key, value)
    return zone
