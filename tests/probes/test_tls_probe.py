"""The TLS probe against real TLS servers (Python ssl in a subprocess) serving chains of a test CA."""

from __future__ import annotations

import datetime as dt
import socket
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.testca import TestCA, write_chain
from tests.support.tlsserver import TlsServer, issue
from wirecheck.probes.tls import (
    TlsReport,
    accepted_ciphers,
    assess_expiry,
    cert_info,
    hostname_matches,
    inspect_pem,
    inspect_tls,
    matching_san,
    merge_by_names,
    offered_versions,
    trust_store,
    verify_for_name,
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
    """A root, an intermediate, and certificate files for every case (tests/support/testca.py)."""
    base: Path = tmp_path_factory.mktemp("pki")
    ca = TestCA()
    inter = ca.intermediate()
    (base / "root.pem").write_bytes(ca.root.pem)
    names = [f"{label}.{DOMAIN}" for label in ("nginz-https", "nginz-ssl", "webapp", "assets", "account", "teams", "sftd")]

    def write(name: str, leaf, chain=(inter,)) -> tuple[Path, Path]:
        return write_chain(base, name, leaf, chain)

    self_signed = base / "self-signed"
    self_signed.mkdir()
    (self_signed / "s.crt").write_bytes((signed := issue(names))[0])
    (self_signed / "s.key").write_bytes(signed[1])
    files = {
        "valid": write("valid", ca.leaf(names, inter)),
        "wildcard": write("wildcard", ca.leaf([f"*.{DOMAIN}"], inter)),
        "no-teams": write("no-teams", ca.leaf([n for n in names if not n.startswith("teams")], inter)),
        "expired": write("expired", ca.leaf(names, inter, not_before=NOW - dt.timedelta(days=90),
                                            not_after=NOW - dt.timedelta(days=3))),
        "future": write("future", ca.leaf(names, inter, not_before=NOW + dt.timedelta(days=2),
                                          not_after=NOW + dt.timedelta(days=90))),
        "ten-days": write("ten-days", ca.leaf(names, inter, not_after=NOW + dt.timedelta(days=10))),
        "self-signed": (self_signed / "s.crt", self_signed / "s.key"),
        "no-intermediate": write("no-intermediate", ca.leaf(names, inter), chain=()),
        "rsa1024": write("rsa1024", ca.leaf(names, inter, key="rsa1024")),
    }
    return {"root": str(base / "root.pem"), "files": files, "names": names, "ca": ca, "inter": inter}


def serve(pki, case: str, **options) -> TlsServer:
    cert, key = pki["files"][case]
    return TlsServer(cert, key, address=ADDRESS, **options)


def test_valid_certificate_report(pki):
    with serve(pki, "valid") as server:
        report = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert report.ok, report.error
    assert report.verified, report.check
    assert report.check.path == [report.leaf.subject, pki["inter"].subject, pki["ca"].root.subject]
    assert all(report.covers(name) for name in pki["names"])
    assert report.leaf.key_type == "EC" and report.leaf.curve == "secp256r1"
    assert report.protocol == "TLSv1.3"
    assert len(report.chain_sent) == 2
    assert report.leaf.validity() == "valid"
    assert 89 < report.leaf.days_left() < 91
    evidence = report.evidence()
    assert [c["position"] for c in evidence["chain_sent"]] == ["the leaf", "the intermediate"]
    assert evidence["verification"]["verified"] is True and evidence["verification"]["trust_store"] == pki["root"]


def test_system_store_does_not_trust_a_private_root(pki):
    with serve(pki, "valid") as server:
        report = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", None, timeout=3)
    assert report.check.refused and not report.verified
    assert report.check.store == trust_store(None)[2]
    assert f"which is not in {report.check.store}" in report.check.problems[0]


def test_wrong_san_is_refused_for_that_name_only(pki):
    with serve(pki, "no-teams") as server:
        teams = inspect_tls(ADDRESS, server.port, f"teams.{DOMAIN}", pki["root"], timeout=3)
        webapp = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert teams.check.refused and webapp.verified
    assert "no matching subjectAltName" in teams.check.library_reason
    assert f"does not cover teams.{DOMAIN}: its SANs are DNS:nginz-https.{DOMAIN}" in teams.check.problems[0]


def test_wildcard_covers_one_label_only(pki):
    with serve(pki, "wildcard") as server:
        report = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert report.verified
    chain = x509.load_pem_x509_certificates(pki["files"]["wildcard"][0].read_bytes())
    assert verify_for_name(chain, f"deep.webapp.{DOMAIN}", pki["root"]).refused
    assert verify_for_name(chain, DOMAIN, pki["root"]).refused


def test_expired_and_not_yet_valid_leaf(pki):
    with serve(pki, "expired") as server:
        expired = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert expired.leaf.validity() == "expired" and expired.leaf.days_left() < -2
    assert expired.check.refused
    day = (NOW - dt.timedelta(days=3)).strftime("%Y-%m-%d")
    assert f"the leaf ({expired.leaf.subject}) expired on {day}" in expired.check.problems[0]
    with serve(pki, "future") as server:
        future = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert future.leaf.validity() == "not yet valid"
    assert f"the leaf ({future.leaf.subject}) is not valid before" in future.check.problems[0]


def test_expiring_in_ten_days_still_verifies(pki):
    with serve(pki, "ten-days") as server:
        report = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert report.verified
    assert 9.9 < report.leaf.days_left() < 10.1


def test_self_signed_and_missing_intermediate(pki):
    with serve(pki, "self-signed") as server:
        selfsigned = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert selfsigned.leaf.self_signed and selfsigned.check.refused
    with serve(pki, "no-intermediate") as server:
        partial = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert len(partial.chain_sent) == 1
    assert partial.check.refused
    assert "the server sends only the leaf: serve the full chain" in partial.check.problems[0]


def test_weak_rsa_key_is_seen_and_refused(pki):
    with serve(pki, "rsa1024") as server:
        report = inspect_tls(ADDRESS, server.port, f"webapp.{DOMAIN}", pki["root"], timeout=3)
    assert report.ok, report.error
    assert (report.leaf.key_type, report.leaf.key_bits) == ("RSA", 1024)
    assert report.check.ok and not report.verified  # cryptography builds the path; the key size refuses it
    assert report.check.problems == [
        f"the leaf ({report.leaf.subject}) has an RSA 1024-bit key; clients refuse RSA keys under 2048 bits "
        "(OpenSSL security level 2, the default on Debian and Ubuntu; CA/Browser Forum baseline requirements "
        "§6.1.5): reissue it with an RSA 2048+ or EC P-256 key"
    ]


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
    good = inspect_pem(cert.read_bytes(), key.read_bytes(), pki["root"], pki["names"])
    assert good.key_matches and good.order_ok
    assert all(check.ok and not check.problems for check in good.checks.values())
    assert len(good.chain) == 2
    other_key = pki["files"]["wildcard"][1].read_bytes()
    mismatch = inspect_pem(cert.read_bytes(), other_key, pki["root"])
    assert not mismatch.key_matches and "does not belong" in mismatch.key_error
    leaf_only = inspect_pem(pki["files"]["no-intermediate"][0].read_bytes(), None, pki["root"], [f"webapp.{DOMAIN}"])
    assert leaf_only.checks[f"webapp.{DOMAIN}"].refused
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


# --- crafted chains: each refused for its one defect, its good twin verified -----------------------------


@pytest.fixture(scope="module")
def crafted(pki):
    ca, inter, name = pki["ca"], pki["inter"], f"webapp.{DOMAIN}"
    expired = ca.intermediate("expired intermediate", NOW - dt.timedelta(days=400), NOW - dt.timedelta(days=2))
    future = ca.intermediate("future intermediate", NOW + dt.timedelta(days=2), NOW + dt.timedelta(days=400))
    return {
        "expired-intermediate": [ca.leaf([name], expired, not_before=NOW - dt.timedelta(days=30)).cert, expired.cert],
        "future-intermediate": [ca.leaf([name], future).cert, future.cert],
        "rsa1024": [ca.leaf([name], inter, key="rsa1024").cert, inter.cert],
        "rsa2047": [ca.leaf([name], inter, key="rsa2047").cert, inter.cert],
        "sha1": [ca.leaf([name], inter, signature_hash="sha1").cert, inter.cert],
        "client-auth-only": [ca.leaf([name], inter, usages=("clientAuth",)).cert, inter.cert],
        "cn-only": [ca.leaf([name], inter, san=False).cert, inter.cert],
        # the good twins: the same leaf but for the one property
        "current-intermediate": [ca.leaf([name], inter).cert, inter.cert],
        "rsa2048": [ca.leaf([name], inter, key="rsa2048").cert, inter.cert],
        "sha256": [ca.leaf([name], inter, signature_hash="sha256").cert, inter.cert],
        "server-and-client-auth": [ca.leaf([name], inter, usages=("serverAuth", "clientAuth")).cert, inter.cert],
        "no-eku": [ca.leaf([name], inter, usages=()).cert, inter.cert],  # no EKU: any usage (RFC 5280)
        "san": [ca.leaf([name], inter, san=True).cert, inter.cert],
    }


@pytest.mark.parametrize(("case", "explanation"), [
    ("expired-intermediate", "the intermediate (CN=expired intermediate,O=wirecheck tests) expired on"),
    ("future-intermediate", "the intermediate (CN=future intermediate,O=wirecheck tests) is not valid before"),
    ("rsa1024", "has an RSA 1024-bit key; clients refuse RSA keys under 2048 bits"),
    ("rsa2047", "has an RSA 2047-bit key"),
    ("sha1", "the leaf (CN=webapp.wire.example.test,O=wirecheck tests) is signed with SHA1, a signature algorithm "
             "clients refuse"),
    ("client-auth-only", "its extended key usage is clientAuth, without serverAuth"),
    ("cn-only", "has no subjectAltName extension, so webapp.wire.example.test is only in its subject CN"),
])  # fmt: skip
def test_crafted_chain_is_refused_naming_the_certificate(pki, crafted, case, explanation):
    check = verify_for_name(crafted[case], f"webapp.{DOMAIN}", pki["root"])
    assert check.refused and len(check.problems) == 1, check
    assert explanation in check.problems[0]


@pytest.mark.parametrize("case", ["current-intermediate", "rsa2048", "sha256", "server-and-client-auth", "no-eku", "san"])
def test_good_twin_verifies(pki, crafted, case):
    check = verify_for_name(crafted[case], f"webapp.{DOMAIN}", pki["root"])
    assert check.ok and not check.problems, check
    assert len(check.path) == 3


def test_verification_happens_at_the_time_given(pki, crafted):
    """The dates of every certificate are judged at the moment of the run, not at the leaf's midpoint."""
    chain = crafted["expired-intermediate"]
    assert verify_for_name(chain, f"webapp.{DOMAIN}", pki["root"], now=NOW - dt.timedelta(days=10)).ok
    assert verify_for_name(chain, f"webapp.{DOMAIN}", pki["root"], now=NOW).refused


def test_unreadable_trust_store_is_unmeasured_not_refused(tmp_path, crafted):
    empty = tmp_path / "empty.pem"
    empty.write_text("no certificates here\n")
    check = verify_for_name(crafted["san"], f"webapp.{DOMAIN}", str(empty))
    assert check.unmeasured == f"no certificate could be read from the trust store {empty}"
    assert not check.refused and not check.ok
    missing = verify_for_name(crafted["san"], f"webapp.{DOMAIN}", str(tmp_path / "absent.pem"))
    assert "cannot read the trust store" in missing.unmeasured


def test_a_name_only_in_the_cn_is_not_covered(crafted):
    """Issue 12's surviving mutant: a certificate with the name only in its CN passed."""
    leaf = cert_info(crafted["cn-only"][0])
    assert leaf.common_name == f"webapp.{DOMAIN}" and leaf.dns_names == []
    assert not leaf.covers(f"webapp.{DOMAIN}")
    assert cert_info(crafted["san"][0]).covers(f"webapp.{DOMAIN}")


def test_name_that_cannot_be_verified_is_unmeasured(pki, crafted):
    check = verify_for_name(crafted["san"], "not a name!", pki["root"])
    assert check.unmeasured.startswith("'not a name!' is not a name a certificate can be verified for")
    assert not check.refused


def test_wildcard_mismatch_explains_the_one_label_rule(pki):
    chain = x509.load_pem_x509_certificates(pki["files"]["wildcard"][0].read_bytes())
    check = verify_for_name(chain, f"deep.webapp.{DOMAIN}", pki["root"])
    assert check.problems == [
        f"the leaf (CN=*.{DOMAIN},O=wirecheck tests) does not cover deep.webapp.{DOMAIN}: its SANs are DNS:*.{DOMAIN} "
        f"(RFC 6125: a wildcard covers exactly one left-most label): reissue it with deep.webapp.{DOMAIN} (or a "
        "wildcard for its parent) in the SAN (cryptography's verifier: leaf certificate has no matching subjectAltName)"
    ]


def test_same_reason_for_several_names_is_said_once():
    merged = merge_by_names({"a.test": ["chain refused", "a.test not covered"], "b.test": ["chain refused"]},
                            ["a.test", "b.test"])
    assert merged == ["for every name: chain refused", "a.test: a.test not covered"]
    assert merge_by_names({"a.test": ["x"]}, ["a.test", "b.test"]) == ["a.test: x"]
    assert merge_by_names({"a.test": ["x"]}, ["a.test"]) == ["a.test: x"]


def test_expiry_looks_at_every_certificate_of_the_chain_at_the_boundary(pki):
    """The intermediate expires before the leaf: its date decides, and exactly 30 days left is enough."""
    ca = pki["ca"]
    inter = ca.intermediate("short intermediate", NOW - dt.timedelta(days=10), NOW + dt.timedelta(days=30))
    leaf = ca.leaf([f"webapp.{DOMAIN}"], inter)  # valid for 90 days
    chain = [cert_info(leaf.cert), cert_info(inter.cert)]
    report = TlsReport(ADDRESS, 443, f"webapp.{DOMAIN}", leaf=chain[0], chain_sent=chain)
    at_limit = inter.cert.not_valid_after_utc - dt.timedelta(days=30)
    result, down = assess_expiry({f"webapp.{DOMAIN}": report}, 30, 14, now=at_limit)
    assert not result.problems and not down
    assert result.observed == {f"webapp.{DOMAIN}": 30.0}
    assert result.evidence[f"webapp.{DOMAIN}"]["earliest_expiry"]["position"] == "the intermediate"
    result, down = assess_expiry({f"webapp.{DOMAIN}": report}, 30, 14, now=at_limit + dt.timedelta(seconds=1))
    assert not down and result.problems == [
        f"in the chain served for webapp.{DOMAIN}, the intermediate (CN=short intermediate,O=wirecheck tests) "
        f"expires first, on {inter.cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, in 30.0 days (warning: under 30 "
        "days): serve the CA's current intermediate (or renew so that it is sent)"
    ]
    result, down = assess_expiry({f"webapp.{DOMAIN}": report}, 30, 14,
                                 now=inter.cert.not_valid_after_utc + dt.timedelta(seconds=1))
    assert down and "the intermediate (CN=short intermediate,O=wirecheck tests) expired on" in result.problems[0]
