"""TLS fetching: handshakes with SNI against an address (never verifying, so weak keys, old protocols
and broken chains are reported rather than crash the probe), the protocol versions and cipher suites
a server accepts, and operator-supplied PEM files read before install.

tls.py re-exports these names.
"""

from __future__ import annotations

import datetime as dt
import select
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from OpenSSL import SSL

from .tls_certs import CertInfo, cert_info
from .tls_verify import ChainCheck, _role, verify_for_name

DEFAULT_TIMEOUT = 5.0
VERSIONS: dict[str, int] = {
    "TLSv1": SSL.TLS1_VERSION,
    "TLSv1.1": SSL.TLS1_1_VERSION,
    "TLSv1.2": SSL.TLS1_2_VERSION,
    "TLSv1.3": SSL.TLS1_3_VERSION,
}
TLS13_SUITES = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
)
# Let the probe talk to anything (1024-bit keys, SHA-1, TLS 1.0) so it can report it.
PERMISSIVE_CIPHERS = b"ALL:COMPLEMENTOFALL:@SECLEVEL=0"
# For looking at the certificate: anything that carries one (anonymous suites send none).
CERTIFICATE_CIPHERS = b"ALL:!aNULL:@SECLEVEL=0"


# --------------------------------------------------------------------------------------------------
# Handshakes


class TlsProbeError(Exception):
    """The handshake could not be completed (refused, timeout, protocol alert)."""


def _ssl_error_text(exc: BaseException) -> str:
    if isinstance(exc, SSL.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        return "; ".join(str(part[-1]) for part in exc.args[0])
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _context(
    min_version: int | None, max_version: int | None, ciphers: bytes, tls13_suites: bytes | None
) -> SSL.Context:
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_verify(SSL.VERIFY_NONE)
    context.set_cipher_list(ciphers)
    if tls13_suites is not None:
        context.set_tls13_ciphersuites(tls13_suites)
    context.set_min_proto_version(min_version or SSL.TLS1_VERSION)
    if max_version:
        context.set_max_proto_version(max_version)
    context.set_options(SSL.OP_NO_TICKET)
    return context


def _wait(sock: socket.socket, for_write: bool, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("TLS handshake timed out")
    readable, writable, _ = select.select([] if for_write else [sock], [sock] if for_write else [], [], remaining)
    if not readable and not writable:
        raise TimeoutError("TLS handshake timed out")


@dataclass
class Handshake:
    protocol: str
    cipher: str
    chain: list[x509.Certificate]


def handshake(
    address: str,
    port: int,
    sni: str | None,
    timeout: float = DEFAULT_TIMEOUT,
    min_version: int | None = None,
    max_version: int | None = None,
    ciphers: bytes = PERMISSIVE_CIPHERS,
    tls13_suites: bytes | None = None,
) -> Handshake:
    """One handshake to address:port with SNI `sni`; raises TlsProbeError with the reason."""
    deadline = time.monotonic() + timeout
    try:
        context = _context(min_version, max_version, ciphers, tls13_suites)
    except SSL.Error as exc:
        raise TlsProbeError(f"client cannot offer this: {_ssl_error_text(exc)}") from exc
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise TlsProbeError(f"TCP connect to {address}:{port} failed: {exc}") from exc
    try:
        sock.setblocking(False)
        conn = SSL.Connection(context, sock)
        if sni:
            conn.set_tlsext_host_name(sni.encode("idna"))
        conn.set_connect_state()
        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                _wait(sock, False, deadline)
            except SSL.WantWriteError:
                _wait(sock, True, deadline)
        chain = conn.get_peer_cert_chain(as_cryptography=True) or []
        result = Handshake(
            protocol=conn.get_protocol_version_name(),
            cipher=conn.get_cipher_name() or "",
            chain=list(chain),
        )
        try:
            conn.shutdown()
        except SSL.Error:
            pass
        return result
    except TimeoutError as exc:
        raise TlsProbeError(f"no TLS handshake with {address}:{port} within {timeout:g}s") from exc
    except (SSL.Error, OSError) as exc:
        raise TlsProbeError(_ssl_error_text(exc) or "connection closed during handshake") from exc
    finally:
        sock.close()


@dataclass
class TlsReport:
    address: str
    port: int
    sni: str | None
    error: str = ""  # handshake failure; the rest is empty then
    protocol: str = ""
    cipher: str = ""
    leaf: CertInfo | None = None
    chain_sent: list[CertInfo] = field(default_factory=list)  # as the server sent it, leaf first
    certificates: list[x509.Certificate] = field(default_factory=list)  # the same, parsed
    check: ChainCheck | None = None  # cryptography's verification for the SNI name, at the time of the run
    ca_bundle: str | None = None

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def verified(self) -> bool:
        return bool(self.check and self.check.ok and not self.check.problems)

    def covers(self, name: str) -> bool:
        """By the SANs (RFC 6125), to explain a verdict; the verdict itself is cryptography's."""
        return bool(self.leaf and self.leaf.covers(name))

    def evidence(self) -> dict[str, object]:
        data: dict[str, object] = {"address": f"{self.address}:{self.port}", "sni": self.sni}
        if self.error:
            data["error"] = self.error
            return data
        assert self.leaf is not None
        data.update(self.leaf.evidence())
        data.update(
            protocol=self.protocol,
            cipher=self.cipher,
            chain_sent=chain_evidence(self.chain_sent),
            trust_store=self.ca_bundle or "system",
            days_left=round(self.leaf.days_left(), 1),
        )
        if self.check:
            data["verification"] = self.check.evidence()
        return data


def chain_evidence(chain: Sequence[CertInfo], now: dt.datetime | None = None) -> list[dict[str, object]]:
    total = len(chain)
    return [{"position": _role(i, total), **cert.evidence(), "validity": cert.validity(now),
             "extended_key_usage": cert.extended_key_usage} for i, cert in enumerate(chain)]  # fmt: skip


def inspect_tls(
    address: str,
    port: int = 443,
    sni: str | None = None,
    ca_bundle: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    now: dt.datetime | None = None,
) -> TlsReport:
    """Handshake with SNI `sni` at address:port, describe the chain the server sends and verify it for
    `sni` as a client would at `now` (default: the time of the handshake)."""
    report = TlsReport(address=address, port=port, sni=sni, ca_bundle=ca_bundle)
    try:
        result = handshake(address, port, sni, timeout, ciphers=CERTIFICATE_CIPHERS)
    except TlsProbeError as exc:
        report.error = str(exc)
        return report
    if not result.chain:
        report.error = "server sent no certificate"
        return report
    report.protocol, report.cipher = result.protocol, result.cipher
    report.certificates = list(result.chain)
    report.leaf = cert_info(result.chain[0])
    report.chain_sent = [cert_info(cert) for cert in result.chain]
    if sni:
        report.check = verify_for_name(result.chain, sni, ca_bundle, now)
    return report


def offered_versions(
    address: str, port: int, sni: str | None, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, str]:
    """For each protocol version: the cipher the server picked, or 'rejected: <why>'."""
    offered: dict[str, str] = {}
    for name, version in VERSIONS.items():
        try:
            result = handshake(address, port, sni, timeout, min_version=version, max_version=version)
            offered[name] = result.cipher
        except TlsProbeError as exc:
            if "no TLS handshake" in str(exc) or "TCP connect" in str(exc):
                raise
            offered[name] = f"rejected: {exc}"
    return offered


def accepted_ciphers(
    address: str, port: int, sni: str | None, version: str, timeout: float = DEFAULT_TIMEOUT, limit: int = 64
) -> list[str]:
    """Cipher suites the server accepts for `version`, found by repeatedly offering all but the ones
    already seen (the server picks one each time), so it takes one handshake per accepted suite + 1."""
    number = VERSIONS[version]
    accepted: list[str] = []
    for _ in range(limit):
        try:
            if version == "TLSv1.3":
                remaining = [suite for suite in TLS13_SUITES if suite not in accepted]
                if not remaining:
                    break
                result = handshake(
                    address, port, sni, timeout, number, number, tls13_suites=":".join(remaining).encode()
                )
            else:
                excluded = "".join(f":!{suite}" for suite in accepted)
                result = handshake(
                    address, port, sni, timeout, number, number, ciphers=PERMISSIVE_CIPHERS + excluded.encode()
                )
        except TlsProbeError as exc:
            if "no TLS handshake" in str(exc) or "TCP connect" in str(exc):
                raise
            break
        if not result.cipher or result.cipher in accepted:
            break
        accepted.append(result.cipher)
    return accepted


# --------------------------------------------------------------------------------------------------
# Operator-supplied PEM files (before install)


@dataclass
class PemBundleReport:
    leaf: CertInfo | None = None
    chain: list[CertInfo] = field(default_factory=list)  # everything in the file, in file order
    certificates: list[x509.Certificate] = field(default_factory=list)  # the same, parsed
    key_type: str = ""
    key_matches: bool = False
    key_error: str = ""
    checks: dict[str, ChainCheck] = field(default_factory=dict)  # per name: verified as a client would
    order_ok: bool = True  # each certificate is issued by the next one
    error: str = ""  # the certificate file itself could not be read


def _key_kind(key: object) -> str:
    for kind, cls in (("RSA", rsa.RSAPrivateKey), ("EC", ec.EllipticCurvePrivateKey), ("Ed25519", ed25519.Ed25519PrivateKey)):
        if isinstance(key, cls):
            return kind
    return type(key).__name__


def inspect_pem(
    cert_pem: bytes,
    key_pem: bytes | None = None,
    ca_bundle: str | None = None,
    names: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> PemBundleReport:
    """Parse a PEM certificate bundle (leaf first) and its private key; check the key matches and verify
    the chain for each of `names` as a client would at `now`."""
    report = PemBundleReport()
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        report.error = f"no PEM certificate could be read: {exc}"
        return report
    report.certificates = certs
    report.chain = [cert_info(cert) for cert in certs]
    report.leaf = report.chain[0]
    for child, parent in zip(certs, certs[1:], strict=False):
        if child.issuer != parent.subject:
            report.order_ok = False
    if key_pem is not None:
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as exc:
            report.key_error = f"private key unreadable (encrypted or not PEM): {exc}"
        else:
            report.key_type = _key_kind(key)
            fmt = serialization.PublicFormat.SubjectPublicKeyInfo
            mine = key.public_key().public_bytes(serialization.Encoding.DER, fmt)  # type: ignore[union-attr]
            theirs = certs[0].public_key().public_bytes(serialization.Encoding.DER, fmt)
            report.key_matches = mine == theirs
            if not report.key_matches:
                report.key_error = "the private key does not belong to the certificate's public key"
    now = now or dt.datetime.now(dt.UTC)
    report.checks = {name: verify_for_name(certs, name, ca_bundle, now, holder="file") for name in names}
    return report
