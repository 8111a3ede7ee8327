from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from wirecheck.report import integrity, write_all
from wirecheck.report.model import ReportError

from .helpers import REPO, TODAY


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "wirecheck.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


@pytest.fixture
def report(tmp_path, demo_new) -> Path:
    d = tmp_path / "run"
    (d / "evidence" / "wiab-1").mkdir(parents=True)
    (d / "evidence" / "wiab-1" / "lscpu.txt").write_text("CPU(s): 16\nModel name: AMD EPYC 7763\n")
    (d / "evidence" / "wiab-1" / "df.txt").write_text("Mounted on  Size\n/  129372192768\n")
    write_all(d, demo_new, today=TODAY)
    return d


def private_key_file(tmp_path: Path, kind: str) -> Path:
    key = {"ed25519": lambda: ed25519.Ed25519PrivateKey.generate(),
           "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
           "ec": lambda: ec.generate_private_key(ec.SECP256R1())}[kind]()
    path = tmp_path / f"{kind}-{os.urandom(3).hex()}.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def public_key_file(priv: Path) -> Path:
    key = serialization.load_pem_private_key(priv.read_bytes(), password=None)
    pub = priv.with_suffix(".pub.pem")
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return pub


def test_manifest_covers_json_html_and_every_evidence_file(report):
    manifest = json.loads((report / "integrity.json").read_text())
    assert sorted(manifest["files"]) == ["compliance.html", "compliance.json", "evidence/wiab-1/df.txt",
                                         "evidence/wiab-1/lscpu.txt"]
    assert manifest["files"]["evidence/wiab-1/lscpu.txt"] == integrity.sha256_file(report / "evidence/wiab-1/lscpu.txt")
    assert manifest["digest"] == integrity.run_digest(manifest["files"])
    assert "DEMO-SYS-CPU" in manifest["compliance"]["requirements"]
    assert integrity.verify(report).ok
    cp = run_cli("verify-report", str(report))
    assert cp.returncode == 0 and cp.stdout.startswith(f"OK: {report}") and "not signed" in cp.stdout


def test_one_byte_of_evidence_changed_fails_and_names_the_file(report):
    path = report / "evidence" / "wiab-1" / "lscpu.txt"
    data = bytearray(path.read_bytes())
    data[8] ^= 0x01  # "16" -> "17"
    path.write_bytes(bytes(data))
    v = integrity.verify(report)
    assert not v.ok
    assert len(v.problems) == 1 and v.problems[0].startswith("evidence/wiab-1/lscpu.txt: content changed")
    cp = run_cli("verify-report", str(report))
    assert cp.returncode == 1
    assert "FAILED" in cp.stdout and "evidence/wiab-1/lscpu.txt: content changed" in cp.stdout
    assert cp.stderr == ""


def test_edited_compliance_names_the_requirement(report):
    data = json.loads((report / "compliance.json").read_text())
    req = next(r for r in data["requirements"] if r["id"] == "DEMO-NET-IP-FORWARD")
    req["status"] = req["results"][0]["status"] = "pass"
    data["summary"]["pass"] += 1
    (report / "compliance.json").write_text(json.dumps(data, indent=2))
    problems = integrity.verify(report).problems
    assert any(p.startswith("compliance.json: content changed") for p in problems)
    assert "compliance.json: requirement DEMO-NET-IP-FORWARD edited" in problems
    assert "compliance.json: top-level 'summary' changed" in problems
    assert not any("DEMO-SYS-CPU" in p for p in problems)


def test_added_and_deleted_evidence_are_named(report):
    (report / "evidence" / "wiab-1" / "df.txt").unlink()
    (report / "evidence" / "late.txt").write_text("added later")
    problems = integrity.verify(report).problems
    assert any(p.startswith("evidence/wiab-1/df.txt: missing") for p in problems)
    assert "evidence/late.txt: not in the manifest (added after the run)" in problems


def test_manifest_edited_to_match_tampered_file_is_caught_by_digest(report):
    path = report / "evidence" / "wiab-1" / "df.txt"
    path.write_text("forged\n")
    manifest = json.loads((report / "integrity.json").read_text())
    manifest["files"]["evidence/wiab-1/df.txt"] = integrity.sha256_file(path)
    (report / "integrity.json").write_text(json.dumps(manifest))
    problems = integrity.verify(report).problems
    assert problems == ["integrity.json: its digest does not match its own file list (manifest edited)"]


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ec"])
def test_signature_round_trip_and_wrong_key(tmp_path, report, kind):
    key = private_key_file(tmp_path, kind)
    other = private_key_file(tmp_path, "ed25519")
    cp = run_cli("sign", str(report), "--key", str(key))
    assert cp.returncode == 0, cp.stderr
    sig = json.loads((report / "integrity.sig").read_text())
    assert sig["signed_file"] == "integrity.json"
    v = integrity.verify(report, public_key_file(key))
    assert v.ok and v.notes == [f"signature valid, made with the given key {sig['key_fingerprint']}"]
    assert integrity.verify(report).ok  # unpinned: valid, fingerprint reported
    v = integrity.verify(report, public_key_file(other))
    assert not v.ok and "not with the given key" in v.problems[0]
    cp = run_cli("verify-report", str(report), "--key", str(public_key_file(other)))
    assert cp.returncode == 1


def test_resealed_manifest_breaks_the_signature(tmp_path, report):
    """An attacker edits evidence and rewrites integrity.json consistently: only the signature tells."""
    key = private_key_file(tmp_path, "ed25519")
    integrity.sign(report, key)
    (report / "evidence" / "wiab-1" / "df.txt").write_text("forged\n")
    sig = (report / "integrity.sig").read_bytes()
    integrity.write_manifest(report)
    (report / "integrity.sig").write_bytes(sig)
    v = integrity.verify(report, public_key_file(key))
    assert v.problems == ["integrity.sig: signature does not match integrity.json (manifest edited after "
                          "signing, or signature forged)"]


def test_openssh_key_from_ssh_keygen(tmp_path, report):
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen not installed")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", str(key)], check=True,
                   timeout=30)
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    integrity.sign(report, key)
    v = integrity.verify(report, Path(str(key) + ".pub"))  # the OpenSSH public key line
    assert v.ok, v.problems


def test_write_all_signs_when_given_a_key(tmp_path, demo_new):
    key = private_key_file(tmp_path, "ed25519")
    write_all(tmp_path / "r", demo_new, today=TODAY, signing_key=key)
    assert (tmp_path / "r" / "integrity.sig").is_file()
    assert integrity.verify(tmp_path / "r", public_key_file(key)).ok


def test_sign_refuses_a_tampered_report(tmp_path, report):
    (report / "compliance.json").write_text("{}")
    with pytest.raises(ReportError, match="refusing to sign"):
        integrity.sign(report, private_key_file(tmp_path, "ed25519"))


def test_bad_key_is_one_clear_line(tmp_path, report):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    cp = run_cli("sign", str(report), "--key", str(bad))
    assert cp.returncode == 2
    assert cp.stderr == f"wirecheck: error: {bad}: not a private key in PEM, OpenSSH or DER format\n"


def test_unsealed_report_fails_verification(tmp_path, report):
    (report / "integrity.json").unlink()
    cp = run_cli("verify-report", str(report))
    assert cp.returncode == 1 and "integrity.json: missing" in cp.stdout


def test_compliance_json_is_written_atomically(tmp_path, demo_new, monkeypatch):
    d = tmp_path / "r"
    write_all(d, demo_new, today=TODAY)
    before = (d / "compliance.json").read_bytes()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    changed = json.loads(before)
    changed["profile"] = "production"
    with pytest.raises(OSError):
        write_all(d, changed, today=TODAY)
    assert (d / "compliance.json").read_bytes() == before  # old file intact, never half-written
    assert sorted(p.name for p in d.iterdir()) == ["compliance.html", "compliance.json", "integrity.json"]


def test_html_rerender_keeps_seal_valid(report):
    (report / "compliance.html").write_text("<p>edited page</p>")
    assert "compliance.html: content changed" in integrity.verify(report).problems[0]
    cp = run_cli("html", str(report))
    assert cp.returncode == 0, cp.stderr
    assert integrity.verify(report).ok  # the same renderer reproduces the sealed page byte for byte


def test_encrypted_key_needs_passphrase(tmp_path, report, monkeypatch):
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "enc.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"s3cret-pass")))
    monkeypatch.delenv(integrity.PASSPHRASE_ENV, raising=False)
    with pytest.raises(ReportError, match="the key is encrypted; put its passphrase in"):
        integrity.sign(report, path)
    monkeypatch.setenv(integrity.PASSPHRASE_ENV, "s3cret-pass")
    integrity.sign(report, path)
    assert integrity.verify(report, path).ok  # a private key file is accepted as --key too


# --- what verify-report walks: exactly the sealed files, no links, every recorded digest ---------------


def _fails_naming(report: Path, *parts: str) -> list[str]:
    problems = integrity.verify(report).problems
    cp = run_cli("verify-report", str(report))
    assert cp.returncode == 1 and cp.stdout.startswith(f"FAILED: {report}"), cp.stdout
    for part in parts:
        assert part in cp.stdout, (part, cp.stdout)
    return problems


def test_untouched_sealed_report_verifies_also_through_a_link_to_its_directory(tmp_path, report):
    cp = run_cli("verify-report", str(report))
    assert cp.returncode == 0 and cp.stdout.startswith(f"OK: {report}"), cp.stdout
    latest = tmp_path / "latest"  # reports/latest -> reports/<run>: the directory given may be a link
    latest.symlink_to(report, target_is_directory=True)
    assert run_cli("verify-report", str(latest)).returncode == 0


def test_file_added_under_evidence_fails(report):
    (report / "evidence" / "wiab-1" / "extra.txt").write_text("added\n")
    problems = _fails_naming(report, "evidence/wiab-1/extra.txt: not in the manifest (added after the run)")
    assert len(problems) == 1


def test_files_added_through_a_symlinked_directory_fail(tmp_path, report):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "planted.txt").write_text("planted\n")
    (report / "evidence" / "more").symlink_to(outside, target_is_directory=True)
    problems = _fails_naming(report, f"evidence/more: is a symbolic link (to {outside})")
    assert len(problems) == 1
    # replacing a sealed directory by a link to a copy of it is refused as well
    copy = tmp_path / "copy"
    shutil.copytree(report / "evidence" / "wiab-1", copy)
    shutil.rmtree(report / "evidence" / "wiab-1")
    (report / "evidence" / "wiab-1").symlink_to(copy, target_is_directory=True)
    _fails_naming(report, "evidence/wiab-1: is a symbolic link", "evidence/wiab-1/df.txt: missing")


def test_symlink_file_fails_even_to_identical_content(tmp_path, report):
    copy = tmp_path / "df.txt"
    sealed = report / "evidence" / "wiab-1" / "df.txt"
    copy.write_bytes(sealed.read_bytes())
    sealed.unlink()
    sealed.symlink_to(copy)
    problems = _fails_naming(report, "evidence/wiab-1/df.txt: is a symbolic link")
    assert len(problems) == 1  # the link is named once, not also as missing


def test_evidence_edited_and_file_removed_fail(report):
    (report / "evidence" / "wiab-1" / "lscpu.txt").write_text("CPU(s): 64\n")
    (report / "evidence" / "wiab-1" / "df.txt").unlink()
    _fails_naming(report, "evidence/wiab-1/lscpu.txt: content changed", "evidence/wiab-1/df.txt: missing")


def test_per_requirement_digest_mismatch_fails(report):
    manifest = json.loads((report / "integrity.json").read_text())
    manifest["compliance"]["requirements"]["DEMO-SYS-CPU"] = "0" * 64
    (report / "integrity.json").write_text(json.dumps(manifest))
    problems = _fails_naming(report, "integrity.json: the digest recorded for requirement DEMO-SYS-CPU")
    assert len(problems) == 1
    manifest["compliance"]["requirements"].pop("DEMO-SYS-CPU")
    manifest["compliance"]["header"]["summary"] = "1" * 64
    (report / "integrity.json").write_text(json.dumps(manifest))
    _fails_naming(report, "records no digest for requirement DEMO-SYS-CPU",
                  "the digest recorded for top-level key summary")


def test_manifest_naming_a_path_outside_the_report_is_not_read(report):
    manifest = json.loads((report / "integrity.json").read_text())
    manifest["files"]["evidence/../../../etc/passwd"] = "0" * 64
    manifest["digest"] = integrity.run_digest(manifest["files"])
    (report / "integrity.json").write_text(json.dumps(manifest))
    _fails_naming(report, "integrity.json: lists 'evidence/../../../etc/passwd', which is outside")


def test_sealing_refuses_links(tmp_path, demo_new):
    d = tmp_path / "r"
    (d / "evidence").mkdir(parents=True)
    (d / "evidence" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ReportError, match=r"refusing to seal: evidence/passwd is a symbolic link \(to /etc/passwd\)"):
        write_all(d, demo_new, today=TODAY)
    assert not (d / "integrity.json").exists()
    assert not integrity.verify(d).ok
