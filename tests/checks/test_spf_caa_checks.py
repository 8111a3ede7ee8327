"""DNS-SPF and IMP-CAA end to end (`pytest suites/preflight -k ...` in a subprocess) against a real dnsmasq:
the records a receiving mail server or Let's Encrypt judges differently from a text comparison, each
next to its good twin, judged by the compliance.json the run writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checks.test_dns_tls_checks import DOMAIN, loopback, result, run_suite
from tests.support.dnsmasq import DnsmasqServer, wire_zone

ACCOUNT = "https://acme-v02.api.letsencrypt.org/acme/acct/4242"


def run(tmp_path: Path, zone, wire_ip: str, keywords: str, *extra: str) -> dict:
    with DnsmasqServer(zone, address=loopback()) as server:
        return run_suite("preflight", keywords, tmp_path / "report", "--domain", DOMAIN, "--wire-ip", wire_ip,
                         "--nameserver", server.nameserver, *extra)  # fmt: skip


def spf_zone(wire_ip: str, record: str, **txt):
    zone = wire_zone(DOMAIN, wire_ip)
    zone.txt["@"] = [record]
    zone.txt.update({label: [text] for label, text in txt.items()})
    return zone


@pytest.mark.parametrize("case", ["redirect", "exists-macro"])
def test_spf_records_a_receiver_accepts_pass(tmp_path, case):
    wire_ip = loopback()
    if case == "redirect":
        zone = spf_zone(wire_ip, f"v=spf1 redirect=_spf.{DOMAIN}", _spf=f"v=spf1 ip4:{wire_ip} -all")
    else:
        zone = spf_zone(wire_ip, "v=spf1 exists:%{ir}._spf.%{d} -all")
        reversed_ip = ".".join(reversed(wire_ip.split(".")))
        zone.a[f"{reversed_ip}._spf.{DOMAIN}."] = ["127.0.0.2"]
    spf = result(run(tmp_path, zone, wire_ip, "test_spf"), "DNS-SPF")
    assert spf["status"] == "pass", spf
    evaluation = spf["evidence"]["details"]["evaluation"]
    assert evaluation["result"] == "pass"
    if case == "redirect":
        assert spf["evidence"]["details"]["policy_ends"] == {"all": "-all", "record_of": f"_spf.{DOMAIN}"}
    else:
        assert f"{reversed_ip}._spf.{DOMAIN} A: 127.0.0.2" in evaluation["dns_queries"]  # the macro expanded


def test_spf_exists_for_another_address_fails(tmp_path):
    wire_ip = loopback()
    zone = spf_zone(wire_ip, "v=spf1 exists:%{ir}._spf.%{d} -all")
    zone.a[f"9.9.9.127._spf.{DOMAIN}."] = ["127.0.0.2"]  # lists some other client, not wire_ip
    spf = result(run(tmp_path, zone, wire_ip, "test_spf"), "DNS-SPF")
    assert spf["status"] == "warn"  # DNS-SPF is a SHOULD
    assert f"does not authorise {wire_ip}: RFC 7208 evaluation gives fail, decided by '-all'" in spf["message"]


def test_spf_include_ending_in_softfail_authorises_nobody(tmp_path):
    wire_ip = loopback()
    zone = spf_zone(wire_ip, f"v=spf1 include:soft.{DOMAIN} -all", soft="v=spf1 ~all")
    spf = result(run(tmp_path, zone, wire_ip, "test_spf"), "DNS-SPF")
    assert spf["status"] == "warn"
    assert f"does not authorise {wire_ip}: RFC 7208 evaluation gives fail, decided by '-all'" in spf["message"]
    assert spf["observed"]["result"] == "fail"


def test_spf_over_the_lookup_limit_is_a_broken_record(tmp_path):
    wire_ip = loopback()
    record = "v=spf1 " + " ".join(f"a:elsewhere.{DOMAIN}" for _ in range(11)) + f" ip4:{wire_ip} -all"
    zone = spf_zone(wire_ip, record)
    zone.a["elsewhere"] = ["127.0.0.2"]
    spf = result(run(tmp_path, zone, wire_ip, "test_spf"), "DNS-SPF")
    assert spf["status"] == "warn"
    assert "is broken: RFC 7208 evaluation ends in permerror (Too many DNS lookups" in spf["message"]
    assert "does not authorise" not in spf["message"]
    assert f"v=spf1 a mx ip4:{wire_ip} -all" in spf["message"]  # the fix


def test_caa_validation_methods_without_http01_warn(tmp_path):
    wire_ip = loopback()
    zone = wire_zone(DOMAIN, wire_ip)
    zone.caa = {"@": [(0, "issue", "letsencrypt.org; validationmethods=dns-01")]}
    caa = result(run(tmp_path, zone, wire_ip, "caa_allows"), "IMP-CAA")
    assert caa["status"] == "warn"
    assert "allows letsencrypt.org only with validation method(s) dns-01; cert-manager validates with http-01" \
        in caa["message"]
    zone.caa = {"@": [(0, "issue", "letsencrypt.org; validationmethods=http-01")]}  # the twin
    good = result(run(tmp_path / "good", zone, wire_ip, "caa_allows"), "IMP-CAA")
    assert good["status"] == "pass", good


def test_caa_account_restriction_needs_the_account(tmp_path):
    wire_ip = loopback()
    zone = wire_zone(DOMAIN, wire_ip)
    zone.caa = {"@": [(0, "issue", f"letsencrypt.org; accounturi={ACCOUNT}")]}
    unknown = result(run(tmp_path, zone, wire_ip, "caa_allows"), "IMP-CAA")
    assert unknown["status"] == "not_evaluated", unknown
    assert f"only for the ACME account {ACCOUNT}" in unknown["message"] and "acme_account_uri" in unknown["message"]

    def with_account(account: str, where: Path) -> dict:
        inventory = where / "host.yml"
        where.mkdir()
        inventory.write_text("all:\n  hosts:\n    deploy_node:\n      ansible_connection: local\n"
                             f"      target_domain: {DOMAIN}\n      wire_ip: {wire_ip}\n"
                             f"      acme_account_uri: {account}\n")
        return result(run(where, zone, wire_ip, "caa_allows", "--ansible-inventory", str(inventory)), "IMP-CAA")

    assert with_account(ACCOUNT, tmp_path / "same")["status"] == "pass"
    other = with_account(ACCOUNT[:-2] + "99", tmp_path / "other")
    assert other["status"] == "warn" and f"cert-manager's account is {ACCOUNT[:-2]}99" in other["message"]
