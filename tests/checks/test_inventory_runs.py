"""Targets from wire-server-deploy style inventories, in parallel, with secrets kept out of reports."""

from __future__ import annotations

import json

import pytest

from tests.support.wc import run_suite


def demo_inventory(path, hosts, extra_vars: str = "", host_extra: str = "", all_deploy: bool = False) -> None:
    """The layout of wire-server-deploy's ansible/inventory/demo/host.yml, pointing at lab hosts."""
    lines = ["wiab:", "  hosts:"]
    for h in hosts:
        lines += [f"    {h.name}:", f"      ansible_host: {h.address}", f"      ansible_user: {h.user}",
                  f"      ansible_ssh_private_key_file: {h.key_path}",
                  f"      ansible_ssh_common_args: '{h.ssh_extra_args}'"]
        if host_extra:
            lines += ["      " + line for line in host_extra.splitlines()]
    if all_deploy:      # several hosts checked as deploy nodes (as a fleet of demo candidates)
        lines += ["  children:", "    deploy_node:", "      hosts:"] + [f"        {h.name}:" for h in hosts]
    lines += ["  vars:", "    target_domain: wire.example.test", '    wire_ip: ""',
              '    artifact_hash: "8e5087a0d9c58a9bd34c6c02f87514abe8b3ce0e"', "    use_cert_manager: true"]
    lines += ["    " + line for line in extra_vars.splitlines()]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def pair(lab_module):
    return lab_module.add_hosts([{"name": "deploy_node", "user": "wire", "sudo": True},
                                 {"name": "spare", "user": "wire", "sudo": True,
                                  "sysctls": {"net.ipv4.ip_forward": "1"}}])


def test_inventory_gives_roles_and_site_settings(pair, tmp_path):
    inv = tmp_path / "host.yml"
    demo_inventory(inv, pair[:1])
    run = run_suite(["--ansible-inventory", str(inv), "-k", "ip_forward or inventory"], tmp_path / "r")
    c = run.compliance
    assert c["profile"] == "demo"
    assert c["targets"] == [{"name": "deploy_node", "address": pair[0].address, "roles": ["wiab", "deploy_node"]}]
    assert c["site"]["domain"] == "wire.example.test" and c["site"]["wire_ip"] is None
    inv_check = run.result("CTRL-DEMO-INVENTORY")
    # the key file exists with mode 0600 and the domain is not example.com: all required variables there
    assert inv_check["status"] == "pass", inv_check["message"]


def test_parallel_run_matches_serial(pair, tmp_path):
    inv = tmp_path / "hosts.yml"
    demo_inventory(inv, pair, all_deploy=True)
    args = ["--ansible-inventory", str(inv), "--internet-url", "http://198.18.255.254:9/"]
    serial = run_suite(args, tmp_path / "serial")
    parallel = run_suite([*args, "-n", "2"], tmp_path / "parallel")
    assert "INTERNALERROR" not in parallel.stdout + parallel.stderr

    def statuses(run):
        return {(r["id"], x["target"]): x["status"] for r in run.compliance["requirements"] for x in r["results"]}
    assert statuses(serial) == statuses(parallel)
    assert serial.result("DEMO-NET-IP-FORWARD", "spare")["status"] == "pass"
    assert len({t for _, t in statuses(serial)}) >= 3      # both hosts, plus control/site checks


def test_secrets_never_reach_the_report(pair, tmp_path):
    secret = "s3cr3t-Pa55word-xyzzy"
    inv = tmp_path / "host.yml"
    demo_inventory(inv, pair[:1], extra_vars=f"smtp_password: {secret}",
                   host_extra=f"ansible_become_pass: {secret}")
    run = run_suite(["--ansible-inventory", str(inv), "--junitxml", str(tmp_path / "junit.xml"),
                     "--internet-url", f"http://198.18.255.254:9/{secret}"], tmp_path / "r")
    report = (tmp_path / "r" / "compliance.json").read_text()
    assert secret not in report and secret not in run.stdout + run.stderr
    assert secret not in (tmp_path / "junit.xml").read_text()
    c = json.loads(report)
    assert set(c["redacted_fields"]) >= {"ansible_become_pass", "smtp_password"}
    net = run.result("DEMO-NET-INTERNET")
    assert "<redacted>" in net["message"]


@pytest.mark.parametrize("value, needle", [
    ("x.test; touch /tmp/wirecheck-owned", "is not a valid domain name"),
    ("$(touch /tmp/wirecheck-owned).test", "is not a valid domain name"),
    ("`touch /tmp/wirecheck-owned`", "is not a valid domain name"),
])
def test_hostile_domain_is_refused_in_one_line(tmp_path, value, needle):
    import os
    inv = tmp_path / "host.yml"
    inv.write_text("wiab:\n  hosts:\n    deploy_node:\n      ansible_host: 198.18.255.254\n"
                   f"  vars:\n    target_domain: {json.dumps(value)}\n")
    run = run_suite(["--ansible-inventory", str(inv)], tmp_path / "r")
    assert run.rc == 4
    out = (run.stdout + run.stderr).strip()
    assert needle in out and "Traceback" not in out and len(out.splitlines()) == 1
    assert not os.path.exists("/tmp/wirecheck-owned")


@pytest.mark.parametrize("inventory, needle", [
    # ansible-core 2.19 says "YAML parsing failed", 2.16 "Syntax Error while loading YAML"
    ("wiab:\n  hosts:\n    deploy_node: [unclosed\n", "not a valid Ansible inventory: "),
    ("wiab:\n  hosts:\n    n1:\n      ansible_host: 'a;b'\n", "is not a host name or IP address"),
    ("wiab:\n  hosts:\n    n1:\n      ansible_host: 198.18.255.254\n      ansible_ssh_common_args: "
     "'-o ProxyCommand=touch /tmp/wirecheck-owned'\n", "ssh option proxycommand runs a local command"),
    ("wiab:\n  hosts:\n    n1:\n      ansible_user: 'x; id'\n", "is not a valid user name"),
])
def test_bad_inventories_end_in_one_clear_line(tmp_path, inventory, needle):
    inv = tmp_path / "host.yml"
    inv.write_text(inventory)
    run = run_suite(["--ansible-inventory", str(inv)], tmp_path / "r")
    out = (run.stdout + run.stderr).strip()
    assert run.rc == 4 and needle in out and "Traceback" not in out, out
    assert len(out.splitlines()) == 1, out
    if "[unclosed" in inventory:
        assert "YAML parsing failed" in out or "Syntax Error while loading YAML" in out, out


@pytest.mark.parametrize("args, needle", [
    (["--profile", "staging"], "--profile 'staging': unknown profile"),
    (["--domain", "not a domain"], "--domain 'not a domain' is not a valid domain name"),
    (["--wire-ip", "1.2.3"], "--wire-ip '1.2.3' is not an IPv4 address"),
    (["--nameserver", "dns.example:53"], "is not an IP address"),
    (["--param", "DEMO-SYS-CPU.cores=2"], "DEMO-SYS-CPU has no parameter 'cores'"),
    (["--hosts", "ftp://x"], "unsupported connection 'ftp'"),
    (["--command-timeout", "0"], "--command-timeout 0: give seconds between 0 and 3600"),
])
def test_bad_options_end_in_one_clear_line(tmp_path, args, needle):
    run = run_suite(args, tmp_path / "r")
    out = (run.stdout + run.stderr).strip()
    assert run.rc == 4 and needle in out and "Traceback" not in out, out


def test_unreachable_host_is_an_error_within_bounds(tmp_path):
    """A host nobody answers for: every host check says error, quickly, and the rest of the run goes on."""
    import time
    start = time.monotonic()
    run = run_suite(["--hosts", "ssh://wire@198.18.255.254", "--connect-timeout", "2"], tmp_path / "r")
    elapsed = time.monotonic() - start
    host_results = [x for r in run.compliance["requirements"] for x in r["results"] if x["target"] == "198.18.255.254"]
    # nothing about the host is judged: no pass, fail or warn (inputs missing for some checks say so)
    assert host_results and not [x for x in host_results if x["status"] in ("pass", "fail", "warn")]
    assert sum(x["status"] == "error" for x in host_results) >= 10
    assert any("cannot connect" in x["message"] for x in host_results)
    assert run.status("CTRL-FETCH-TOOLS") in ("pass", "fail")       # control checks still ran
    assert elapsed < 60
