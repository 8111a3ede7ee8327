"""Site packs (--checks DIR): a site's own requirements beside Wire's, judged and reported alike.

The example pack (examples/site-pack-acme) runs against real lab hosts both ways: sshd's own
configuration read by `sshd -T`, packages read by testinfra's host.package over wirecheck's
connection."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.support.wc import REPO, run_suite

PACK = REPO / "examples" / "site-pack-acme"

SSHD_BASE = """\
HostKey /etc/ssh/wc_test_host_key
UsePAM no
KbdInteractiveAuthentication no
"""


@pytest.fixture(scope="module")
def hosts(lab_module):
    keyfile = lab_module.host_key_path.read_text() if hasattr(lab_module.host_key_path, "read_text") else \
        open(lab_module.host_key_path).read()
    common = {"/etc/ssh/wc_test_host_key": (keyfile, 0o600), "/run/sshd/.keep": ""}
    return lab_module.add_hosts([
        {"name": "hardened", "files": {**common, "/etc/ssh/sshd_config": SSHD_BASE + "PasswordAuthentication no\n"}},
        {"name": "lax", "files": {**common, "/etc/ssh/sshd_config": SSHD_BASE + "PasswordAuthentication yes\n"}},
    ])


def _statuses(run, rid):
    return {r["target"]: (r["status"], r["message"]) for r in run.requirement(rid)["results"]}


def test_example_pack_both_ways_beside_wires_checks(hosts, tmp_path):
    specs = ",".join(h.hostspec for h in hosts)
    args = ["--hosts", specs, "--ssh-identity-file", hosts[0].key_path,
            f"--ssh-extra-args={hosts[0].ssh_extra_args}", "--roles", "deploy_node",
            "--checks", str(PACK), "--param", "ACME-PKG-MANDATED.packages=openssh-server,coreutils",
            "-k", "site_packs or ip_forward", f"--alluredir={tmp_path / 'allure'}"]
    run = run_suite(args, tmp_path / "r")
    names = {t["address"]: t["name"] for t in run.compliance["targets"]}
    hardened, lax = names[hosts[0].address], names[hosts[1].address]
    ssh = _statuses(run, "ACME-SSH-NO-PASSWORD")
    assert ssh[hardened][0] == "pass", ssh
    assert ssh[lax][0] == "fail" and "passwordauthentication yes" in ssh[lax][1], ssh
    pkgs = _statuses(run, "ACME-PKG-MANDATED")
    assert {s for s, _ in pkgs.values()} == {"pass"}, pkgs
    # Wire's own checks ran in the same run
    assert run.requirement("DEMO-NET-IP-FORWARD")["results"]
    c = run.compliance
    assert c["site_packs"][0]["name"] == "acme" and "ACME-PKG-MANDATED" in c["site_packs"][0]["ids"]
    assert "ACME-SSH-NO-PASSWORD" in (run.report_dir / "compliance.html").read_text()
    allure = [json.loads(p.read_text()) for p in (tmp_path / "allure").glob("*-result.json")]
    assert any("ACME-SSH-NO-PASSWORD" in json.dumps(a) for a in allure)
    # the console lists what failed first and counts the rest
    assert "ACME-SSH-NO-PASSWORD" in run.stdout and "not listed:" in run.stdout

    # a package that is not there: a measured fail naming it
    args2 = [a if not a.startswith("ACME-PKG-MANDATED.packages=") else
             "ACME-PKG-MANDATED.packages=openssh-server,wc-no-such-package" for a in args]
    run2 = run_suite([a for a in args2 if not a.startswith("--alluredir")], tmp_path / "r2")
    pkgs2 = _statuses(run2, "ACME-PKG-MANDATED")
    assert {s for s, _ in pkgs2.values()} == {"fail"}, pkgs2
    assert all("wc-no-such-package" in m and "openssh-server" not in m.split("(of")[0] for _, m in pkgs2.values())


def test_pack_check_on_an_unreachable_host_is_an_error(tmp_path):
    # nothing listens on this lab-range address: the testinfra-based check cannot pass or fail
    run = run_suite(["--hosts", "ssh://wire@198.18.255.254", "--connect-timeout", "1", "--checks", str(PACK),
                     "-k", "site_packs"], tmp_path / "r")
    assert {r["status"] for r in run.requirement("ACME-PKG-MANDATED")["results"]} == {"error"}


def _pack(tmp_path, catalog: str, checks: str = "") -> str:
    d = tmp_path / "pack"
    d.mkdir()
    (d / "catalog.yaml").write_text(textwrap.dedent(catalog))
    if checks:
        (d / "test_site.py").write_text(textwrap.dedent(checks))
    return str(d)


ENTRY = """\
    title: t
    profiles: [demo]
    phases: [preflight]
    level: must
    scope: host
    roles: [all]
    remediation: fix it
"""


@pytest.mark.parametrize("catalog, said", [
    ("requirements:\n  DEMO-SYS-CPU:\n" + textwrap.indent(ENTRY, "  "), "already in the catalog"),
    ("requirements:\n  DEMO-OWN-THING:\n" + textwrap.indent(ENTRY, "  "), "which Wire's catalog uses"),
    ("prefix: ACME\nrequirements:\n  XYZ-THING:\n" + textwrap.indent(ENTRY, "  "), "prefix ACME-"),
    ("requirements:\n  ACME-THING:\n    title: t\n    profiles: [demo]\n", "required property"),
    ("requirements:\n  ACME-THING:\n" + textwrap.indent(ENTRY.replace("must", "maybe"), "  "), "maybe"),
    ("requirements: []\n", "requirements"),
])
def test_bad_pack_is_one_line_usage_error(tmp_path, catalog, said):
    run = run_suite(["--checks", _pack(tmp_path, catalog), "--collect-only"], tmp_path / "r")
    out = run.stdout + run.stderr
    assert run.rc != 0 and said in out, out
    assert "Traceback" not in out


def test_missing_pack_directory(tmp_path):
    run = run_suite(["--checks", str(tmp_path / "nope"), "--collect-only"], tmp_path / "r")
    assert run.rc != 0 and "no such directory" in run.stdout + run.stderr


def test_pack_can_be_waived_like_wires(tmp_path):
    pack = _pack(tmp_path, "prefix: ACME\nrequirements:\n  ACME-ALWAYS-BROKEN:\n" + textwrap.indent(ENTRY, "  "),
                 '''\
                 from wirecheck import expect, requirement

                 @requirement("ACME-ALWAYS-BROKEN")
                 def test_broken(target):
                     expect(target.run("echo 1").stdout.strip(), "answer").equals("2")
                 ''')
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(textwrap.dedent("""\
        waivers:
          - id: W-ACME-1
            requirement: ACME-ALWAYS-BROKEN
            hosts: [deploy_node]
            justification: known, ticket ACME-1
            approver: ACME CISO
            expires: 2099-01-01
        """))
    run = run_suite(["--checks", pack, "-k", "site_packs", "--waivers", str(waivers)], tmp_path / "r")
    req = run.requirement("ACME-ALWAYS-BROKEN")
    assert req["status"] == "waived", req
