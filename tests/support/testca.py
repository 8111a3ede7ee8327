"""A small test PKI built with `cryptography`: root -> intermediate(s) -> leaf, each with options.

Certificates follow the CA/Browser Forum profile that `cryptography`'s verifier (and browsers) expect
(key identifiers, critical basic constraints, key usage), so that a test case differs from its good
twin in exactly the one property it is about: an intermediate's dates, the leaf's key size, its
signature hash, its extended key usage, or a name only in the CN.

SHA-1 signatures: `cryptography` no longer signs with SHA-1, so the leaf is built with SHA-256 by an
RSA issuer and its to-be-signed part re-signed with SHA-1 (the two algorithm identifiers have the same
length, so the DER is patched in place).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")  # OID 1.2.840.113549.1.1.11
SHA1_WITH_RSA = bytes.fromhex("06092a864886f70d010105")  # OID 1.2.840.113549.1.1.5
USAGES = {"serverAuth": ExtendedKeyUsageOID.SERVER_AUTH, "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _key(kind: str):
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:] or 2048))
    return ec.generate_private_key(ec.SECP384R1() if kind == "ec384" else ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wirecheck tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])  # fmt: skip


@dataclass
class Issued:
    cert: x509.Certificate
    key: object

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                         encipher_only=False, decipher_only=False)  # fmt: skip


class TestCA:
    """`ca = TestCA(); inter = ca.intermediate(); leaf = ca.leaf(names, inter, key="rsa1024")`."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str = "wirecheck test root") -> None:
        now = _now()
        key = _key("ec")
        self.root = Issued(
            x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(_name(name)).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=3650)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()),
            key,
        )  # fmt: skip

    def intermediate(
        self,
        name: str = "wirecheck test intermediate",
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Issued:
        """An intermediate CA signed by the root; its key is RSA 2048 (so it can make SHA-1 leaves)."""
        now = _now()
        key = _key("rsa2048")
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(self.root.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(days=365))
            .not_valid_after(not_after or now + dt.timedelta(days=1825))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root.key.public_key()),  # type: ignore[attr-defined]
                           critical=False)
            .sign(self.root.key, hashes.SHA256())  # type: ignore[arg-type]
        )  # fmt: skip
        return Issued(cert, key)

    def leaf(
        self,
        names: Sequence[str],
        issuer: Issued,
        key: str = "ec",
        signature_hash: str = "sha256",
        usages: Sequence[str] = ("serverAuth",),
        san: bool = True,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Issued:
        """A server certificate for `names` (CN = the first name; SAN = all of them unless san=False)."""
        now = _now()
        private = _key(key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0])).issuer_name(issuer.cert.subject).public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(days=1))
            .not_valid_after(not_after or now + dt.timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),  # type: ignore[attr-defined]
                           critical=False)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_encipherment=key.startswith("rsa"), content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
        )  # fmt: skip
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage([USAGES[u] for u in usages]), critical=False)
        if san:
            entries: list[x509.GeneralName] = []
            for name in names:
                try:
                    entries.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    entries.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
        cert = builder.sign(issuer.key, hashes.SHA256())  # type: ignore[arg-type]
        if signature_hash == "sha1":
            cert = _resign_sha1(cert, issuer)
        return Issued(cert, private)


def _resign_sha1(cert: x509.Certificate, issuer: Issued) -> x509.Certificate:
    if not isinstance(issuer.key, rsa.RSAPrivateKey):
        raise ValueError("SHA-1 leaves need an RSA issuer")
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = cert.tbs_certificate_bytes
    assert der.count(SHA256_WITH_RSA) == 2 and tbs.count(SHA256_WITH_RSA) == 1
    sha1_tbs = tbs.replace(SHA256_WITH_RSA, SHA1_WITH_RSA)
    signature = issuer.key.sign(sha1_tbs, padding.PKCS1v15(), hashes.SHA1())
    assert len(signature) == len(cert.signature)
    patched = der.replace(tbs, sha1_tbs).replace(SHA256_WITH_RSA, SHA1_WITH_RSA).replace(cert.signature, signature)
    result = x509.load_der_x509_certificate(patched)
    assert result.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.5"
    return result


def write_chain(directory: Path, name: str, leaf: Issued, chain: Sequence[Issued] = ()) -> tuple[Path, Path]:
    """<name>.crt (leaf then `chain`) and <name>.key in `directory` -> (cert path, key path)."""
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(leaf.pem + b"".join(item.pem for item in chain))
    key_path.write_bytes(leaf.key_pem)
    return cert_path, key_path
