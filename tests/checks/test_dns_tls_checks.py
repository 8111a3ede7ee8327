"""The DNS and TLS checks end to end: `pytest suites/... -k "dns or tls"` in a subprocess against a
real dnsmasq and real TLS servers on loopback, judged by the compliance.json it writes.

IMP-RESOLVER is deselected in the loopback runs: it runs `getent` on the target, which for the local
target would ask this machine's own resolver.  It is tested on lab hosts (network namespaces) whose
/etc/resolv.conf points at a dnsmasq on the lab bridge.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.dnsmasq import DnsmasqServer, SilentResolver, Zone, wire_zone
from tests.support.freeport import free_port
from tests.support.publicip import PublicIpServer
from tests.support.testca import TestCA, write_chain
from tests.support.tlsserver import TlsServer
from tests.support.wc import QUIET_PLUGINS, host_args

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "wire.example.test"
NAMES = [f"{label}.{DOMAIN}" for label in ("nginz-https", "nginz-ssl", "assets", "webapp", "account", "teams", "sftd")]
NOW = dt.datetime.now(dt.UTC)
DNS_KEYWORDS = "(dns or tls) and not node_resolver"
TLS_KEYWORDS = "tls"


def loopback() -> str:
    """A loopback address of its own for each scenario (tests may run in parallel)."""
    # The last octet stays below 26 so that "<address>5" is still an address (the SPF look-alike case).
    return f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 25)}"


def run_suite(phase: str, keywords: str, report_dir: Path, *args: str, timeout: float = 180) -> dict:
    argv = [sys.executable, "-m", "pytest", f"suites/{phase}", "-k", keywords, "-q", *QUIET_PLUGINS,
            "--report-dir", str(report_dir), *args]  # fmt: skip
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    path = report_dir / "compliance.json"
    assert path.exists(), f"no compliance.json; rc {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(path.read_text())


def result(compliance: dict, rid: str) -> dict:
    for requirement in compliance["requirements"]:
        if requirement["id"] == rid:
            assert len(requirement["results"]) == 1, requirement
            return requirement["results"][0]
    raise AssertionError(f"{rid} not in the report")


def preflight_dns(tmp_path: Path, zone, wire_ip: str, *extra: str) -> dict:
    with DnsmasqServer(zone, address=loopback()) as server:
        return run_suite("preflight", DNS_KEYWORDS, tmp_path / "report", "--domain", DOMAIN, "--wire-ip", wire_ip,
                         "--nameserver", server.nameserver, *extra)  # fmt: skip


# --- DNS ------------------------------------------------------------------------------------------


def test_correct_zone_passes_with_resolver_in_the_evidence(tmp_path):
    wire_ip = loopback()
    report = preflight_dns(tmp_path, wire_zone(DOMAIN, wire_ip), wire_ip)
    for rid in ("DNS-DEMO-RECORDS", "DNS-SPF", "DNS-SFTD", "IMP-CAA", "IMP-AAAA"):
        assert result(report, rid)["status"] == "pass", result(report, rid)
    records = result(report, "DNS-DEMO-RECORDS")
    assert records["observed"] == {name: [wire_ip] for name in NAMES}
    lookup = records["evidence"]["details"][f"webapp.{DOMAIN}"]
    assert lookup["resolver"].startswith("127.") and lookup["records"] == [wire_ip]
    assert result(report, "DNS-SPF")["observed"]["decided_by"] == "a"  # v=spf1 a mx ip4:<ip> -all
    assert "ingress" in result(report, "DNS-SFTD")["evidence"]["placement"]
    for rid in ("DNS-PROD-CORE", "DNS-FED-SRV", "DNS-FED-A", "DNS-RESTUND"):
        assert result(report, rid)["status"] == "not_applicable"
    acme = result(report, "TLS-ACME-PREREQ")  # a pass is a sentence, the data is in observed/evidence
    assert acme["status"] == "pass", acme
    assert f"all 7 names resolve to {wire_ip}, CAA lets letsencrypt.org issue, and TCP {wire_ip}:80 " in acme["message"]
    assert "{" not in acme["message"]


def test_wrong_address_and_lookalike_spf_fail_naming_record_found_and_expected(tmp_path):
    wire_ip, other = loopback(), loopback()
    zone = wire_zone(DOMAIN, wire_ip)
    zone.a["webapp"] = [other]
    zone.txt["@"] = [f"v=spf1 ip4:{wire_ip}5 -all"]
    report = preflight_dns(tmp_path, zone, wire_ip)
    records = result(report, "DNS-DEMO-RECORDS")
    assert records["status"] == "fail"
    assert f"webapp.{DOMAIN} resolves to {other}" in records["message"]
    assert f"expected {wire_ip}" in records["message"]
    assert f"change `webapp.{DOMAIN}. IN A` from {other} to {wire_ip}" in records["message"]
    assert records["observed"][f"webapp.{DOMAIN}"] == [other]
    assert records["observed"][f"account.{DOMAIN}"] == [wire_ip]
    spf = result(report, "DNS-SPF")
    assert spf["status"] == "warn"  # DNS-SPF is a SHOULD: a broken SHOULD is reported as warn
    assert f"ip4:{wire_ip}5 only looks like {wire_ip}" in spf["message"]
    assert f"does not authorise {wire_ip}" in spf["message"]
    assert f"v=spf1 a mx ip4:{wire_ip} -all" in spf["message"]
    assert spf["observed"]["record"] == f"v=spf1 ip4:{wire_ip}5 -all"


def test_missing_name_and_cname_chains(tmp_path):
    wire_ip, other = loopback(), loopback()
    zone = wire_zone(DOMAIN, wire_ip)
    del zone.a["teams"]  # one name missing
    del zone.a["account"], zone.a["assets"]
    zone.a["lb"] = [wire_ip]
    zone.a["elsewhere"] = [other]
    zone.cname = {"account": "edge", "edge": "lb", "assets": "cdn", "cdn": "elsewhere"}
    zone.txt["@"] = [f"v=spf1 ip4:{wire_ip.rsplit('.', 1)[0]}.0/24 -all"]  # a covering CIDR
    report = preflight_dns(tmp_path, zone, wire_ip)
    records = result(report, "DNS-DEMO-RECORDS")
    assert records["status"] == "fail"
    message = records["message"]
    assert f"teams.{DOMAIN} does not exist (NXDOMAIN" in message
    assert f"create `teams.{DOMAIN}. IN A {wire_ip}`" in message
    assert f"assets.{DOMAIN} resolves to {other} via CNAME cdn.{DOMAIN} -> elsewhere.{DOMAIN}" in message
    assert f"account.{DOMAIN}" not in message  # its chain ends at the right address
    chain = records["evidence"]["details"][f"account.{DOMAIN}"]["cname_chain"]
    assert chain == [f"edge.{DOMAIN}", f"lb.{DOMAIN}"]
    spf = result(report, "DNS-SPF")
    assert spf["status"] == "pass"
    assert spf["observed"]["decided_by"].startswith("ip4:") and spf["observed"]["decided_by"].endswith("/24")


def test_caa_forbidding_letsencrypt_and_stale_aaaa(tmp_path):
    wire_ip = loopback()
    zone = wire_zone(DOMAIN, wire_ip)
    zone.caa = {"@": [(0, "issue", "pki.goog"), (0, "iodef", "mailto:sec@example.test")]}
    zone.a["webapp"] = [wire_ip, "::1"]  # nothing listens on [::1]:443
    report = preflight_dns(tmp_path, zone, wire_ip)
    caa = result(report, "IMP-CAA")
    assert caa["status"] == "warn"
    assert f"CAA at {DOMAIN} does not let letsencrypt.org issue with http-01" in caa["message"]
    assert """'0 issue "pki.goog"' names pki.goog""" in caa["message"]
    assert f'add `{DOMAIN}. IN CAA 0 issue "letsencrypt.org"`' in caa["message"]
    aaaa = result(report, "IMP-AAAA")
    assert aaaa["status"] == "warn"
    assert f"webapp.{DOMAIN} has AAAA ::1" in aaaa["message"]
    assert f"remove `webapp.{DOMAIN}. IN AAAA ::1`" in aaaa["message"]
    acme = result(report, "TLS-ACME-PREREQ")
    assert acme["status"] == "fail" and "pki.goog" in acme["message"]


def test_silent_resolver_gives_error_quickly_not_fail(tmp_path):
    with SilentResolver(loopback()) as silent:
        started = time.monotonic()
        report = run_suite("preflight", DNS_KEYWORDS, tmp_path / "report", "--domain", DOMAIN,
                           "--wire-ip", "127.0.0.1", "--nameserver", silent.nameserver)  # fmt: skip
        elapsed = time.monotonic() - started
    budget = 2.0 * 2  # the default --dns-timeout x --dns-tries
    for rid in ("DNS-DEMO-RECORDS", "DNS-SPF", "DNS-SFTD", "IMP-CAA", "IMP-AAAA", "TLS-ACME-PREREQ"):
        entry = result(report, rid)
        assert entry["status"] == "error", entry
        assert silent.nameserver in entry["message"] and "no answer" in entry["message"]
        assert entry["duration"] < budget + 2, (rid, entry["duration"])
    assert elapsed < 60


def test_federation_records(tmp_path):
    wire_ip = loopback()
    inventory = tmp_path / "host.yml"
    inventory.write_text(
        "all:\n  hosts:\n    deploy_node:\n      ansible_connection: local\n"
        f"      target_domain: {DOMAIN}\n      wire_ip: {wire_ip}\n      federation_enabled: true\n"
    )
    zone = wire_zone(DOMAIN, wire_ip)
    zone.a["federator"] = [wire_ip]
    zone.srv = {"_wire-server-federator._tcp": [("federator", 443, 0, 10)]}
    with DnsmasqServer(zone, address=loopback()) as server:
        good = run_suite("preflight", DNS_KEYWORDS, tmp_path / "good", "--ansible-inventory", str(inventory),
                         "--nameserver", server.nameserver)  # fmt: skip
    assert result(good, "DNS-FED-SRV")["status"] == "pass"
    assert result(good, "DNS-FED-SRV")["evidence"]["ttl"] == 600
    assert result(good, "DNS-FED-A")["status"] == "pass"
    zone.srv = {"_wire-server-federator._tcp": [("fed2", 8443, 0, 0)]}
    zone.a["fed2"] = [loopback()]
    with DnsmasqServer(zone, address=loopback()) as server:
        bad = run_suite("preflight", DNS_KEYWORDS, tmp_path / "bad", "--ansible-inventory", str(inventory),
                        "--nameserver", server.nameserver)  # fmt: skip
    srv = result(bad, "DNS-FED-SRV")
    assert srv["status"] == "fail"
    for part in ("port 8443, need 443", "weight 0, need > 0", f"target fed2.{DOMAIN}, need federator.{DOMAIN}"):
        assert part in srv["message"]
    fed_a = result(bad, "DNS-FED-A")
    assert fed_a["status"] == "fail" and f"fed2.{DOMAIN} resolves to" in fed_a["message"]


def test_production_core_names_and_restund(tmp_path):
    wire_ip, restund1, restund2 = loopback(), loopback(), loopback()
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[all]\nkubenode1 ansible_host=198.18.0.10\n"
        f"restund01 ansible_host=198.18.0.11 restund_public_ip={restund1}\n"
        f"restund02 ansible_host=198.18.0.12 restund_public_ip={restund2}\n"
        "[kube-node]\nkubenode1\n[restund]\nrestund01\nrestund02\n"
        f"[all:vars]\ntarget_domain={DOMAIN}\nwire_ip={wire_ip}\n"
    )
    zone = wire_zone(DOMAIN, wire_ip)
    del zone.a["assets"]
    zone.a["s3"] = [wire_ip]  # the documented alternative to assets
    zone.a["restund01"] = [restund1]
    zone.a["restund02"] = [restund1]  # both names on one server
    with DnsmasqServer(zone, address=loopback()) as server:
        report = run_suite("preflight", DNS_KEYWORDS, tmp_path / "report", "--ansible-inventory", str(inventory),
                           "--nameserver", server.nameserver)  # fmt: skip
    assert report["profile"] == "production"
    core = result(report, "DNS-PROD-CORE")
    assert core["status"] == "pass", core
    assert f"s3.{DOMAIN}" in core["observed"]
    restund = result(report, "DNS-RESTUND")
    assert restund["status"] == "fail"
    assert f"restund02.{DOMAIN} resolves to {restund1}" in restund["message"]
    assert f"expected {restund2}" in restund["message"]
    assert "both point to" in restund["message"]


# --- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("pki")
    ca = TestCA()
    inter = ca.intermediate()
    (base / "root.pem").write_bytes(ca.root.pem)
    expired = ca.intermediate("expired intermediate", NOW - dt.timedelta(days=400), NOW - dt.timedelta(days=2))
    future = ca.intermediate("future intermediate", NOW + dt.timedelta(days=2), NOW + dt.timedelta(days=400))
    short = ca.intermediate("short-lived intermediate", NOW - dt.timedelta(days=30), NOW + dt.timedelta(days=10))
    no_teams = [n for n in NAMES if not n.startswith("teams.")]

    def make(name: str, names=NAMES, issuer=inter, with_chain=True, **options) -> tuple[Path, Path]:
        return write_chain(base, name, ca.leaf(names, issuer, **options), [issuer] if with_chain else [])

    return {
        "root": str(base / "root.pem"),
        "valid": make("valid"),
        "no-teams": make("no-teams", no_teams),
        "expired": make("expired", not_before=NOW - dt.timedelta(days=120), not_after=NOW - dt.timedelta(days=5)),
        "ten-days": make("ten-days", not_after=NOW + dt.timedelta(days=10)),
        "leaf-only": make("leaf-only", with_chain=False),
        "leaf-only-no-teams": make("leaf-only-no-teams", no_teams, with_chain=False),
        "wildcard": make("wildcard", [f"*.{DOMAIN}"]),
        "fed-good": make("fed-good", [f"federator.{DOMAIN}"], usages=("serverAuth", "clientAuth")),
        "fed-bad": make("fed-bad", [f"other.{DOMAIN}"], key="ec384"),
        "fed-leaf-only": make("fed-leaf-only", [f"federator.{DOMAIN}"], usages=("serverAuth", "clientAuth"),
                              with_chain=False),
        # crafted chains, each wrong in one property (tests/support/testca.py)
        "expired-intermediate": make("expired-intermediate", issuer=expired, not_before=NOW - dt.timedelta(days=30)),
        "future-intermediate": make("future-intermediate", issuer=future),
        "rsa1024": make("rsa1024", key="rsa1024"),
        "sha1": make("sha1", signature_hash="sha1"),
        "client-auth-only": make("client-auth-only", usages=("clientAuth",)),
        "cn-only": make("cn-only", san=False),
        "short-intermediate": make("short-intermediate", issuer=short),
        # ... and their good twins ("valid" is the twin of the intermediates, SHA-1 and CN-only cases)
        "rsa2048": make("rsa2048", key="rsa2048"),
        "server-and-client-auth": make("server-and-client-auth", usages=("serverAuth", "clientAuth")),
    }


CERT_KEYWORDS = "certificates_cover_names or certificate_expiry"


def acceptance_tls(tmp_path: Path, pki, case: str, keywords: str = TLS_KEYWORDS, **server_options) -> dict:
    """The acceptance TLS checks against a real TLS server on <loopback>:443 serving pki[case] (and, with
    sni={name: (cert, key)}, another chain to the clients asking for that name)."""
    wire_ip = loopback()
    cert, key = pki[case]
    # Port 443 of a loopback address of its own: the port the checks use by default.
    with TlsServer(cert, key, address=wire_ip, port=443, **server_options):
        return run_suite("acceptance", keywords, tmp_path / "report", "--domain", DOMAIN, "--wire-ip", wire_ip,
                         "--ca-bundle", pki["root"])  # fmt: skip


def test_valid_certificate_passes_and_is_described(tmp_path, pki):
    """Served with the good twins of the crafted chains below: an RSA 2048-bit leaf for assets, a
    serverAuth+clientAuth leaf for account (the others are twins of the valid chain)."""
    twins = {f"assets.{DOMAIN}": pki["rsa2048"], f"account.{DOMAIN}": pki["server-and-client-auth"]}
    report = acceptance_tls(tmp_path, pki, "valid", sni=twins)
    san = result(report, "TLS-SAN")
    assert san["status"] == "pass", san
    assert san["message"].startswith(
        f"TLS-SAN on {DOMAIN}: served certificates: the chain served with the SNI of each name verifies for that "
        f"name, for all 7 names (nginz-https.{DOMAIN}, "
    ), san["message"]
    assert "{" not in san["message"] and "[" not in san["message"]  # a sentence, not a Python repr
    assert san["observed"] == {name: "verified" for name in NAMES}
    evidence = san["evidence"]["details"][f"teams.{DOMAIN}"]
    assert f"DNS:teams.{DOMAIN}" in evidence["sans"]
    assert evidence["verification"]["verified"] is True and evidence["key"] == "EC secp256r1"
    assert evidence["verification"]["path"][-1] == "CN=wirecheck test root,O=wirecheck tests"
    assert [c["position"] for c in evidence["chain_sent"]] == ["the leaf", "the intermediate"]
    assert san["evidence"]["details"][f"assets.{DOMAIN}"]["key"] == "RSA 2048"  # the twins were served
    assert san["evidence"]["details"][f"account.{DOMAIN}"]["chain_sent"][0]["extended_key_usage"] == [
        "serverAuth", "clientAuth"]
    assert evidence["issuer"] == "CN=wirecheck test intermediate,O=wirecheck tests" and evidence["protocol"] == "TLSv1.3"
    expiry = result(report, "TLS-EXPIRY")
    assert expiry["status"] == "pass"
    assert "the first certificate to expire is the leaf" in expiry["message"] and "{" not in expiry["message"]
    ciphers = result(report, "TLS-CIPHERS")
    assert ciphers["status"] == "pass"
    assert "the server accepts TLSv1.2, TLSv1.3 with the suites " in ciphers["message"]
    assert "{" not in ciphers["message"]
    assert result(report, "TLS-FED-CERT")["status"] == "not_applicable"


def test_certificate_without_teams_fails_naming_teams(tmp_path, pki):
    san = result(acceptance_tls(tmp_path, pki, "no-teams", CERT_KEYWORDS), "TLS-SAN")
    assert san["status"] == "fail"
    assert f"teams.{DOMAIN}: the leaf (CN=nginz-https.{DOMAIN},O=wirecheck tests) does not cover teams.{DOMAIN}: " \
           f"its SANs are DNS:nginz-https.{DOMAIN}" in san["message"]
    assert "no matching subjectAltName" in san["message"]
    assert f"webapp.{DOMAIN}:" not in san["message"]
    assert san["observed"][f"teams.{DOMAIN}"] == "refused" and san["observed"][f"webapp.{DOMAIN}"] == "verified"


def test_expired_certificate_fails_with_the_date(tmp_path, pki):
    report = acceptance_tls(tmp_path, pki, "expired", CERT_KEYWORDS)
    expiry = result(report, "TLS-EXPIRY")
    assert expiry["status"] == "fail"  # a SHOULD, but an expired certificate is down
    not_after = (NOW - dt.timedelta(days=5)).strftime("%Y-%m-%d")
    assert f"the leaf (CN=nginz-https.{DOMAIN},O=wirecheck tests) expired on {not_after}" in expiry["message"]
    san = result(report, "TLS-SAN")
    assert san["status"] == "fail"
    assert f"for every name: the leaf (CN=nginz-https.{DOMAIN},O=wirecheck tests) expired on {not_after}" in san["message"]


def test_certificate_expiring_in_ten_days_warns(tmp_path, pki):
    expiry = result(acceptance_tls(tmp_path, pki, "ten-days", CERT_KEYWORDS), "TLS-EXPIRY")
    assert expiry["status"] == "warn"
    assert "the leaf" in expiry["message"]
    assert "in 10.0 days" in expiry["message"] or "in 9.9 days" in expiry["message"]
    assert "critical: under 14 days" in expiry["message"]


def test_intermediate_expiring_first_is_named_by_tls_expiry(tmp_path, pki):
    """The leaf is good for 90 days, the intermediate sent with it for 10: the chain lasts 10."""
    report = acceptance_tls(tmp_path, pki, "short-intermediate", CERT_KEYWORDS)
    expiry = result(report, "TLS-EXPIRY")
    assert expiry["status"] == "warn", expiry
    assert "the intermediate (CN=short-lived intermediate,O=wirecheck tests) expires first" in expiry["message"]
    assert "critical: under 14 days" in expiry["message"]
    assert result(report, "TLS-SAN")["status"] == "pass"  # valid today


def test_missing_intermediate_fails_tls_san(tmp_path, pki):
    san = result(acceptance_tls(tmp_path, pki, "leaf-only", CERT_KEYWORDS), "TLS-SAN")
    assert san["status"] == "fail"
    assert "the leaf's issuer (CN=wirecheck test intermediate,O=wirecheck tests) is neither sent nor in" in san["message"]
    assert "serve the full chain" in san["message"]


def test_wildcard_certificate_covers_the_names(tmp_path, pki):
    assert result(acceptance_tls(tmp_path, pki, "wildcard", CERT_KEYWORDS), "TLS-SAN")["status"] == "pass"


# Crafted chains, each wrong in one property. One ingress serves them at once, a chain per host name (SNI):
# TLS-SAN must refuse each name's chain naming the certificate and the reason; sftd gets a good chain.
def crafted_message(case: str, name: str) -> str:
    leaf = f"the leaf (CN=nginz-https.{DOMAIN},O=wirecheck tests)"
    return {
        "expired-intermediate": "the intermediate (CN=expired intermediate,O=wirecheck tests) expired on",
        "future-intermediate": "the intermediate (CN=future intermediate,O=wirecheck tests) is not valid before",
        "rsa1024": f"{leaf} has an RSA 1024-bit key; clients refuse RSA keys under 2048 bits",
        "sha1": f"{leaf} is signed with SHA1, a signature algorithm clients refuse",
        "client-auth-only": f"{leaf} is not for TLS servers: its extended key usage is clientAuth, without serverAuth",
        "cn-only": f"{leaf} has no subjectAltName extension, so {name} is only in its subject CN (nginz-https.{DOMAIN})",
    }[case]


SERVED_CRAFTED = {
    f"nginz-https.{DOMAIN}": "expired-intermediate",
    f"nginz-ssl.{DOMAIN}": "future-intermediate",
    f"assets.{DOMAIN}": "rsa1024",
    f"webapp.{DOMAIN}": "sha1",
    f"account.{DOMAIN}": "client-auth-only",
    f"teams.{DOMAIN}": "cn-only",
}


def test_crafted_chains_served_per_name_fail_tls_san_naming_each(tmp_path, pki):
    sni = {name: pki[case] for name, case in SERVED_CRAFTED.items()}
    report = acceptance_tls(tmp_path, pki, "valid", CERT_KEYWORDS, sni=sni)
    san = result(report, "TLS-SAN")
    assert san["status"] == "fail", san
    for name, case in SERVED_CRAFTED.items():
        assert f"{name}: {crafted_message(case, name)}" in san["message"], (case, san["message"])
        assert san["observed"][name] == "refused"
        details = san["evidence"]["details"][name]
        assert [c["position"] for c in details["chain_sent"]] == ["the leaf", "the intermediate"]
        if case != "rsa1024":  # cryptography builds the path for the 1024-bit key; the key size refuses it
            assert details["verification"]["cryptography"].startswith("validation failed: ")
    assert san["observed"][f"sftd.{DOMAIN}"] == "verified" and f"sftd.{DOMAIN}:" not in san["message"]
    expiry = result(report, "TLS-EXPIRY")  # the chains with an out-of-date intermediate are down
    assert expiry["status"] == "fail", expiry
    assert f"in the chain served for nginz-https.{DOMAIN}, the intermediate (CN=expired intermediate" in expiry["message"]
    assert f"in the chain served for nginz-ssl.{DOMAIN}, the intermediate (CN=future intermediate" in expiry["message"]
    assert f"webapp.{DOMAIN}" not in expiry["message"]  # SHA-1 is not a date problem


@pytest.mark.parametrize("case", ["expired-intermediate", "future-intermediate", "rsa1024", "sha1",
                                  "client-auth-only", "cn-only"])  # fmt: skip
def test_crafted_own_certificate_fails_tls_byo_cert(tmp_path, pki, case):
    byo = result(run_suite("preflight", "own_certificate", tmp_path / "byo", "--ansible-inventory",
                           str(_byo_inventory(tmp_path, *pki[case])), "--ca-bundle", pki["root"]), "TLS-BYO-CERT")
    assert byo["status"] == "fail", byo
    expected = crafted_message(case, f"webapp.{DOMAIN}")
    if case != "cn-only":  # the same reason for every name: said once
        expected = f"for every name: {expected}"
    assert expected in byo["message"], byo["message"]
    assert byo["observed"]["verified"] == [] and len(byo["observed"]["refused"]) == len(NAMES)


def test_good_twin_own_certificate_passes_tls_byo_cert(tmp_path, pki):
    """The twin of the 1024-bit case: an RSA 2048-bit leaf, the boundary."""
    byo = result(run_suite("preflight", "own_certificate", tmp_path / "byo", "--ansible-inventory",
                           str(_byo_inventory(tmp_path, *pki["rsa2048"])), "--ca-bundle", pki["root"]), "TLS-BYO-CERT")
    assert byo["status"] == "pass", byo
    assert "(RSA 2048, valid until" in byo["message"]
    assert f"its chain in the file verifies for all 7 names (nginz-https.{DOMAIN}," in byo["message"]
    assert "{" not in byo["message"]


def test_tls10_only_ingress_warns_on_ciphers(tmp_path, pki):
    report = acceptance_tls(tmp_path, pki, "valid", min_version="TLSv1", max_version="TLSv1",
                            ciphers="ALL:@SECLEVEL=0")  # fmt: skip
    ciphers = result(report, "TLS-CIPHERS")
    assert ciphers["status"] == "warn"
    assert "accepts TLSv1 (allowed: TLSv1.2, TLSv1.3)" in ciphers["message"]
    assert result(report, "TLS-SAN")["evidence"]["details"][f"webapp.{DOMAIN}"]["protocol"] == "TLSv1"


def test_no_server_is_an_error_not_a_fail(tmp_path, pki):
    report = run_suite("acceptance", TLS_KEYWORDS, tmp_path / "report", "--domain", DOMAIN,
                       "--wire-ip", loopback(), "--ca-bundle", pki["root"])  # fmt: skip
    for rid in ("TLS-SAN", "TLS-EXPIRY", "TLS-CIPHERS"):
        entry = result(report, rid)
        assert entry["status"] == "error", entry
        assert "refused" in entry["message"]


def _byo_inventory(tmp_path: Path, cert: Path, key: Path, extra: str = "") -> Path:
    inventory = tmp_path / "host.yml"
    inventory.write_text(
        "all:\n  hosts:\n    deploy_node:\n      ansible_connection: local\n"
        f"      target_domain: {DOMAIN}\n      wire_ip: 127.0.0.1\n      use_cert_manager: false\n"
        f"      tls_cert_file: {cert}\n      tls_key_file: {key}\n{extra}"
    )
    return inventory


def test_own_certificate_before_install(tmp_path, pki):
    good = run_suite("preflight", TLS_KEYWORDS, tmp_path / "good", "--ansible-inventory",
                     str(_byo_inventory(tmp_path, *pki["valid"])), "--ca-bundle", pki["root"])  # fmt: skip
    assert result(good, "TLS-BYO-CERT")["status"] == "pass", result(good, "TLS-BYO-CERT")
    assert result(good, "IMP-CERT-HORIZON")["status"] == "pass"
    assert result(good, "TLS-ACME-PREREQ")["status"] == "not_applicable"

    leaf_only_cert, _ = pki["leaf-only-no-teams"]
    _, other_key = pki["valid"]
    bad = run_suite("preflight", TLS_KEYWORDS, tmp_path / "bad", "--ansible-inventory",
                    str(_byo_inventory(tmp_path, leaf_only_cert, other_key)), "--ca-bundle", pki["root"])  # fmt: skip
    byo = result(bad, "TLS-BYO-CERT")
    assert byo["status"] == "fail"
    assert "the private key does not belong to the certificate" in byo["message"]
    # the library stops at the first reason (for teams: the name); both are named, the chain once for all
    assert "for every name: the leaf's issuer (CN=wirecheck test intermediate,O=wirecheck tests) is neither in the " \
           "file nor in" in byo["message"]
    assert "append the intermediate certificate(s) after the leaf in the PEM file" in byo["message"]
    assert f"teams.{DOMAIN}: the leaf (CN=nginz-https.{DOMAIN},O=wirecheck tests) does not cover teams.{DOMAIN}" \
           in byo["message"]
    assert byo["observed"]["not_covered"] == [f"teams.{DOMAIN}"]

    soon = run_suite("preflight", TLS_KEYWORDS, tmp_path / "soon", "--ansible-inventory",
                     str(_byo_inventory(tmp_path, *pki["ten-days"])), "--ca-bundle", pki["root"])  # fmt: skip
    horizon = result(soon, "IMP-CERT-HORIZON")
    assert horizon["status"] == "warn" and "need >= 30" in horizon["message"]


def test_certificate_horizon_counts_the_intermediate_in_the_file(tmp_path, pki):
    """The leaf has 90 days, the intermediate in the file 10: renewal is due in 10."""
    run = run_suite("preflight", "certificate_horizon", tmp_path / "r", "--ansible-inventory",
                    str(_byo_inventory(tmp_path, *pki["short-intermediate"])))  # fmt: skip
    horizon = result(run, "IMP-CERT-HORIZON")
    assert horizon["status"] == "warn", horizon
    assert "days left on CN=short-lived intermediate,O=wirecheck tests (an intermediate in the file, the first " \
           "certificate of the file to expire" in horizon["message"]
    assert horizon["observed"] < 10.1


def test_federation_certificate(tmp_path, pki):
    def run(case: str) -> dict:
        cert, key = pki[case]
        extra = f"      federation_enabled: true\n      federation_cert_file: {cert}\n"
        return run_suite("preflight", TLS_KEYWORDS, tmp_path / case, "--ansible-inventory",
                         str(_byo_inventory(tmp_path, *pki["valid"], extra=extra)), "--ca-bundle", pki["root"])  # fmt: skip

    good = result(run("fed-good"), "TLS-FED-CERT")
    assert good["status"] == "pass", good
    assert f"and the chain in the file verifies for federator.{DOMAIN} against {pki['root']}" in good["message"]
    bad = result(run("fed-bad"), "TLS-FED-CERT")
    assert bad["status"] == "fail"
    assert "lacks clientAuth" in bad["message"]
    assert f"the leaf (CN=other.{DOMAIN},O=wirecheck tests) does not cover federator.{DOMAIN}" in bad["message"]
    assert "secp384r1" in bad["message"]
    leaf_only = result(run("fed-leaf-only"), "TLS-FED-CERT")  # right name and usages, no intermediate
    assert leaf_only["status"] == "fail", leaf_only
    assert "append the intermediate certificate(s) after the leaf in the PEM file" in leaf_only["message"]
    assert "lacks" not in leaf_only["message"] and "does not cover" not in leaf_only["message"]


# --- IMP-RESOLVER on lab hosts ----------------------------------------------------------------------


def test_node_resolver_on_lab_hosts(lab_module, tmp_path):
    gateway = lab_module.gateway
    zone = Zone(domain="docker.com", a={"download": [gateway]})
    with DnsmasqServer(zone, address=gateway, port=53):
        good, stub = lab_module.add_hosts([
            {"name": "resolves", "files": {"/etc/resolv.conf": f"nameserver {gateway}\n"}},
            {"name": "stubonly", "files": {"/etc/resolv.conf": "nameserver 127.0.0.53\n"}},
        ])  # fmt: skip
        runs = {
            host.name: run_suite("preflight", "node_resolver", tmp_path / host.name, *host_args(host))
            for host in (good, stub)
        }
    ok = result(runs["resolves"], "IMP-RESOLVER")
    assert ok["status"] == "pass", ok
    assert ok["evidence"]["resolv_conf_nameservers"] == [gateway]
    assert gateway in " ".join(ok["evidence"]["getent"])
    bad = result(runs["stubonly"], "IMP-RESOLVER")
    assert bad["status"] == "warn"
    assert "`getent ahostsv4 download.docker.com` does not resolve" in bad["message"]
    assert "only names the 127.0.0.53 stub" in bad["message"]


# --- wire_ip "" as Wire's demo inventory ships it -------------------------------------------------


def preflight_without_wire_ip(tmp_path: Path, zone, *extra: str) -> tuple[dict, int]:
    """DNS checks with no --wire-ip (the local machine is the deploy node), exit status included."""
    with DnsmasqServer(zone, address=loopback()) as server:
        argv = [sys.executable, "-m", "pytest", "suites/preflight", "-k", "demo_records or sftd or spf", "-q",
                *QUIET_PLUGINS, "--report-dir", str(tmp_path / "report"), "--domain", DOMAIN,
                "--nameserver", server.nameserver, *extra]  # fmt: skip
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180)
    return json.loads((tmp_path / "report" / "compliance.json").read_text()), proc.returncode


def test_empty_wire_ip_and_a_missing_name_fail_with_non_zero_exit(tmp_path):
    """The node cannot determine its address (its question to the public-IP URL is refused): a name
    that does not exist is still a fail, and the run exits non-zero, as Wire's verify_dns.yml stops."""
    wire_ip = loopback()
    zone = wire_zone(DOMAIN, wire_ip)
    del zone.a["teams"], zone.a["sftd"]
    report, rc = preflight_without_wire_ip(tmp_path, zone, "--public-ip-url", "http://127.0.0.1:9/")
    records = result(report, "DNS-DEMO-RECORDS")
    assert records["status"] == "fail", records
    assert f"teams.{DOMAIN} does not exist (NXDOMAIN" in records["message"]
    assert f"create `teams.{DOMAIN}. IN A <wire_ip>`" in records["message"]
    sftd = result(report, "DNS-SFTD")
    assert sftd["status"] == "fail" and f"sftd.{DOMAIN} does not exist" in sftd["message"], sftd
    assert "cannot determine its public address" in records["evidence"]["wire_ip_problem"]
    assert rc != 0


def test_empty_wire_ip_names_that_disagree_fail_and_agreeing_names_are_not_a_pass(tmp_path):
    wire_ip, other = loopback(), loopback()
    zone = wire_zone(DOMAIN, wire_ip)
    zone.a["webapp"] = [other]
    report, _ = preflight_without_wire_ip(tmp_path / "a", zone, "--public-ip-url", "http://127.0.0.1:9/")
    records = result(report, "DNS-DEMO-RECORDS")
    assert records["status"] == "fail" and "do not agree on one address" in records["message"], records
    assert f"{other} (webapp.{DOMAIN})" in records["message"]
    report, _ = preflight_without_wire_ip(tmp_path / "b", wire_zone(DOMAIN, wire_ip),
                                          "--public-ip-url", "http://127.0.0.1:9/")
    records = result(report, "DNS-DEMO-RECORDS")
    assert records["status"] == "error", records
    assert f"all point to {wire_ip}" in records["message"] and "127.0.0.1:9" in records["message"]


def test_empty_wire_ip_is_determined_from_the_node_like_wires_playbook(tmp_path):
    """wire_ip "" and a public-IP service that answers: the names are compared with that address;
    a stray second address on one name fails (the issue-12 mutant)."""
    wire_ip, stray = loopback(), loopback()
    with PublicIpServer(loopback(), wire_ip) as ipify:
        report, rc = preflight_without_wire_ip(tmp_path / "ok", wire_zone(DOMAIN, wire_ip), "--public-ip-url", ipify.url)
        records = result(report, "DNS-DEMO-RECORDS")
        assert records["status"] == "pass", records
        assert records["evidence"]["wire_ip"] == wire_ip
        assert records["evidence"]["wire_ip_source"] == f"{ipify.url} from deploy_node"
        zone = wire_zone(DOMAIN, wire_ip)
        zone.a["assets"] = [wire_ip, stray]
        report, rc = preflight_without_wire_ip(tmp_path / "stray", zone, "--public-ip-url", ipify.url)
    records = result(report, "DNS-DEMO-RECORDS")
    assert records["status"] == "fail", records
    assert f"assets.{DOMAIN} resolves to {', '.join(sorted([wire_ip, stray]))}" in records["message"]
    assert rc != 0


def test_stray_address_beside_wire_ip_fails_with_wire_ip_given(tmp_path):
    wire_ip, stray = loopback(), loopback()
    zone = wire_zone(DOMAIN, wire_ip)
    zone.a["nginz-ssl"] = [wire_ip, stray]
    zone.a["sftd"] = [wire_ip, stray]
    report = preflight_dns(tmp_path, zone, wire_ip)
    records = result(report, "DNS-DEMO-RECORDS")
    assert records["status"] == "fail" and f"nginz-ssl.{DOMAIN} resolves to" in records["message"], records
    assert stray in records["message"]
    sftd = result(report, "DNS-SFTD")
    assert sftd["status"] == "fail" and stray in sftd["message"], sftd


def test_closed_resolver_port_is_told_apart_from_silence(tmp_path):

    address = loopback()
    port = free_port(address)
    started = time.monotonic()
    report = run_suite("preflight", DNS_KEYWORDS, tmp_path / "report", "--domain", DOMAIN,
                       "--wire-ip", "127.0.0.1", "--nameserver", f"{address}:{port}")  # fmt: skip
    assert time.monotonic() - started < 30
    for rid in ("DNS-DEMO-RECORDS", "DNS-SFTD", "IMP-CAA"):
        entry = result(report, rid)
        assert entry["status"] == "error", entry
        assert "connection refused" in entry["message"] and "no answer" not in entry["message"], entry["message"]
