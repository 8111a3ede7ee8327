"""TLS probe: handshakes with SNI, certificate facts, chain verification, RFC 6125 name matching.

Everything works against an address rather than a name, so a certificate on `wire_ip`:443 can be
inspected before public DNS exists.  The handshake itself never verifies (weak keys, old protocols and
broken chains must be *reported*, not crash the probe); verification is done afterwards against the
system store or a CA bundle, and the host name is matched against the SANs here (pyOpenSSL does not).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import select
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL, crypto

from wirecheck.probes.dns import Assessment

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
# Host name matching (RFC 6125 §6.4)


def _labels(name: str) -> list[str]:
    return name.rstrip(".").lower().split(".")


def _pattern_matches(hostname: str, pattern: str) -> bool:
    host = _labels(hostname)
    pat = _labels(pattern)
    if len(host) != len(pat) or not all(pat):
        return False
    first, rest = pat[0], pat[1:]
    if "*" not in first:
        return host == pat and "*" not in pattern
    # A wildcard only as the complete left-most label, covering exactly one label, and never
    # directly under a public-suffix-like single label ("*.com") nor in an IDN A-label.
    if first != "*" or any("*" in label for label in rest) or len(rest) < 2:
        return False
    if host[0].startswith("xn--"):
        return False
    return host[1:] == rest and host[0] != ""


def hostname_matches(name: str, dns_sans: Iterable[str], ip_sans: Iterable[str] = ()) -> bool:
    """Does a certificate with these SANs cover `name`? (RFC 6125; no CN fallback.)"""
    return matching_san(name, dns_sans, ip_sans) is not None


def matching_san(name: str, dns_sans: Iterable[str], ip_sans: Iterable[str] = ()) -> str | None:
    """The SAN entry that covers `name`, or None."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None:
        for entry in ip_sans:
            if ipaddress.ip_address(entry) == address:
                return entry
        return None
    for entry in dns_sans:
        if _pattern_matches(name, entry):
            return entry
    return None


# --------------------------------------------------------------------------------------------------
# Certificate facts


@dataclass
class CertInfo:
    subject: str
    issuer: str
    common_name: str | None
    dns_names: list[str]
    ip_addresses: list[str]
    not_before: dt.datetime
    not_after: dt.datetime
    serial: str
    key_type: str  # RSA | EC | Ed25519 | Ed448 | DSA
    key_bits: int
    curve: str | None
    signature_algorithm: str
    extended_key_usage: list[str]
    key_usage: list[str]
    is_ca: bool
    self_signed: bool
    sha256: str

    @property
    def sans(self) -> list[str]:
        return [f"DNS:{name}" for name in self.dns_names] + [f"IP:{ip}" for ip in self.ip_addresses]

    def covers(self, name: str) -> bool:
        return hostname_matches(name, self.dns_names, self.ip_addresses)

    def days_left(self, now: dt.datetime | None = None) -> float:
        now = now or dt.datetime.now(dt.UTC)
        return (self.not_after - now).total_seconds() / 86400

    def validity(self, now: dt.datetime | None = None) -> str:
        """'valid' | 'expired' | 'not yet valid'."""
        now = now or dt.datetime.now(dt.UTC)
        if now < self.not_before:
            return "not yet valid"
        if now > self.not_after:
            return "expired"
        return "valid"

    @property
    def key_text(self) -> str:
        return f"{self.key_type} {self.curve}" if self.curve else f"{self.key_type} {self.key_bits}"

    def evidence(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "sans": self.sans,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "key": self.key_text,
            "signature_algorithm": self.signature_algorithm,
            "serial": self.serial,
            "sha256": self.sha256,
        }


def cert_info(cert: x509.Certificate) -> CertInfo:
    key = cert.public_key()
    curve = None
    if isinstance(key, rsa.RSAPublicKey):
        key_type, bits = "RSA", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_type, bits, curve = "EC", key.curve.key_size, key.curve.name
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key_type, bits = "Ed25519", 256
    elif isinstance(key, ed448.Ed448PublicKey):
        key_type, bits = "Ed448", 456
    elif isinstance(key, dsa.DSAPublicKey):
        key_type, bits = "DSA", key.key_size
    else:
        key_type, bits = type(key).__name__, 0
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = san.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns_names, ips = [], []
    try:
        eku = [
            oid._name if oid._name != "Unknown OID" else oid.dotted_string
            for oid in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ]
    except x509.ExtensionNotFound:
        eku = []
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        key_usage = [
            label
            for label, flag in (
                ("digitalSignature", usage.digital_signature),
                ("keyEncipherment", usage.key_encipherment),
                ("keyCertSign", usage.key_cert_sign),
            )
            if flag
        ]
    except x509.ExtensionNotFound:
        key_usage = []
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        signature = cert.signature_hash_algorithm
        signature_name = f"{signature.name}-{key_type}" if signature else cert.signature_algorithm_oid._name
    except Exception:  # unsupported algorithms raise; the OID name is enough for the report
        signature_name = cert.signature_algorithm_oid._name
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=str(cns[0].value) if cns else None,
        dns_names=list(dns_names),
        ip_addresses=ips,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=format(cert.serial_number, "x"),
        key_type=key_type,
        key_bits=bits,
        curve=curve,
        signature_algorithm=signature_name,
        extended_key_usage=eku,
        key_usage=key_usage,
        is_ca=is_ca,
        self_signed=cert.subject == cert.issuer,
        sha256=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )


EKU_SERVER = ExtendedKeyUsageOID.SERVER_AUTH._name
EKU_CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH._name


# --------------------------------------------------------------------------------------------------
# Chain verification


@functools.lru_cache(maxsize=8)
def _trust_store_paths(ca_bundle: str | None) -> tuple[str | None, str | None]:
    if ca_bundle:
        path = Path(ca_bundle)
        return (None, str(path)) if path.is_dir() else (str(path), None)
    paths = ssl.get_default_verify_paths()
    return paths.cafile, paths.capath


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    ca_bundle: str | None = None,
    at: dt.datetime | None = None,
) -> tuple[bool, str]:
    """Does `leaf` chain to a trusted root through `intermediates`? -> (ok, OpenSSL's reason)."""
    store = crypto.X509Store()
    cafile, capath = _trust_store_paths(ca_bundle)
    try:
        store.load_locations(cafile, capath)
    except crypto.Error as exc:
        return False, f"cannot load trust store {ca_bundle or cafile or capath}: {exc}"
    if at is not None:
        store.set_time(at.replace(tzinfo=None))
    context = crypto.X509StoreContext(
        store,
        crypto.X509.from_cryptography(leaf),
        [crypto.X509.from_cryptography(cert) for cert in intermediates],
    )
    try:
        context.verify_certificate()
    except crypto.X509StoreContextError as exc:
        return False, f"{exc} (at depth {exc.errors[1] if len(exc.errors) > 1 else '?'})"
    return True, ""


def verify_trust_path(
    leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], ca_bundle: str | None
) -> tuple[bool, str, bool, str]:
    """(ok now, error now, trust path ok ignoring the leaf's dates, error of that second check)."""
    ok, error = verify_chain(leaf, intermediates, ca_bundle)
    if ok or ("expired" not in error and "not yet valid" not in error):
        return ok, error, ok, error
    middle = leaf.not_valid_before_utc + (leaf.not_valid_after_utc - leaf.not_valid_before_utc) / 2
    path_ok, path_error = verify_chain(leaf, intermediates, ca_bundle, at=middle)
    return ok, error, path_ok, path_error


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
    chain_ok: bool = False  # verifies now against the trust store
    chain_error: str = ""
    trust_path_ok: bool = False  # verifies when the leaf's dates are ignored
    trust_path_error: str = ""
    ca_bundle: str | None = None

    @property
    def ok(self) -> bool:
        return not self.error

    def covers(self, name: str) -> bool:
        return bool(self.leaf and self.leaf.covers(name))

    def describe(self) -> str:
        target = f"{self.address}:{self.port} (SNI {self.sni})"
        if self.error:
            return f"{target}: {self.error}"
        assert self.leaf is not None
        chain = "chain ok" if self.chain_ok else f"chain NOT ok: {self.chain_error}"
        return (
            f"{target}: {self.protocol} {self.cipher}; subject {self.leaf.subject}; "
            f"SANs {', '.join(self.leaf.sans) or 'none'}; issuer {self.leaf.issuer}; "
            f"valid {self.leaf.not_before:%Y-%m-%d %H:%M} .. {self.leaf.not_after:%Y-%m-%d %H:%M} UTC; "
            f"key {self.leaf.key_text}; {chain}"
        )

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
            chain_sent=[cert.subject for cert in self.chain_sent],
            chain_ok=self.chain_ok,
            chain_error=self.chain_error,
            trust_store=self.ca_bundle or "system",
            days_left=round(self.leaf.days_left(), 1),
        )
        return data


def inspect_tls(
    address: str,
    port: int = 443,
    sni: str | None = None,
    ca_bundle: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> TlsReport:
    """Handshake with SNI `sni` at address:port and describe the certificate the server sends."""
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
    report.leaf = cert_info(result.chain[0])
    report.chain_sent = [cert_info(cert) for cert in result.chain]
    ok, error, path_ok, path_error = verify_trust_path(result.chain[0], result.chain[1:], ca_bundle)
    report.chain_ok, report.chain_error = ok, error
    report.trust_path_ok, report.trust_path_error = path_ok, path_error
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
    key_type: str = ""
    key_matches: bool = False
    key_error: str = ""
    chain_ok: bool = False
    chain_error: str = ""
    trust_path_ok: bool = False
    trust_path_error: str = ""
    order_ok: bool = True  # each certificate is issued by the next one
    error: str = ""  # the certificate file itself could not be read


def _key_kind(key: object) -> str:
    for kind, cls in (("RSA", rsa.RSAPrivateKey), ("EC", ec.EllipticCurvePrivateKey), ("Ed25519", ed25519.Ed25519PrivateKey)):
        if isinstance(key, cls):
            return kind
    return type(key).__name__


def inspect_pem(cert_pem: bytes, key_pem: bytes | None = None, ca_bundle: str | None = None) -> PemBundleReport:
    """Parse a PEM certificate bundle (leaf first) and its private key; verify key match and chain."""
    report = PemBundleReport()
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        report.error = f"no PEM certificate could be read: {exc}"
        return report
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
    ok, error, path_ok, path_error = verify_trust_path(certs[0], certs[1:], ca_bundle)
    report.chain_ok, report.chain_error = ok, error
    report.trust_path_ok, report.trust_path_error = path_ok, path_error
    return report


# --------------------------------------------------------------------------------------------------
# Assessments: what a check needs for a verdict (problems name the certificate to change)


def _store(ca_bundle: str | None) -> str:
    return ca_bundle or "the system trust store"


def _chain_advice(sent: list[CertInfo], error: str) -> str:
    if len(sent) == 1 and not sent[0].self_signed and "local issuer" in error:
        return "the server sends only the leaf; serve the full chain (leaf + intermediates)"
    if sent and sent[0].self_signed:
        return "the certificate is self-signed; use one from a CA clients trust"
    return "serve a chain that builds to a trusted root"


def assess_served(reports: dict[str, TlsReport]) -> Assessment:
    """TLS-SAN: for each name, the certificate served with that SNI covers it, verifies and is current."""
    result = Assessment(expected={name: "certificate covering the name, chain verified, currently valid" for name in reports})
    observed: dict[str, object] = {}
    for name, report in reports.items():
        result.evidence[name] = report.evidence()
        if report.error:
            observed[name] = f"no certificate: {report.error}"
            result.unmeasured.append(f"{name}: TLS handshake with {report.address}:{report.port} failed: {report.error}")
            continue
        assert report.leaf is not None
        leaf = report.leaf
        covered = leaf.covers(name)
        observed[name] = {"sans": leaf.sans, "chain_ok": report.chain_ok, "validity": leaf.validity()}
        if not covered:
            result.problems.append(
                f"{name}: the certificate served for SNI {name} (subject {leaf.subject}, issuer {leaf.issuer}) "
                f"does not cover {name}; its SANs are {', '.join(leaf.sans) or 'none'}: reissue it with {name} "
                f"(or *.{name.split('.', 1)[1]}) in the SAN"
            )
        if leaf.validity() != "valid":
            result.problems.append(
                f"{name}: certificate {leaf.validity()} (valid {leaf.not_before:%Y-%m-%d %H:%M} .. "
                f"{leaf.not_after:%Y-%m-%d %H:%M} UTC): renew it"
            )
        if not report.trust_path_ok:
            result.problems.append(
                f"{name}: chain does not verify against {_store(report.ca_bundle)}: {report.trust_path_error}; "
                f"{_chain_advice(report.chain_sent, report.trust_path_error)}"
            )
    result.observed = observed
    return result


def assess_expiry(
    reports: dict[str, TlsReport], warn_days: float, critical_days: float, now: dt.datetime | None = None
) -> tuple[Assessment, bool]:
    """TLS-EXPIRY: days left per distinct served certificate -> (assessment, down: expired/not yet valid)."""
    now = now or dt.datetime.now(dt.UTC)
    result = Assessment(expected=f">= {warn_days:g} days before expiry")
    down = False
    seen: dict[str, list[str]] = {}
    leaves: dict[str, CertInfo] = {}
    for name, report in reports.items():
        if report.error:
            result.unmeasured.append(f"{name}: TLS handshake with {report.address}:{report.port} failed: {report.error}")
            continue
        assert report.leaf is not None
        seen.setdefault(report.leaf.sha256, []).append(name)
        leaves[report.leaf.sha256] = report.leaf
    observed: dict[str, object] = {}
    for fingerprint, leaf in leaves.items():
        names = ", ".join(seen[fingerprint])
        days = leaf.days_left(now)
        observed[names] = {"not_after": leaf.not_after.isoformat(), "days_left": round(days, 1)}
        result.evidence[names] = {"subject": leaf.subject, "not_before": leaf.not_before.isoformat(),
                                  "not_after": leaf.not_after.isoformat(), "days_left": round(days, 1)}  # fmt: skip
        validity = leaf.validity(now)
        if validity == "expired":
            down = True
            result.problems.append(
                f"certificate for {names} (subject {leaf.subject}) expired on {leaf.not_after:%Y-%m-%d %H:%M} UTC "
                f"({-days:.1f} days ago): renew it"
            )
        elif validity == "not yet valid":
            down = True
            result.problems.append(
                f"certificate for {names} (subject {leaf.subject}) is not valid before "
                f"{leaf.not_before:%Y-%m-%d %H:%M} UTC: check the issuer's clock or serve the current certificate"
            )
        elif days < warn_days:
            level = "critical" if days < critical_days else "warning"
            result.problems.append(
                f"certificate for {names} (subject {leaf.subject}) expires on {leaf.not_after:%Y-%m-%d %H:%M} UTC, "
                f"in {days:.1f} days ({level}: under {critical_days if days < critical_days else warn_days:g} days): renew it"
            )
    result.observed = observed
    return result, down


def assess_ciphers(
    versions: dict[str, str],
    accepted: dict[str, list[str]],
    allowed_versions: Sequence[str],
    allowed_suites: Sequence[str],
    wire_default: Sequence[str] = (),
) -> Assessment:
    """TLS-CIPHERS: only the recommended protocol versions and suites are accepted."""
    result = Assessment(expected={"versions": list(allowed_versions), "suites": list(allowed_suites)})
    offered = [version for version, outcome in versions.items() if not outcome.startswith("rejected")]
    result.observed = {"versions": offered, "suites": accepted}
    result.evidence["versions"] = versions
    result.evidence["accepted_suites"] = accepted
    extra_versions = [version for version in offered if version not in allowed_versions]
    if extra_versions:
        result.problems.append(
            f"the server accepts {', '.join(extra_versions)} (allowed: {', '.join(allowed_versions)}): "
            "set ssl-protocols in the ingress-nginx-controller values"
        )
    outside = sorted({suite for suites in accepted.values() for suite in suites if suite not in allowed_suites})
    if outside:
        result.problems.append(
            f"the server accepts suites outside the recommended list: {', '.join(outside)}: "
            "set ssl-ciphers in the ingress-nginx-controller values"
        )
    if wire_default:
        enabled = [suite for suite in wire_default if any(suite in suites for suites in accepted.values())]
        result.evidence["wire_default_suites_enabled"] = enabled
    return result


def assess_pem(report: PemBundleReport, names: Sequence[str], ca_bundle: str | None) -> Assessment:
    """TLS-BYO-CERT: key matches, chain complete, every name covered, currently valid."""
    result = Assessment(expected="key matching the leaf, complete chain, every name in the SAN, currently valid")
    if report.error:
        result.problems.append(report.error)
        return result
    assert report.leaf is not None
    leaf = report.leaf
    result.evidence.update(leaf.evidence())
    result.evidence["chain_in_file"] = [cert.subject for cert in report.chain]
    result.evidence["chain_error"] = report.chain_error
    missing = [name for name in names if not leaf.covers(name)]
    result.observed = {
        "sans": leaf.sans,
        "key_matches": report.key_matches,
        "chain_ok": report.trust_path_ok,
        "validity": leaf.validity(),
        "not_covered": missing,
    }
    if report.key_error:
        result.problems.append(f"private key: {report.key_error}")
    if missing:
        result.problems.append(
            f"the certificate (subject {leaf.subject}) does not cover {', '.join(missing)}; its SANs are "
            f"{', '.join(leaf.sans) or 'none'}: reissue it as *.<domain> or with every name in the SAN"
        )
    if not report.trust_path_ok:
        advice = (
            "append the intermediate certificate(s) after the leaf in the PEM file"
            if "local issuer" in report.trust_path_error and not leaf.self_signed
            else "use a certificate from a CA the clients trust"
        )
        result.problems.append(
            f"chain does not verify against {_store(ca_bundle)}: {report.trust_path_error}: {advice}"
        )
    if not report.order_ok:
        result.problems.append("certificates in the file are not in order (leaf first, each followed by its issuer)")
    if leaf.validity() != "valid":
        result.problems.append(
            f"the certificate is {leaf.validity()} (valid {leaf.not_before:%Y-%m-%d} .. {leaf.not_after:%Y-%m-%d}): renew it"
        )
    return result


def assess_federation_cert(
    leaf: CertInfo, infra_domain: str, curve: str, critical_days: float, warn_days: float,
    rsa_recommended_bits: int, now: dt.datetime | None = None,
) -> Assessment:  # fmt: skip
    """TLS-FED-CERT: EKU server+client auth, infra domain in the SAN, P-256 for EC, not about to expire."""
    result = Assessment(expected=f"EKU serverAuth+clientAuth, SAN covering {infra_domain}, EC {curve} or RSA")
    result.evidence.update(leaf.evidence())
    result.evidence["extended_key_usage"] = leaf.extended_key_usage
    days = leaf.days_left(now)
    result.observed = {"eku": leaf.extended_key_usage, "sans": leaf.sans, "key": leaf.key_text, "days_left": round(days, 1)}
    missing_eku = [usage for usage in (EKU_SERVER, EKU_CLIENT) if usage not in leaf.extended_key_usage]
    if missing_eku:
        result.problems.append(
            f"extended key usage lacks {', '.join(missing_eku)} (has: {', '.join(leaf.extended_key_usage) or 'none'}): "
            "reissue with TLS Web Server and Client Authentication"
        )
    if not leaf.covers(infra_domain):
        result.problems.append(
            f"the SAN ({', '.join(leaf.sans) or 'none'}) does not cover the infrastructure domain {infra_domain}: reissue"
        )
    if leaf.key_type == "EC" and leaf.curve != curve:
        result.problems.append(f"EC key on {leaf.curve}; federation needs {curve} (P-256): reissue")
    elif leaf.key_type == "RSA" and leaf.key_bits <= rsa_recommended_bits:
        result.notes.append(f"RSA {leaf.key_bits}: more than {rsa_recommended_bits} bits is recommended")
    elif leaf.key_type not in ("EC", "RSA"):
        result.problems.append(f"{leaf.key_type} key: federation supports EC {curve} or RSA")
    if leaf.validity(now) != "valid":
        result.problems.append(f"the certificate is {leaf.validity(now)} (until {leaf.not_after:%Y-%m-%d %H:%M} UTC): renew it")
    elif days < critical_days:
        result.problems.append(f"the certificate expires in {days:.1f} days ({leaf.not_after:%Y-%m-%d}; critical under {critical_days:g}): renew it")
    elif days < warn_days:
        result.notes.append(f"the certificate expires in {days:.1f} days (warning under {warn_days:g})")
    return result
