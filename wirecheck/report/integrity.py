"""Integrity manifest and signature of a report directory.

``integrity.json`` (schema ``wirecheck/integrity/v1``) lists the SHA-256 of ``compliance.json``,
``compliance.html`` and every file under ``evidence/``, plus one digest per requirement and per
top-level key of compliance.json, so that a later check can say *what* was edited, not only that
something was.  ``digest`` is the SHA-256 over the ``sha256sum``-style lines of all files, sorted
by path: one value that identifies the run's results and evidence.

Only regular files are sealed.  Sealing refuses a report holding symbolic links (or pipes, devices)
in what it covers, and ``verify`` walks compliance.json, compliance.html and evidence/ without
following links: a link, a file not in the manifest, a missing or changed file, and a recorded
per-requirement or per-key digest that is not that of compliance.json each fail verification.

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
import stat
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
    """SHA-256 of a regular file; a symbolic link is not followed (OSError ELOOP)."""
    h = hashlib.sha256()
    with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Tree:
    """What lies in the part of a report directory a seal covers, read without following links."""

    files: list[str] = field(default_factory=list)  # regular files, relative POSIX paths, sorted
    refused: dict[str, str] = field(default_factory=dict)  # path -> why it cannot be sealed


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _refusal(path: Path, mode: int) -> str:
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"a symbolic link (to {target}); a report holds only regular files and links are never followed"
    return f"{_kind(mode)}, not a regular file"


def scan(report_dir: Path) -> Tree:
    """compliance.json, compliance.html and everything under evidence/, without following symbolic links:
    regular files are listed, anything else (links, pipes, devices) is refused with the reason."""
    report_dir = Path(report_dir)
    tree = Tree()
    for name in (COMPLIANCE_FILE, HTML_FILE):
        try:
            mode = os.lstat(report_dir / name).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISREG(mode):
            tree.files.append(name)
        else:
            tree.refused[name] = _refusal(report_dir / name, mode)
    evidence = report_dir / EVIDENCE_DIR
    try:
        mode = os.lstat(evidence).st_mode
    except FileNotFoundError:
        return _sorted(tree)
    if not stat.S_ISDIR(mode):
        tree.refused[EVIDENCE_DIR] = _refusal(evidence, mode)
        return _sorted(tree)
    pending = [evidence]
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                rel = Path(entry.path).relative_to(report_dir).as_posix()
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    tree.files.append(rel)
                else:
                    tree.refused[rel] = _refusal(Path(entry.path), entry.stat(follow_symlinks=False).st_mode)
    return _sorted(tree)


def _sorted(tree: Tree) -> Tree:
    tree.files.sort()
    tree.refused = dict(sorted(tree.refused.items()))
    return tree


def sealed_files(report_dir: Path) -> list[str]:
    """Relative POSIX paths of the regular files a manifest covers, sorted (links are not among them)."""
    return scan(report_dir).files


def _in_scope(name: str) -> bool:
    parts = name.split("/")
    if name in (COMPLIANCE_FILE, HTML_FILE):
        return True
    return parts[0] == EVIDENCE_DIR and len(parts) > 1 and all(p not in ("", ".", "..") for p in parts)


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
    tree = scan(report_dir)
    if tree.refused:
        name, why = next(iter(tree.refused.items()))
        more = f" (and {len(tree.refused) - 1} more)" if len(tree.refused) > 1 else ""
        raise ReportError(f"{report_dir}: refusing to seal: {name} is {why}{more}")
    if COMPLIANCE_FILE not in tree.files:
        raise ReportError(f"{report_dir}: no {COMPLIANCE_FILE} to seal")
    files = {name: sha256_file(report_dir / name) for name in tree.files}
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


def _check_recorded_structure(report_dir: Path, sealed: Any) -> list[str]:
    """compliance.json is byte-identical to what was sealed: every per-requirement and per-key digest that
    integrity.json records must then be the digest of that part (else integrity.json was edited)."""
    if not isinstance(sealed, dict) or not isinstance(sealed.get("header"), dict) \
            or not isinstance(sealed.get("requirements"), dict):
        return [f"{MANIFEST}: the per-requirement digests of {COMPLIANCE_FILE} are missing or malformed"]
    try:
        current = json.loads((report_dir / COMPLIANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{COMPLIANCE_FILE}: not valid JSON ({exc})"]
    if not isinstance(current, dict):
        return [f"{COMPLIANCE_FILE}: not a JSON object"]
    header, reqs = _structure(current)
    out = []
    for label, recorded, actual in (("top-level key", sealed["header"], header),
                                    ("requirement", sealed["requirements"], reqs)):
        for key in sorted(set(recorded) | set(actual)):
            if key not in recorded:
                out.append(f"{MANIFEST}: records no digest for {label} {key} of {COMPLIANCE_FILE}")
            elif key not in actual:
                out.append(f"{MANIFEST}: records a digest for {label} {key}, which {COMPLIANCE_FILE} does not have")
            elif recorded[key] != actual[key]:
                out.append(f"{MANIFEST}: the digest recorded for {label} {key} ({str(recorded[key])[:16]}…) is not "
                           f"that of {COMPLIANCE_FILE}'s {key} ({actual[key][:16]}…): the manifest was edited")
    return out


def verify(report_dir: Path, key_path: Path | None = None, *, check_signature: bool = True) -> Verification:
    """Check every digest in integrity.json (and the signature); list what differs: files changed, missing,
    added or not regular (links are named, never followed), and per-requirement digests that do not match."""
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
    tree = scan(report_dir)
    for name, why in tree.refused.items():
        result.problems.append(f"{name}: is {why}; it was not sealed")
    present = set(tree.files)
    compliance_changed = False
    for name in sorted(files):
        if not _in_scope(name):
            result.problems.append(f"{MANIFEST}: lists {name!r}, which is outside what a report seals "
                                   f"({COMPLIANCE_FILE}, {HTML_FILE}, {EVIDENCE_DIR}/); it was not read")
            continue
        if name not in present:
            if name not in tree.refused:
                result.problems.append(f"{name}: missing (was sealed with sha256 {files[name][:16]}…)")
            continue
        actual = sha256_file(report_dir / name)
        if actual != files[name]:
            result.problems.append(f"{name}: content changed (sha256 {files[name][:16]}… sealed, "
                                   f"{actual[:16]}… now)")
            if name == COMPLIANCE_FILE:
                compliance_changed = True
                result.problems.extend(_explain_compliance_change(report_dir, manifest.get("compliance", {})))
    for name in sorted(present - set(files)):
        result.problems.append(f"{name}: not in the manifest (added after the run)")
    if not compliance_changed and COMPLIANCE_FILE in present:
        result.problems.extend(_check_recorded_structure(report_dir, manifest.get("compliance")))

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
