"""Inventories as Wire operators have them: variables in group_vars/ and host_vars/ beside the inventory,
Ansible's variable aliases, Jinja templates in connection settings, testinfra's --ssh-* options.

Our own minimal fixtures reproduce each behaviour of wire-server-deploy's inventories (commit
682349dc9df15ca1db6dd1e93d3c4a02d9152502): ``ansible/inventory/offline/group_vars/all/offline.yml``
renders ``ansible_ssh_common_args`` from a template that tests ``groups['all']``; ``offline/99-static``
logs in with ``ansible_password``. When the lead has put wire-server-deploy under ``../shared/`` (beside
the repository), Wire's own inventories are read too and compared with ``ansible-inventory --host``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.wc import REPO, run_suite
from wirecheck.inventory import load_inventory

SHARED_WSD = Path(os.environ.get("WIRECHECK_WSD_DATA") or REPO.parent / "shared" / "wire-server-deploy")
WIRE_INVENTORIES = ["ansible/inventory/demo/host.yml", "ansible/inventory/demo/wiab-staging.yml",
                    "ansible/inventory/offline/99-static", "ansible/inventory/offline/staging.yml",
                    "ansible/inventory/dmz-k8s/hosts.ini"]


def ansible_inventory_host(inventory: Path, host: str) -> dict:
    """What `ansible-inventory --host` prints (the ansible of wirecheck's own environment)."""
    tool = Path(sys.executable).parent / "ansible-inventory"
    proc = subprocess.run([str(tool), "-i", str(inventory), "--host", host], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "LC_ALL": "C.UTF-8"}, check=True)
    return json.loads(proc.stdout)


def layered_inventory(root: Path, host, *, key: str | None = None, common_args: str | None = None) -> Path:
    """Wire's offline layout: the inventory names hosts, group_vars/ and host_vars/ beside it hold the rest."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "hosts.yml").write_text(yaml.safe_dump({
        "wiab": {"hosts": {"deploy_node": {"ansible_host": "placeholder_ip"}},
                 "vars": {"target_domain": "inventory.example.test", "wire_ip": ""}}}))
    (root / "group_vars" / "all").mkdir(parents=True)
    (root / "group_vars" / "all" / "wire.yml").write_text(yaml.safe_dump({
        "artifact_hash": "8e5087a0d9c58a9bd34c6c02f87514abe8b3ce0e", "kube_version": "v1.29.10",
        # as offline.yml: a template over groups['all'] that renders to nothing without a bastion
        "ansible_ssh_common_args": "{% if 'bastion' in groups['all'] %} -o ProxyJump=bastion {% endif %}"
                                   + (common_args or ""),
    }))
    (root / "group_vars" / "wiab.yml").write_text(yaml.safe_dump({"target_domain": "wire.example.test"}))
    (root / "host_vars").mkdir()
    hv = {"ansible_host": host.address, "ansible_ssh_user": host.user, "ansible_port": host.port}
    if key:
        hv["ansible_ssh_private_key_file"] = key
    (root / "host_vars" / "deploy_node.yml").write_text(yaml.safe_dump(hv))
    return root / "hosts.yml"


@pytest.fixture(scope="module")
def node(lab_module):
    return lab_module.add_host("deploy_node", user="wire", sudo=True)


def test_group_vars_and_host_vars_are_read_with_ansibles_precedence(node, tmp_path):
    inv = layered_inventory(tmp_path / "inv", node, key=node.key_path, common_args=" " + node.ssh_extra_args)
    ours = load_inventory(str(inv))
    assert ours.hosts["deploy_node"] == ansible_inventory_host(inv, "deploy_node")
    conn = ours.connection["deploy_node"]
    assert conn["host"] == node.address and conn["host_var"] == "ansible_host"          # host_vars beats inventory
    assert conn["user"] == node.user and conn["user_var"] == "ansible_ssh_user"          # Ansible's alias
    assert "{%" not in conn["common_args"] and "bastion" not in conn["common_args"]      # rendered as Ansible does
    run = run_suite(["--ansible-inventory", str(inv), "-k", "ip_forward or demo_inventory"], tmp_path / "r")
    c = run.compliance
    assert c["site"]["domain"] == "wire.example.test"                                    # group_vars/wiab.yml
    assert c["targets"][0]["address"] == node.address
    fwd = run.result("DEMO-NET-IP-FORWARD", "deploy_node")
    assert fwd["status"] in ("pass", "fail") and "cannot connect" not in fwd["message"], fwd
    demo_inv = run.result("CTRL-DEMO-INVENTORY")      # ansible_ssh_user stands for ansible_user, as in Ansible
    assert demo_inv["status"] == "pass", demo_inv


def test_command_line_ssh_options_win_over_the_inventory_and_are_recorded(node, tmp_path):
    """The inventory names a key that does not exist and no known_hosts: --ssh-identity-file and
    --ssh-extra-args (testinfra's options) make the connection, and the report says they were used."""
    inv = layered_inventory(tmp_path / "inv", node, key="~/.ssh/wiab-demo.pem")
    without = run_suite(["--ansible-inventory", str(inv), "-k", "ip_forward"], tmp_path / "without")
    assert "cannot connect" in without.result("DEMO-NET-IP-FORWARD", "deploy_node")["message"]
    run = run_suite(["--ansible-inventory", str(inv), "-k", "ip_forward", "--ssh-identity-file", node.key_path,
                     f"--ssh-extra-args={node.ssh_extra_args}"], tmp_path / "with")
    fwd = run.result("DEMO-NET-IP-FORWARD", "deploy_node")
    assert "cannot connect" not in fwd["message"], fwd
    given = run.compliance["site"]["ssh_overrides"]
    assert given["--ssh-identity-file"] == node.key_path and "UserKnownHostsFile" in given["--ssh-extra-args"]


def test_password_login_to_an_unknown_host_key_says_so(node, tmp_path):
    """99-static logs in with ansible_password: through sshpass, an unknown host key is a clear message."""
    inv = tmp_path / "99-static"
    inv.write_text(f"[all:vars]\nansible_user={node.user}\nansible_password=not-the-password\n"
                   f"ansible_ssh_common_args='-o UserKnownHostsFile={tmp_path}/empty_known_hosts "
                   "-o GlobalKnownHostsFile=/dev/null'\n"
                   f"[assethost]\nassethost ansible_host={node.address} ansible_port={node.port}\n")
    run = run_suite(["--ansible-inventory", str(inv), "--profile", "production", "-k", "sudo"], tmp_path / "r")
    messages = [x["message"] for r in run.compliance["requirements"] for x in r["results"] if x["target"] == "assethost"]
    assert messages and any("host key of" in m and "ssh-keyscan" in m for m in messages), messages
    assert "not-the-password" not in json.dumps(run.compliance)


@pytest.mark.parametrize("relative", WIRE_INVENTORIES)
def test_wires_own_inventories_read_as_ansible_reads_them(relative):
    path = SHARED_WSD / relative
    if not path.exists():
        pytest.skip(f"{path} is not there (wire-server-deploy is not under ../shared/)")
    ours = load_inventory(str(path))
    for host in ours.hosts:
        assert ours.hosts[host] == ansible_inventory_host(path, host), host


WIAB_STAGING = """wiab-staging:
  hosts:
    deploy_node:
      ansible_host: 198.18.255.254
      ansible_user: 'demo'
      ansible_ssh_private_key_file: "~/.ssh/id_ed25519"
  vars:
    artifact_hash: 5b01f250e128db689715558bad6b5e532cf4a7a0
    private_deployment: true
"""


def test_wiab_staging_is_named_and_not_judged_as_the_demo(tmp_path):
    """demo/wiab-staging.yml's layout (our copy of its shape): one clear line, no demo verdicts."""
    inv = tmp_path / "wiab-staging.yml"
    inv.write_text(WIAB_STAGING)
    for extra in ([], ["--profile", "demo"]):
        run = run_suite(["--ansible-inventory", str(inv), *extra], tmp_path / "r")
        out = (run.stdout + run.stderr).strip()
        assert run.rc == 4 and "wiab-staging inventory" in out and "not supported" in out, out
        assert len(out.splitlines()) == 1 and not (tmp_path / "r" / "compliance.json").exists()


def test_demo_and_production_inventories_are_told_apart(tmp_path):
    from wirecheck.inventory import inventory_kind

    demo = tmp_path / "host.yml"
    demo.write_text("wiab:\n  hosts:\n    deploy_node:\n      ansible_host: 198.18.255.254\n"
                    "  vars:\n    target_domain: example.com\n    wire_ip: ''\n")
    prod = tmp_path / "hosts.ini"
    prod.write_text("[kube-node]\nkubenode1 ansible_host=198.18.255.253\n[cassandra]\ncassandra1 ansible_host=198.18.255.252\n")
    staging = tmp_path / "wiab-staging.yml"
    staging.write_text(WIAB_STAGING)
    assert [inventory_kind(load_inventory(str(p))) for p in (demo, prod, staging)] == ["demo", "production", "wiab-staging"]
    run = run_suite(["--ansible-inventory", str(demo), "-k", "demo_inventory"], tmp_path / "r")
    assert run.compliance["site"]["inventory_kind"] == "demo" and run.compliance["profile"] == "demo"


def test_missing_values_files_name_the_path_and_the_example_to_copy(tmp_path):
    """A wire-server-deploy checkout as shipped: values/wire-server holds only the examples."""
    chart = tmp_path / "wsd" / "values" / "wire-server"
    chart.mkdir(parents=True)
    (chart / "demo-values.example.yaml").write_text("brig:\n  config:\n    optSettings:\n"
                                                    "      setFederationDomain: example.com\n")
    run = run_suite(["--wire-server-deploy", str(tmp_path / "wsd"), "-k", "federation_domain or smtp or secrets"],
                    tmp_path / "r")
    fed = run.result("FED-DOMAIN")
    assert fed["status"] == "not_evaluated", fed
    assert f"{chart / 'values.yaml'}" in fed["message"]
    assert f"cp {chart / 'demo-values.example.yaml'} {chart / 'values.yaml'}" in fed["message"]
    assert not [x for r in run.compliance["requirements"] for x in r["results"] if x["status"] == "error"]
    (chart / "values.yaml").write_text((chart / "demo-values.example.yaml").read_text())
    run = run_suite(["--wire-server-deploy", str(tmp_path / "wsd"), "-k", "federation_domain"], tmp_path / "r2")
    fed = run.result("FED-DOMAIN")
    assert fed["status"] == "fail" and "example.com" in fed["message"], fed


def test_wires_template_vocabulary_is_found_with_file_and_line(tmp_path):
    """Each shape of placeholder Wire's templates use (our own fixture, one of each), found where it is;
    the same files filled in pass. Regular expressions' named groups (fluent-bit) are not placeholders."""
    from wirecheck import placeholders

    inv = tmp_path / "inventory" / "hosts.yml"
    (tmp_path / "inventory" / "group_vars" / "all").mkdir(parents=True)
    inv.write_text("all:\n  hosts:\n    assethost:\n      ansible_host: \"assethost_ip\"\n"
                   "    deploy_node:\n      ansible_host: example.com   # the demo's\n")
    (tmp_path / "inventory" / "group_vars" / "all" / "secrets.yml").write_text(
        "ansible_user: <some_user>\nansible_become_pass: <some password>\n")
    chart = tmp_path / "values" / "wire-server"
    chart.mkdir(parents=True)
    (chart / "prod-secrets.example.yaml").write_text(
        "brig:\n  secrets:\n    pgPassword: verysecurepassword\n    turn:\n      secret: CHANGEMEE6KHMJU1\n")
    (chart / "secrets.yaml").write_text(
        "# CHANGEME-PROD: a comment is not a placeholder\nbrig:\n  secrets:\n    pgPassword: verysecurepassword\n"
        "    turn:\n      secret: CHANGEMEE6KHMJU1\n")
    (tmp_path / "values" / "fluent-bit").mkdir()
    (tmp_path / "values" / "fluent-bit" / "values.yaml").write_text(
        "parsers:\n  regex: '^(?<time>[^ ]+) (?<stream>stdout|stderr) (?<log>.*)$'\n")
    files = placeholders.inventory_files(inv) + placeholders.values_files(tmp_path / "values")
    hits, unreadable = placeholders.scan(files)
    found = {(Path(h.path).name, h.line, h.text) for h in hits}
    assert found == {("hosts.yml", 4, "assethost_ip"), ("hosts.yml", 6, "example.com"),
                     ("secrets.yml", 1, "<some_user>"), ("secrets.yml", 2, "<some password>"),
                     ("secrets.yaml", 4, "brig.secrets.pgPassword = very..."),
                     ("secrets.yaml", 6, "CHANGEMEE6KHMJU1")}, found
    assert not unreadable
    inv.write_text("all:\n  hosts:\n    deploy_node:\n      ansible_host: 198.18.0.5\n")
    (tmp_path / "inventory" / "group_vars" / "all" / "secrets.yml").write_text("ansible_user: wire\n")
    (chart / "secrets.yaml").write_text("brig:\n  secrets:\n    pgPassword: Kx8vQ2rLmN4pZ7wT\n")
    assert placeholders.scan(files) == ([], [])


def test_placeholders_through_the_check_and_in_a_shipped_inventory(tmp_path):
    """As run by an operator: CFG-NO-PLACEHOLDERS names file and line; an inventory whose login user is
    still Wire's <some_user> (offline/99-static) is refused in one line naming every example value."""
    inv = tmp_path / "host.yml"
    inv.write_text("wiab:\n  hosts:\n    deploy_node:\n      ansible_host: example.com\n"
                   "  vars:\n    target_domain: example.com\n")
    run = run_suite(["--ansible-inventory", str(inv), "-k", "placeholders"], tmp_path / "r")
    r = run.result("CFG-NO-PLACEHOLDERS")
    assert r["status"] == "fail" and f"{inv}:4: example.com" in r["message"] and f"{inv}:6: example.com" in r["message"]
    static = tmp_path / "99-static"
    static.write_text("[all:vars]\nansible_user=<some_user>\nansible_password=<some password>\n"
                      "[assethost]\nassethost ansible_host=198.18.255.254\n")
    run = run_suite(["--ansible-inventory", str(static)], tmp_path / "r2")
    out = (run.stdout + run.stderr).strip()
    assert run.rc == 4 and len(out.splitlines()) == 1, out
    assert f"{static}:2: <some_user>" in out and f"{static}:3: <some password>" in out


@pytest.mark.parametrize("relative", ["ansible/inventory/demo/host.yml", "ansible/inventory/offline/staging.yml"])
def test_wires_shipped_inventories_name_their_placeholders(relative, tmp_path):
    path = SHARED_WSD / relative
    if not path.exists():
        pytest.skip(f"{path} is not there (wire-server-deploy is not under ../shared/)")
    run = run_suite(["--ansible-inventory", str(path), "-k", "placeholders"], tmp_path / "r")
    r = run.result("CFG-NO-PLACEHOLDERS")
    assert r["status"] == "fail", r
    wanted = "example.com" if "demo" in relative else "assethost_ip"
    assert f"{path}:" in r["message"] and wanted in r["message"]
