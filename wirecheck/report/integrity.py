"""Integrity manifest and signature of a report directory.

``integrity.json`` (schema ``wirecheck/integrity/v1``) lists the SHA-256 of ``compliance.json``,
``compliance.html`` and every file under ``evidence/``, plus one digest per requirement and per
top-level key of compliance.json, so that a later check can say *what* was edited, not only that
something was.  ``digest`` is the SHA-256 over the ``sha256sum``-style lines of all files, sorted
by path: one value that identifies the run's results and evidence.

``integrity.sig`` (optional) is a detached signature over the exact bytes of integrity.json, made
with a private key the user provides (Ed25519, ECDSA or RSA; PEM/PKCS#8 or OpenSSH format).  It
carries the public key and its fingerprint; ``verify`` checks the signature and, when given the
expected key with ``--key``, that it is that key.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import COMPLIANCE_FILE, ReportError, atomic_write, dump_json

MANIFEST = "integrity.json"
SIGNATURE = "integrity.sig"
EVIDENCE_DIR = "evidence"
HTML_FILE = "compliance.html"
SCHEMA = "wirecheck/integrity/v1"
SIG_SCHEMA = "wirecheck/signature/v1"
PASSPHRASE_ENV = "WIRECHECK_SIGNING_PASSPHRASE"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sealed_files(report_dir: Path) -> list[str]:
    """Relative POSIX paths of the files a manifest covers, sorted."""
    names = [n for n in (COMPLIANCE_FILE, HTML_FILE) if (report_dir / n).is_file()]
    ev = report_dir / EVIDENCE_DIR
    if ev.is_dir():
        for root, dirs, files in os.walk(ev):
            dirs.sort()
            for f in files:
                names.append((Path(root) / f).relative_to(report_dir).as_posix())
    return sorted(names)


def _structure(compliance: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    header = {k: _sha(_canonical(v)) for k, v in compliance.items() if k != "requirements"}
    reqs: dict[str, str] = {}
    for i, req in enumerate(compliance.get("requirements") or []):
        key = str(req.get("id") or f"#{i}")
        reqs[key] = _sha(_canonical(req))
    return header, reqs


def run_digest(files: dict[str, str]) -> str:
    lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))
    return _sha(lines.encode())


def build_manifest(report_dir: Path, *, created: str | None = None) -> dict[str, Any]:
    report_dir = Path(report_dir)
    if not (report_dir / COMPLIANCE_FILE).is_file():
        raise ReportError(f"{report_dir}: no {COMPLIANCE_FILE} to seal")
    files = {name: sha256_file(report_dir / name) for name in sealed_files(report_dir)}
    compliance = json.loads((report_dir / COMPLIANCE_FILE).read_text(encoding="utf-8"))
    header, reqs = _structure(compliance)
    return {"schema": SCHEMA, "algorithm": "sha256",
            "created": created or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "digest": run_digest(files), "files": files,
            "compliance": {"header": header, "requirements": reqs}}


def write_manifest(report_dir: Path) -> dict[str, Any]:
    manifest = build_manifest(report_dir)
    atomic_write(Path(report_dir) / MANIFEST, dump_json(manifest))
    return manifest


# ---------------------------------------------------------------- keys and signatures

def _load_private_key(path: Path) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ReportError(f"{path}: cannot read signing key ({exc.strerror or exc})") from None
    pw = os.environ.get(PASSPHRASE_ENV)
    password = pw.encode() if pw else None
    needs_passphrase = False
    for loader in (serialization.load_pem_private_key, serialization.load_ssh_private_key,
                   serialization.load_der_private_key):
        try:
            return loader(data, password=password)
        except TypeError:  # encrypted without a passphrase (or a passphrase for a plain key)
            needs_passphrase = password is None
        except UnsupportedAlgorithm as exc:
            raise ReportError(f"{path}: cannot read this key here ({exc}; `pip install bcrypt` for "
                              "encrypted OpenSSH keys)") from None
        except Exception:  # noqa: BLE001,S112 - cryptography raises several types; try the next format
            continue
    if needs_passphrase:
        raise ReportError(f"{path}: the key is encrypted; put its passphrase in ${PASSPHRASE_ENV}")
    raise ReportError(f"{path}: not a private key in PEM, OpenSSH or DER format")


def _load_public_key(path: Path) -> Any:
    """A public key from PEM, OpenSSH '.pub' text, DER, or a private key file."""
    from cryptography.hazmat.primitives import serialization

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ReportError(f"{path}: cannot read key ({exc.strerror or exc})") from None
    for loader in (serialization.load_pem_public_key, serialization.load_ssh_public_key,
                   serialization.load_der_public_key):
        try:
            return loader(data)
        except Exception:  # noqa: S112,BLE001 - try the next format
            continue
    return _load_private_key(path).public_key()


def _public_pem(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(public_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def _sign_bytes(key: Any, data: bytes) -> tuple[str, bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519", key.sign(data)
    if isinstance(key, ed448.Ed448PrivateKey):
        return "ed448", key.sign(data)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ecdsa-sha256", key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
        return "rsa-pss-sha256", key.sign(data, pss, hashes.SHA256())
    raise ReportError(f"unsupported signing key type {type(key).__name__} (use Ed25519, ECDSA or RSA)")


def _verify_bytes(public_key: Any, algorithm: str, signature: bytes, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    try:
        if algorithm in ("ed25519", "ed448"):
            public_key.verify(signature, data)
        elif algorithm == "ecdsa-sha256":
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif algorithm == "rsa-pss-sha256":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            public_key.verify(signature, data, pss, hashes.SHA256())
        else:
            return False
    except (InvalidSignature, TypeError, ValueError, AttributeError):
        return False
    return True


def sign(report_dir: Path, key_path: Path) -> dict[str, Any]:
    """Sign integrity.json (which must still match the files) and write integrity.sig."""
    report_dir = Path(report_dir)
    manifest_file = report_dir / MANIFEST
    if not manifest_file.is_file():
        raise ReportError(f"{report_dir}: no {MANIFEST}; the report was not sealed")
    key = _load_private_key(key_path)
    check = verify(report_dir, check_signature=False)
    if not check.ok:
        raise ReportError(f"{report_dir}: refusing to sign, the report does not match its manifest: "
                          f"{check.problems[0]}")
    data = manifest_file.read_bytes()
    algorithm, signature = _sign_bytes(key, data)
    pub = key.public_key()
    sig = {"schema": SIG_SCHEMA, "signed_file": MANIFEST, "sha256": _sha(data), "algorithm": algorithm,
           "key_fingerprint": fingerprint(pub), "public_key": _public_pem(pub).decode(),
           "signature": base64.b64encode(signature).decode()}
    atomic_write(report_dir / SIGNATURE, dump_json(sig))
    return sig


# ---------------------------------------------------------------- verification

@dataclass
class Verification:
    report_dir: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    digest: str | None = None
    signed_by: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _explain_compliance_change(report_dir: Path, sealed: dict[str, Any]) -> list[str]:
    try:
        current = json.loads((report_dir / COMPLIANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{COMPLIANCE_FILE}: no longer valid JSON ({exc})"]
    if not isinstance(current, dict):
        return [f"{COMPLIANCE_FILE}: no longer a JSON object"]
    header, reqs = _structure(current)
    old_h, old_r = sealed.get("header", {}), sealed.get("requirements", {})
    out = []
    for k in sorted(set(header) | set(old_h)):
        if header.get(k) != old_h.get(k):
            what = "added" if k not in old_h else "removed" if k not in header else "changed"
            out.append(f"{COMPLIANCE_FILE}: top-level '{k}' {what}")
    for k in sorted(set(reqs) | set(old_r)):
        if reqs.get(k) != old_r.get(k):
            what = "added" if k not in old_r else "removed" if k not in reqs else "edited"
            out.append(f"{COMPLIANCE_FILE}: requirement {k} {what}")
    if not out:
        out.append(f"{COMPLIANCE_FILE}: bytes changed (formatting only, same content)")
    return out


def verify(report_dir: Path, key_path: Path | None = None, *, check_signature: bool = True) -> Verification:
    """Check every digest in integrity.json (and the signature); list what differs."""
    report_dir = Path(report_dir)
    if report_dir.is_file() and report_dir.name in (COMPLIANCE_FILE, MANIFEST):
        report_dir = report_dir.parent
    if not report_dir.is_dir():
        raise ReportError(f"{report_dir}: no such report directory")
    result = Verification(report_dir)
    manifest_file = report_dir / MANIFEST
    if not manifest_file.is_file():
        result.problems.append(f"{MANIFEST}: missing, this report was never sealed (or the manifest was deleted)")
        return result
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        files: dict[str, str] = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        result.problems.append(f"{MANIFEST}: unreadable or malformed ({exc})")
        return result
    result.digest = manifest.get("digest")
    if run_digest(files) != manifest.get("digest"):
        result.problems.append(f"{MANIFEST}: its digest does not match its own file list (manifest edited)")
    present = set(sealed_files(report_dir))
    for name in sorted(files):
        path = report_dir / name
        if not path.is_file():
            result.problems.append(f"{name}: missing (was sealed with sha256 {files[name][:16]}…)")
            continue
        actual = sha256_file(path)
        if actual != files[name]:
            result.problems.append(f"{name}: content changed (sha256 {files[name][:16]}… sealed, "
                                   f"{actual[:16]}… now)")
            if name == COMPLIANCE_FILE:
                result.problems.extend(_explain_compliance_change(report_dir, manifest.get("compliance", {})))
    for name in sorted(present - set(files)):
        result.problems.append(f"{name}: not in the manifest (added after the run)")

    if not check_signature:
        return result
    sig_file = report_dir / SIGNATURE
    if not sig_file.is_file():
        if key_path is not None:
            result.problems.append(f"{SIGNATURE}: missing, but a key was given to check it against")
        else:
            result.notes.append("not signed (digests only)")
        return result
    try:
        sig = json.loads(sig_file.read_text(encoding="utf-8"))
        from cryptography.hazmat.primitives import serialization

        embedded = serialization.load_pem_public_key(sig["public_key"].encode())
        signature = base64.b64decode(sig["signature"], validate=True)
        algorithm = str(sig["algorithm"])
    except Exception as exc:  # noqa: BLE001 - any malformation is a verification failure
        result.problems.append(f"{SIGNATURE}: unreadable or malformed ({type(exc).__name__}: {exc})")
        return result
    expected = _load_public_key(key_path) if key_path is not None else embedded
    result.signed_by = fingerprint(expected)
    if key_path is not None and fingerprint(embedded) != fingerprint(expected):
        result.problems.append(f"{SIGNATURE}: made with key {fingerprint(embedded)}, "
                               f"not with the given key {fingerprint(expected)}")
        return result
    if not _verify_bytes(expected, algorithm, signature, manifest_file.read_bytes()):
        result.problems.append(f"{SIGNATURE}: signature does not match {MANIFEST} (manifest edited after signing, "
                               "or signature forged)")
    elif key_path is None:
        result.notes.append(f"signature valid, key {fingerprint(embedded)} (not pinned: pass --key to check "
                            "it is the expected key)")
    else:
        result.notes.append(f"signature valid, made with the given key {fingerprint(expected)}")
    return result
