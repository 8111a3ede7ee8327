"""TLS chain verification as a client does it: cryptography's X.509 path validation (the Web PKI
profile) for a name at a moment, against the system store or a CA bundle, plus the RSA key size
clients refuse; a refusal is turned into a sentence naming the certificate to change.

tls.py re-exports these names.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    DNSName,
    IPAddress,
    PolicyBuilder,
    ServerVerifier,
    Store,
    VerificationError,
)

from .tls_certs import cert_info

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
