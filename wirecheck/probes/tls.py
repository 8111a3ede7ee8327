"""TLS probe: handshakes with SNI, certificate facts, chain verification as a client does it.

Everything works against an address rather than a name, so a certificate on `wire_ip`:443 can be
inspected before public DNS exists.  The handshake itself never verifies (weak keys, old protocols and
broken chains must be *reported*, not crash the probe); verification is done afterwards, per name and
at the time of the run, with cryptography's X.509 path validation (the Web PKI profile) against the
system store or a CA bundle, plus the RSA key size clients refuse.  When the library refuses a chain,
its reason is turned into a sentence naming the certificate; the RFC 6125 matching kept here only
explains a refusal (which SANs the leaf has) and judges the federation certificate.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import re
import select
import socket
import ssl
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    DNSName,
    IPAddress,
    PolicyBuilder,
    ServerVerifier,
    Store,
    VerificationError,
)
from OpenSSL import SSL

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
# Chain verification: cryptography's X.509 path validation, as a TLS client does it


MIN_RSA_BITS = 2048  # OpenSSL security level 2 (Debian/Ubuntu default) and the CA/B Forum refuse less
WEAK_HASHES = ("md5", "sha1")


class TrustStoreError(Exception):
    """The trust store could not be read: nothing can be verified (an error, not a verdict)."""


def _read_pem_certificates(path: Path) -> list[x509.Certificate]:
    data = path.read_bytes()
    try:
        with warnings.catch_warnings():  # old roots with negative serial numbers: still roots
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return x509.load_pem_x509_certificates(data)
    except ValueError:
        # one unreadable block must not hide the rest: read block by block
        blocks = data.split(b"-----END CERTIFICATE-----")
        certs = []
        for block in blocks:
            if b"-----BEGIN CERTIFICATE-----" in block:
                try:
                    certs.append(x509.load_pem_x509_certificate(block + b"-----END CERTIFICATE-----\n"))
                except ValueError:
                    continue
        return certs


@functools.lru_cache(maxsize=8)
def trust_store(ca_bundle: str | None) -> tuple[Store, int, str]:
    """(cryptography Store, number of roots, where they came from) for --ca-bundle or the system store."""
    if ca_bundle:
        sources = [Path(ca_bundle)]
    else:
        paths = ssl.get_default_verify_paths()
        sources = [Path(p) for p in (paths.cafile, paths.openssl_cafile) if p and Path(p).is_file()][:1]
        if not sources and paths.capath and Path(paths.capath).is_dir():
            sources = [Path(paths.capath)]
    certs: dict[bytes, x509.Certificate] = {}
    try:
        for source in sources:
            files = sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else [source]
            for file in files:
                for cert in _read_pem_certificates(file):
                    certs[cert.fingerprint(hashes.SHA256())] = cert
    except OSError as exc:
        raise TrustStoreError(f"cannot read the trust store {ca_bundle or sources[0]}: {exc.strerror or exc}") from exc
    where = ca_bundle or (str(sources[0]) if sources else "the system trust store")
    if not certs:
        raise TrustStoreError(f"no certificate could be read from the trust store {where}")
    return Store(list(certs.values())), len(certs), where


def _role(index: int, total: int) -> str:
    if index == 0:
        return "the leaf"
    if index == total - 1 and total > 2:
        return f"the last certificate sent (#{index + 1})"
    return f"intermediate #{index}" if total > 2 else "the intermediate"


def _named(chain: Sequence[x509.Certificate], index: int) -> str:
    return f"{_role(index, len(chain))} ({chain[index].subject.rfc4514_string()})"


def _date(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _out_of_date(cert: x509.Certificate, now: dt.datetime) -> str:
    """'' when `now` is within the certificate's validity, else what is wrong, as a phrase."""
    if now < cert.not_valid_before_utc:
        return f"is not valid before {_date(cert.not_valid_before_utc)}"
    if now > cert.not_valid_after_utc:
        return f"expired on {_date(cert.not_valid_after_utc)}"
    return ""


def weak_keys(chain: Sequence[x509.Certificate], roles: Sequence[str] | None = None) -> list[str]:
    """Keys a TLS client refuses, one sentence each (cryptography's path validation checks the key's
    algorithm and curve, not the RSA modulus size)."""
    problems = []
    for index, cert in enumerate(chain):
        role = roles[index] if roles else _named(chain, index)
        key = cert.public_key()
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            problems.append(
                f"{role} has an RSA {key.key_size}-bit key; clients refuse RSA keys under {MIN_RSA_BITS} bits "
                "(OpenSSL security level 2, the default on Debian and Ubuntu; CA/Browser Forum baseline "
                f"requirements §6.1.5): reissue it with an RSA {MIN_RSA_BITS}+ or EC P-256 key"
            )
        elif isinstance(key, dsa.DSAPublicKey):
            problems.append(f"{role} has a DSA key, which TLS clients no longer accept: reissue it with RSA or EC")
    return problems


def _library_reason(error: str) -> tuple[str, str | None]:
    """cryptography's message -> (the reason, the subject of the certificate it names, if any)."""
    match = re.search(r" \(encountered processing <Certificate\(subject=<Name\((.*)\)>, \.\.\.\)>\)$", error)
    core = error[: match.start()] if match else error
    core = core.removeprefix("validation failed: ")
    return core, (match.group(1) if match else None)


def _explain(
    error: str, chain: Sequence[x509.Certificate], name: str, now: dt.datetime, store: str, holder: str
) -> str:
    """One sentence: which certificate cryptography refused and why, with the fix and the library's words.
    `holder` is "server" (a served chain) or "file" (a PEM bundle before install)."""
    core = _library_reason(error)[0].split(": AlgorithmIdentifier")[0]
    return f"{_explanation(error, chain, name, now, store, holder)} (cryptography's verifier: {core})"


def _explanation(
    error: str, chain: Sequence[x509.Certificate], name: str, now: dt.datetime, store: str, holder: str
) -> str:
    core, subject = _library_reason(error)
    leaf = chain[0]
    culprit = next((i for i, cert in enumerate(chain) if cert.subject.rfc4514_string() == subject), None)
    who = _named(chain, culprit) if culprit is not None else _named(chain, 0)
    if "not valid at validation time" in core:
        dated = [i for i, cert in enumerate(chain) if _out_of_date(cert, now)]
        if dated:
            text = "; ".join(f"{_named(chain, i)} {_out_of_date(chain[i], now)}" for i in dated)
            fix = "renew the certificate" if dated == [0] else "serve your CA's current intermediate with the leaf"
            return f"{text} (checked at {_date(now)}), so clients refuse the chain: {fix}"
        return (f"a certificate of the trust path from {store} is outside its validity period at {_date(now)}: "
                "serve a chain that ends at a current root")
    if "no subjectAltName" in core:
        cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        where = f"only in its subject CN ({cn[0].value})" if cn else "nowhere"
        return (f"{who} has no subjectAltName extension, so {name} is {where}; clients read names only from the "
                f"SAN (RFC 6125 §6.4.4, CA/Browser Forum): reissue it with {name} in the SAN")
    if "no matching subjectAltName" in core:
        info = cert_info(leaf)
        wildcard = " (RFC 6125: a wildcard covers exactly one left-most label)" if any(
            san.startswith("*.") for san in info.dns_names) else ""
        try:
            ipaddress.ip_address(name)
            entry = f"IP:{name}"
        except ValueError:
            entry = f"{name} (or a wildcard for its parent)"
        return (f"{who} does not cover {name}: its SANs are {', '.join(info.sans) or 'none'}{wildcard}: reissue it "
                f"with {entry} in the SAN")
    if "EKU" in core:
        usages = cert_info(leaf).extended_key_usage
        return (f"{who} is not for TLS servers: its extended key usage is {', '.join(usages) or 'none'}, without "
                "serverAuth (TLS Web Server Authentication): reissue it with serverAuth")
    if "signature algorithm" in core.lower():
        weak = [i for i, cert in enumerate(chain) if (cert.signature_hash_algorithm or hashes.SHA256()).name in WEAK_HASHES]
        if weak:
            parts = [f"{_named(chain, i)} is signed with {chain[i].signature_hash_algorithm.name.upper()}"  # type: ignore[union-attr]
                     for i in weak]  # fmt: skip
            return (f"{'; '.join(parts)}, a signature algorithm clients refuse (SHA-1 since 2017): "
                    "have it reissued with SHA-256")
        return f"a signature algorithm in the chain is refused ({core}): have the certificates reissued with SHA-256"
    if "no interior errors" in core or "candidates exhausted" in core:
        top = chain[-1]
        if len(chain) == 1 and leaf.subject == leaf.issuer:
            return f"{who} is self-signed and not in {store}: use a certificate from a CA the clients trust"
        if len(chain) == 1 and holder == "file":
            return (f"the leaf's issuer ({leaf.issuer.rfc4514_string()}) is neither in the file nor in {store}; the "
                    "file holds only the leaf: append the intermediate certificate(s) after the leaf in the PEM file")
        if len(chain) == 1:
            return (f"the leaf's issuer ({leaf.issuer.rfc4514_string()}) is neither sent nor in {store}; the server "
                    "sends only the leaf: serve the full chain (leaf + intermediates)")
        where = "sent" if holder == "server" else "in the file"
        return (f"the chain {where} ends at {_named(chain, len(chain) - 1)}, issued by {top.issuer.rfc4514_string()}, "
                f"which is not in {store}: use a chain that builds to a root the clients trust")
    return f"{who} is refused: {core}"


@dataclass
class ChainCheck:
    """cryptography's verdict on a served chain for one name at one moment, explained."""

    name: str
    at: dt.datetime
    store: str = ""
    ok: bool = False
    problems: list[str] = field(default_factory=list)  # sentences: which certificate, why, the fix
    library_reason: str = ""  # cryptography's VerificationError text, unchanged
    path: list[str] = field(default_factory=list)  # subjects from leaf to trust anchor, when built
    unmeasured: str = ""  # the trust store could not be read

    @property
    def refused(self) -> bool:
        return not self.unmeasured and bool(self.problems)

    def evidence(self) -> dict[str, object]:
        data: dict[str, object] = {"name": self.name, "verified_at": self.at.isoformat(), "trust_store": self.store,
                                   "verified": self.ok and not self.problems}  # fmt: skip
        if self.library_reason:
            data["cryptography"] = self.library_reason
        if self.path:
            data["path"] = self.path
        if self.unmeasured:
            data["error"] = self.unmeasured
        return data


def _covered_name(leaf: x509.Certificate) -> DNSName | IPAddress | None:
    """A name the leaf's SAN does cover (its first entry; a wildcard filled in), to verify the rest of the
    chain when the name asked for is not covered: the library stops at the first reason."""
    info = cert_info(leaf)
    if info.dns_names:
        first = info.dns_names[0]
        try:
            return DNSName("wirecheck" + first[1:] if first.startswith("*.") else first)
        except ValueError:
            return None
    if info.ip_addresses:
        return IPAddress(ipaddress.ip_address(info.ip_addresses[0]))
    return None


def _verifier(store: Store, now: dt.datetime, subject: DNSName | IPAddress) -> ServerVerifier:
    return PolicyBuilder().store(store).time(now).build_server_verifier(subject)


def verify_for_name(
    chain: Sequence[x509.Certificate],
    name: str,
    ca_bundle: str | None = None,
    now: dt.datetime | None = None,
    holder: str = "server",
) -> ChainCheck:
    """Verify `chain` (leaf first, as sent) for `name` at `now` with cryptography's X.509 path validation
    (the Web PKI profile: every certificate's dates, signature algorithms, key types, basic constraints,
    serverAuth usage, the name in the SAN), then the key sizes clients refuse.  `holder` ("server" or
    "file") only words the advice."""
    now = now or dt.datetime.now(dt.UTC)
    check = ChainCheck(name=name, at=now)
    try:
        store, _, check.store = trust_store(ca_bundle)
    except TrustStoreError as exc:
        check.unmeasured = str(exc)
        return check
    try:
        try:
            subject: DNSName | IPAddress = IPAddress(ipaddress.ip_address(name))
        except ValueError:
            subject = DNSName(name)
        verifier = _verifier(store, now, subject)
    except ValueError as exc:
        check.unmeasured = f"{name!r} is not a name a certificate can be verified for: {exc}"
        return check
    try:
        built = verifier.verify(chain[0], list(chain[1:]))
    except VerificationError as exc:
        check.library_reason = str(exc)
        check.problems.append(_explain(str(exc), chain, name, now, check.store, holder))
        covered = _covered_name(chain[0]) if "no matching subjectAltName" in str(exc) else None
        if covered is not None:
            try:
                _verifier(store, now, covered).verify(chain[0], list(chain[1:]))
            except (VerificationError, ValueError) as other:  # what else a client would refuse once the name is right
                check.problems.append(_explain(str(other), chain, name, now, check.store, holder))
        check.problems += weak_keys(chain)
        return check
    check.ok = True
    check.path = [cert.subject.rfc4514_string() for cert in built]
    roles = [_named(chain, i) for i in range(len(chain))] + [
        f"the root ({cert.subject.rfc4514_string()})" for cert in built[len(chain):]
    ]  # fmt: skip
    check.problems += weak_keys(list(chain) + list(built[len(chain):]), roles)
    return check


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


# --------------------------------------------------------------------------------------------------
# Assessments: what a check needs for a verdict (problems name the certificate to change)


def merge_by_names(per_name: dict[str, list[str]], every: Sequence[str]) -> list[str]:
    """Sentences that hold for several names said once, prefixed by those names ("for every name" when all)."""
    holders: dict[str, list[str]] = {}
    for name, sentences in per_name.items():
        for sentence in sentences:
            holders.setdefault(sentence, []).append(name)
    merged = []
    for sentence, names in holders.items():
        if len(every) > 1 and sorted(names) == sorted(every):
            merged.append(f"for every name: {sentence}")
        else:
            merged.append(f"{', '.join(names)}: {sentence}")
    return merged


def _coverage_note(check: ChainCheck, leaf: CertInfo, name: str) -> list[str]:
    """When cryptography refused the chain for another reason first, whether the SANs would cover the name
    (RFC 6125), so that one run names every fix."""
    if not check.refused or "subjectAltName" in check.library_reason or leaf.covers(name):
        return []
    return [f"besides, the leaf's SANs ({', '.join(leaf.sans) or 'none'}) do not cover {name}: reissue it with {name}"]


def _verification_outcome(
    checks: dict[str, ChainCheck], per_name: dict[str, list[str]], result: Assessment, every: Sequence[str]
) -> None:
    refused: dict[str, list[str]] = {}
    for name, check in checks.items():
        if check.unmeasured:
            result.unmeasured.append(f"{name}: {check.unmeasured}")
        elif per_name.get(name):
            refused[name] = per_name[name]
    result.problems += merge_by_names(refused, every)


def assess_served(reports: dict[str, TlsReport]) -> Assessment:
    """TLS-SAN: for each name, the chain served with that SNI verifies for the name as a client's would."""
    result = Assessment(expected="for each name, the chain served with its SNI verified for the name (cryptography's "
                                 "X.509 path validation at the time of the run) with keys clients accept")  # fmt: skip
    observed: dict[str, str] = {}
    checks: dict[str, ChainCheck] = {}
    per_name: dict[str, list[str]] = {}
    for name, report in reports.items():
        result.evidence[name] = report.evidence()
        if report.error:
            observed[name] = "no certificate"
            result.unmeasured.append(f"{name}: TLS handshake with {report.address}:{report.port} failed: {report.error}")
            continue
        assert report.check is not None
        checks[name] = report.check
        observed[name] = "verified" if report.verified else "refused" if report.check.refused else "not verified"
        assert report.leaf is not None
        per_name[name] = report.check.problems + _coverage_note(report.check, report.leaf, name)
    _verification_outcome(checks, per_name, result, list(reports))
    result.observed = observed
    return result


def _chain_expiry(chain: Sequence[CertInfo]) -> tuple[int, CertInfo]:
    """(position, certificate) of the certificate that expires first."""
    index = min(range(len(chain)), key=lambda i: chain[i].not_after)
    return index, chain[index]


def assess_expiry(
    reports: dict[str, TlsReport], warn_days: float, critical_days: float, now: dt.datetime | None = None
) -> tuple[Assessment, bool]:
    """TLS-EXPIRY: days left per distinct served chain, for every certificate in it (the leaf and the
    intermediates sent) -> (assessment, down: a certificate in the chain expired or not yet valid)."""
    now = now or dt.datetime.now(dt.UTC)
    result = Assessment(expected=f"every certificate of the served chain valid for >= {warn_days:g} more days")
    down = False
    seen: dict[tuple[str, ...], list[str]] = {}
    chains: dict[tuple[str, ...], list[CertInfo]] = {}
    for name, report in reports.items():
        if report.error:
            result.unmeasured.append(f"{name}: TLS handshake with {report.address}:{report.port} failed: {report.error}")
            continue
        key = tuple(cert.sha256 for cert in report.chain_sent)
        seen.setdefault(key, []).append(name)
        chains[key] = report.chain_sent
    observed: dict[str, object] = {}
    for key, chain in chains.items():
        names = ", ".join(seen[key])
        index, first = _chain_expiry(chain)
        days = first.days_left(now)
        who = f"{_role(index, len(chain))} ({first.subject})"
        observed[names] = round(days, 1)
        result.evidence[names] = {
            "earliest_expiry": {"position": _role(index, len(chain)), "subject": first.subject,
                                "not_after": first.not_after.isoformat(), "days_left": round(days, 1)},
            "chain_sent": chain_evidence(chain, now),
        }  # fmt: skip
        dated = [(i, cert) for i, cert in enumerate(chain) if cert.validity(now) != "valid"]
        for i, cert in dated:
            down = True
            state = (f"expired on {_date(cert.not_after)} ({-cert.days_left(now):.1f} days ago)"
                     if cert.validity(now) == "expired" else f"is not valid before {_date(cert.not_before)}")  # fmt: skip
            result.problems.append(
                f"in the chain served for {names}, {_role(i, len(chain))} ({cert.subject}) {state}, so clients refuse "
                f"it: {'renew it' if i == 0 else 'serve the current intermediate from your CA'}"
            )
        if not dated and days < warn_days:
            level = "critical" if days < critical_days else "warning"
            limit = critical_days if days < critical_days else warn_days
            fix = "renew it" if index == 0 else "serve the CA's current intermediate (or renew so that it is sent)"
            result.problems.append(
                f"in the chain served for {names}, {who} expires first, on {_date(first.not_after)}, in {days:.1f} "
                f"days ({level}: under {limit:g} days): {fix}"
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
    """TLS-BYO-CERT: the key matches and, for every name, the bundle verifies as a client would verify it."""
    result = Assessment(expected="the key matching the leaf; for every name, the chain in the file verified for it "
                                 "(cryptography's X.509 path validation at the time of the run) with keys clients "
                                 "accept; certificates in order")  # fmt: skip
    if report.error:
        result.problems.append(report.error)
        return result
    assert report.leaf is not None
    leaf = report.leaf
    result.evidence["chain_in_file"] = chain_evidence(report.chain)
    result.evidence["verification"] = {name: check.evidence() for name, check in report.checks.items()}
    missing = [name for name in names if not leaf.covers(name)]
    verified = [name for name, check in report.checks.items() if check.ok and not check.problems]
    result.observed = {
        "key_matches": report.key_matches,
        "verified": verified,
        "refused": [name for name, check in report.checks.items() if check.refused],
        "not_covered": missing,
    }
    if report.key_error:
        result.problems.append(f"private key: {report.key_error}")
    per_name = {name: check.problems + _coverage_note(check, leaf, name) for name, check in report.checks.items()}
    _verification_outcome(report.checks, per_name, result, names)
    if not report.order_ok:
        result.problems.append("certificates in the file are not in order (leaf first, each followed by its issuer)")
    return result


def assess_federation_cert(
    leaf: CertInfo, infra_domain: str, curve: str, critical_days: float, warn_days: float,
    rsa_recommended_bits: int, now: dt.datetime | None = None, check: ChainCheck | None = None,
) -> Assessment:  # fmt: skip
    """TLS-FED-CERT: EKU server+client auth, infra domain in the SAN, P-256 for EC, not about to expire; with
    `check` (the file's chain verified for the infrastructure domain) also a chain other backends accept."""
    result = Assessment(expected=f"EKU serverAuth+clientAuth, SAN covering {infra_domain}, EC {curve} or RSA"
                                 + (", a chain clients accept" if check else ""))  # fmt: skip
    result.evidence.update(leaf.evidence())
    result.evidence["extended_key_usage"] = leaf.extended_key_usage
    days = leaf.days_left(now)
    result.observed = {"eku": leaf.extended_key_usage, "sans": leaf.sans, "key": leaf.key_text, "days_left": round(days, 1)}
    reason = check.library_reason if check else ""
    if check is not None:
        result.evidence["verification"] = check.evidence()
        result.observed["chain"] = "verified" if check.ok and not check.problems else "refused" if check.refused else "not verified"  # type: ignore[index]
        if check.unmeasured:
            result.unmeasured.append(check.unmeasured)
        result.problems += check.problems
    needed = (EKU_CLIENT,) if "EKU" in reason else (EKU_SERVER, EKU_CLIENT)  # serverAuth named by the library
    missing_eku = [usage for usage in needed if usage not in leaf.extended_key_usage]
    if missing_eku:
        result.problems.append(
            f"extended key usage lacks {', '.join(missing_eku)} (has: {', '.join(leaf.extended_key_usage) or 'none'}): "
            "reissue with TLS Web Server and Client Authentication"
        )
    if "subjectAltName" not in reason and not leaf.covers(infra_domain):
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
        if "not valid at validation time" not in reason:
            result.problems.append(f"the certificate is {leaf.validity(now)} (until {leaf.not_after:%Y-%m-%d %H:%M} UTC): renew it")
    elif days < critical_days:
        result.problems.append(f"the certificate expires in {days:.1f} days ({leaf.not_after:%Y-%m-%d}; critical under {critical_days:g}): renew it")
    elif days < warn_days:
        result.notes.append(f"the certificate expires in {days:.1f} days (warning under {warn_days:g})")
    return result


# --------------------------------------------------------------------------------------------------
# Pass sentences: what was measured, said once (the structured data stays in the evidence)


def _names_text(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"all {len(names)} names ({', '.join(names)})"


def served_summary(reports: dict[str, TlsReport]) -> str:
    checks = [report.check for report in reports.values() if report.check]
    store = checks[0].store if checks else "the trust store"
    at = _date(checks[0].at) if checks else "the time of the run"
    protocols = sorted({report.protocol for report in reports.values() if report.protocol})
    return (f"the chain served with the SNI of each name verifies for that name, for {_names_text(list(reports))}, "
            f"against {store} at {at} (cryptography's X.509 path validation: dates of every certificate, signature "
            f"algorithms, serverAuth usage, the name in the SAN), with keys clients accept, over {', '.join(protocols)}")


def expiry_summary(result: Assessment) -> str:
    parts = []
    for names, data in result.evidence.items():
        first = data["earliest_expiry"]  # type: ignore[index]
        parts.append(f"the chain served for {names} is valid for {first['days_left']:.1f} more days (the first "  # type: ignore[index]
                     f"certificate to expire is {first['position']}, {first['subject']}, on "  # type: ignore[index]
                     f"{dt.datetime.fromisoformat(first['not_after']):%Y-%m-%d})")  # type: ignore[index]
    return "; ".join(parts)


def ciphers_summary(versions: dict[str, str], accepted: dict[str, list[str]]) -> str:
    offered = [version for version, outcome in versions.items() if not outcome.startswith("rejected")]
    suites = sorted({suite for found in accepted.values() for suite in found})
    return (f"the server accepts {', '.join(offered) or 'no version'} with the suites {', '.join(suites) or 'none'}, "
            "all of them recommended")


def pem_summary(report: PemBundleReport, names: Sequence[str]) -> str:
    assert report.leaf is not None
    checks = list(report.checks.values())
    store = checks[0].store if checks else "the trust store"
    key = "the private key matches it and " if report.key_matches else ""
    return (f"the certificate {report.leaf.subject} ({report.leaf.key_text}, valid until "
            f"{_date(report.leaf.not_after)}): {key}its chain in the file verifies for {_names_text(list(names))} "
            f"against {store} at {_date(checks[0].at) if checks else 'the time of the run'}")


def federation_summary(leaf: CertInfo, infra_domain: str, check: ChainCheck | None = None) -> str:
    chain = f", and the chain in the file verifies for {infra_domain} against {check.store}" if check else ""
    return (f"the certificate {leaf.subject} has extended key usage {', '.join(leaf.extended_key_usage)}, covers "
            f"{infra_domain} by its SAN, has a {leaf.key_text} key and is valid until {_date(leaf.not_after)} "
            f"({leaf.days_left():.1f} days){chain}")
