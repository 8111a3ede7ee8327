"""The TLS probe against real TLS servers (Python ssl in a subprocess) with trustme certificates."""

from __future__ import annotations

import datetime as dt
import socket
import time
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from tests.support.tlsserver import TlsServer, issue
from wirecheck.probes.tls import (
    accepted_ciphers,
    hostname_matches,
    inspect_pem,
    inspect_tls,
    matching_san,
    offered_versions,
)

DOMAIN = "wire.example.test"
NOW = dt.datetime.now(dt.UTC)
ADDRESS = "127.0.0.1"


@pytest.mark.parametrize(
    ("name", "sans", "matches"),
    [
        ("webapp.wire.example.test", ["webapp.wire.example.test"], True),
        ("WebApp.Wire.Example.Test.", ["webapp.wire.example.test"], True),
        ("webapp.wire.example.test", ["*.wire.example.test"], True),
        ("a.webapp.wire.example.test", ["*.wire.example.test"], False),  # one label deep only
        ("wire.example.test", ["*.wire.example.test"], False),  # the wildcard needs a label
        ("webapp.wire.example.test", ["*.example.test"], False),
        ("example.com", ["*.com"], False),  # no wildcard directly under a single label
        ("webapp.wire.example.test", ["web*.wire.example.test"], False),  # partial wildcards refused
        ("webapp.wire.example.test", ["webapp.*.example.test"], False),
        ("xn--bcher-kva.example.test", ["*.example.test"], False),  # no wildcard for IDN A-labels
        ("teams.wire.example.test", ["webapp.wire.example.test", "account.wire.example.test"], False),
    ],
)
def test_hostname_matching_rfc6125(name, sans, matches):
    assert hostname_matches(name, sans) is matches


def test_ip_names_match_ip_sans_only():
    assert matching_san("127.0.0.1", ["127.0.0.1"], []) is None
    assert matching_san("127.0.0.1", [], ["127.0.0.1"]) == "127.0.0.1"
    assert matching_san("webapp.wire.example.test", ["*.wire.example.test"]) == "*.wire.example.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A root, an intermediate, and certificate files for every case."""
    base: Path = tmp_path_factory.mktemp("pki")
    root = trustme.CA()
    intermediate = root.create_child_ca()
    (base / "root.pem").write_bytes(root.cert_pem.bytes())
    inter_pem = intermediate.cert_pem.bytes()
    inter_key = intermediate.private_key_pem.bytes()

    def write(name: str, cert: bytes, key: bytes, chain: bytes = b"") -> tuple[Path, Path]:
        (base / f"{name}.crt").write_bytes(cert + chain)
        (base / f"{name}.key").write_bytes(key)
        return base / f"{name}.crt", base / f"{name}.key"

    names = [f"{label}.{DOMAIN}" for label in ("nginz-https", "nginz-ssl", "webapp", "assets", "account", "teams", "sftd")]
    files = {
        "valid": write("valid", *issue(names, inter_pem, inter_key), inter_pem),
        "wildcard": write("wildcard", *issue([f"*.{DOMAIN}"], inter_pem, inter_key), inter_pem),
        "no-teams": write("no-teams", *issue([n for n in names if not n.startswith("teams")], inter_pem, inter_key), inter_pem),
        "expired": write(
            "expired",
            *issue(names, inter_pem, inter_key, not_before=NOW - dt.timedelta(days=90), not_after=NOW - dt.timedelta(days=3)),
            inter_pem,
        ),
        "future": write(
            "future",
            *issue(names, inter_pem, inter_key, not_before=NOW + dt.timedelta(days=2), not_after=NOW + dt.timedelta(days=90)),
            inter_pem,
        ),
        "ten-days": write("ten-days", *issue(names, inter_pem, inter_key, not_after=NOW + dt.timedelta(days=10)), inter_pem),
        "self-signed": write("self-signed", *issue(names)),
        "no-intermediate": write("no-intermediate", *issue(names, inter_pem, inter_key)),
        "rsa1024": write("rsa1024", *issue(names, inter_pem, inter_key, key="rsa1024"), inter_pem),
    }
    return {"root": str(base / "root.pem"), "files": files, "intermediate": inter_pem, "names": names}


def serve(pki, case: str, **options) -> TlsServer:
    cert, key = pki["files"][case]
    return TlsServer(cert, key, address=ADDRESS, **options)


def test_valid_certificate_report(pki):
    with serve(pki, "valid") as server:
        report = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert report.ok, report.error
    assert report.chain_ok, report.chain_error
    assert all(report.covers(name) for name in pki["names"])
    assert report.leaf.key_type == "EC" and report.leaf.curve == "secp256r1"
    assert report.protocol == "TLSv1.3"
    assert len(report.chain_sent) == 2
    assert report.leaf.validity() == "valid"
    assert 364 < report.leaf.days_left() < 366
    assert "chain ok" in report.describe()


def test_system_store_does_not_trust_a_private_root(pki):
    with serve(pki, "valid") as server:
        report = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", None, timeout=3)
    assert not report.chain_ok
    assert "unable to get" in report.chain_error


def test_wrong_san_is_visible(pki):
    with serve(pki, "no-teams") as server:
        report = inspect_tls(ADDRESS, server.port, f"teams.{DOMAIN}", pki["root"], timeout=3)
    assert report.chain_ok
    assert not report.covers(f"teams.{DOMAIN}")
    assert report.covers(f"webapp.{DOMAIN}")
    assert f"DNS:teams.{DOMAIN}" not in report.leaf.sans


def test_wildcard_covers_one_label_only(pki):
    with serve(pki, "wildcard") as server:
        report = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert report.covers(f"webapp.{DOMAIN}")
    assert not report.covers(f"deep.webapp.{DOMAIN}")
    assert not report.covers(DOMAIN)


def test_expired_and_not_yet_valid(pki):
    with serve(pki, "expired") as server:
        expired = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert expired.leaf.validity() == "expired"
    assert expired.leaf.days_left() < -2
    assert not expired.chain_ok and "expired" in expired.chain_error
    assert expired.trust_path_ok  # only the dates are wrong
    with serve(pki, "future") as server:
        future = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert future.leaf.validity() == "not yet valid"
    assert "not yet valid" in future.chain_error


def test_expiring_in_ten_days(pki):
    with serve(pki, "ten-days") as server:
        report = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert report.chain_ok
    assert 9.9 < report.leaf.days_left() < 10.1


def test_self_signed_and_missing_intermediate(pki):
    with serve(pki, "self-signed") as server:
        selfsigned = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert selfsigned.leaf.self_signed
    assert not selfsigned.chain_ok and "self-signed" in selfsigned.chain_error
    with serve(pki, "no-intermediate") as server:
        partial = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert len(partial.chain_sent) == 1
    assert not partial.chain_ok and "unable to get local issuer certificate" in partial.chain_error


def test_weak_rsa_key_is_reported_not_refused(pki):
    with serve(pki, "rsa1024") as server:
        report = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert report.ok, report.error
    assert (report.leaf.key_type, report.leaf.key_bits) == ("RSA", 1024)
    assert report.leaf.key_text == "RSA 1024"


def test_tls10_only_server_is_seen(pki):
    with serve(pki, "valid", min_version="TLSv1", max_version="TLSv1", ciphers="ALL:@SECLEVEL=0") as server:
        report = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
        versions = offered_versions(ADDRESS, server.port, f"webapp.{DOMAIN}", timeout=3)
        tls10 = accepted_ciphers(ADDRESS, server.port, f"webapp.{DOMAIN}", "TLSv1", timeout=3)
    assert report.ok and report.protocol == "TLSv1"
    assert not versions["TLSv1"].startswith("rejected")
    assert all(versions[v].startswith("rejected") for v in ("TLSv1.1", "TLSv1.2", "TLSv1.3"))
    assert tls10


def test_modern_server_versions_and_ciphers(pki):
    with serve(pki, "valid") as server:
        versions = offered_versions(ADDRESS, server.port, f"webapp.{DOMAIN}", timeout=3)
        tls12 = accepted_ciphers(ADDRESS, server.port, f"webapp.{DOMAIN}", "TLSv1.2", timeout=3)
        tls13 = accepted_ciphers(ADDRESS, server.port, f"webapp.{DOMAIN}", "TLSv1.3", timeout=3)
    assert versions["TLSv1"].startswith("rejected") and versions["TLSv1.1"].startswith("rejected")
    assert set(tls12) == {"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"}
    assert set(tls13) == {"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"}


def test_refused_and_silent_servers_are_errors_within_the_timeout():
    refused = inspect_tls(ADDRESS, 1, "x.test", None, timeout=1)
    assert not refused.ok and "refused" in refused.error
    with socket.socket() as listener:  # accepts TCP (backlog) but never speaks TLS
        listener.bind((ADDRESS, 0))
        listener.listen(1)
        started = time.monotonic()
        silent = inspect_tls(ADDRESS, listener.getsockname()[1], "x.test", None, timeout=0.5)
        elapsed = time.monotonic() - started
    assert not silent.ok and "within 0.5s" in silent.error
    assert elapsed < 2


def test_pem_bundle_key_match_and_chain(pki):
    cert, key = pki["files"]["valid"]
    good = inspect_pem(cert.read_bytes(), key.read_bytes(), pki["root"])
    assert good.key_matches and good.chain_ok and good.order_ok
    assert len(good.chain) == 2
    other_key = pki["files"]["wildcard"][1].read_bytes()
    mismatch = inspect_pem(cert.read_bytes(), other_key, pki["root"])
    assert not mismatch.key_matches and "does not belong" in mismatch.key_error
    leaf_only = inspect_pem(pki["files"]["no-intermediate"][0].read_bytes(), None, pki["root"])
    assert not leaf_only.chain_ok and "unable to get local issuer" in leaf_only.chain_error
    assert inspect_pem(b"not a pem", None).error


def test_pem_accepts_every_key_form(pki):
    cert, key = pki["files"]["rsa1024"]
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    traditional = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    assert traditional.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert inspect_pem(cert.read_bytes(), traditional, pki["root"]).key_matches
    ec_cert, ec_key = pki["files"]["valid"]
    ec_private = serialization.load_pem_private_key(ec_key.read_bytes(), password=None)
    sec1 = ec_private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    assert sec1.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert inspect_pem(ec_cert.read_bytes(), sec1, pki["root"]).key_matches
