"""TLS certificates: what a certificate says (CertInfo, read with cryptography) and which names it covers
(RFC 6125 host name matching, kept here because CertInfo answers `covers`).

Pure: no network, no files. tls.py re-exports these names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
