"""Inventories whose login user needs a password for sudo: Ansible's become password
(`ansible_become_pass`, `ansible_become_password`; Wire's offline/99-static ships the line) is what
wirecheck gives sudo, with `sudo -S` and the password on stdin -- never on a command line, in the
command log or in a report.

The lab host's user `wire` has a real password (SHA-512 crypt in the host's /etc/shadow) and sudoers
`wire ALL=(ALL:ALL) ALL`, so sudo asks for it: `sudo -n` is refused there. Both ways: the right password
makes HOST-SUDO and a root-only check (the firewall view, which sees an nft rule only root can list)
measure; a wrong one is an `error` saying that sudo refused the password, for each of them.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.wc import run_suite
from wirecheck.transport import SshTransport

PASSWORD = "Wire sudo pw 7!$x"        # blanks and shell characters: it must reach sudo as it is


@pytest.fixture(scope="module")
def node(lab_module):
    return lab_module.add_host("deploy_node", user="wire", sudo=True, sudo_password=PASSWORD, setup=[
        "nft add table inet wall",
        "nft add chain inet wall input '{ type filter hook input priority 0; policy accept; }'",
        "nft add rule inet wall input udp dport 60000-60010 drop"])


def demo_inventory(path, host, **become) -> str:
    """host.yml's shape, its deploy node this lab host, with the become variable(s) given."""
    doc = {"wiab": {"hosts": {"deploy_node": {
        "ansible_host": host.address, "ansible_port": host.port, "ansible_user": host.user,
        "ansible_ssh_private_key_file": host.key_path, "ansible_ssh_common_args": host.ssh_extra_args, **become}},
        "vars": {"target_domain": "wire.lab.test", "wire_ip": host.address}}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def everything_written(run, log) -> str:
    """Every byte the run left: its output, each report file, the command log."""
    parts = [run.stdout, run.stderr, log.read_text() if log.exists() else ""]
    parts += [p.read_text(errors="replace") for p in run.report_dir.rglob("*") if p.is_file()]
    return "\n".join(parts)


def test_without_the_password_sudo_is_refused(node, tmp_path):
    """The host really asks: no become password in the inventory -> HOST-SUDO fails, the firewall is an error."""
    run = run_suite(["--ansible-inventory", demo_inventory(tmp_path / "host.yml", node), "-k", "sudo or firewall"],
                    tmp_path / "r")
    sudo = run.result("HOST-SUDO")
    assert sudo["status"] == "fail" and "sudo: a password is required" in sudo["message"], sudo
    assert "ansible_become_pass" in sudo["message"]                      # the fix is named
    fw = run.result("DEMO-NET-FIREWALL")
    assert fw["status"] == "error" and "needs root and sudo -n refused" in fw["message"], fw


def test_the_right_become_password_lets_root_checks_measure_and_is_never_written(node, tmp_path, monkeypatch):
    log = tmp_path / "commands.log"
    monkeypatch.setenv("WIRECHECK_COMMAND_LOG", str(log))
    inv = demo_inventory(tmp_path / "host.yml", node, ansible_become_pass=PASSWORD)
    run = run_suite(["--ansible-inventory", inv, "-k", "sudo or firewall"], tmp_path / "r")
    sudo = run.result("HOST-SUDO")
    assert sudo["status"] == "pass", sudo
    assert "sudo -S id -u" in sudo["message"] and "ansible_become_pass" in sudo["message"], sudo
    # root's view of the firewall: the nft rule the login user cannot list is found and judged
    fw = run.result("DEMO-NET-FIREWALL")
    assert fw["status"] == "fail" and "INPUT udp/60000-60010: drop by `nft: table inet wall chain input" \
        in fw["message"], fw
    # the commands that needed root went through sudo -S; the password is nowhere
    assert any("\tsudo " in line for line in log.read_text().splitlines())
    written = everything_written(run, log)
    assert PASSWORD not in written and "Wire sudo pw" not in written
    assert "ansible_become_pass" in run.compliance["redacted_fields"]


def test_a_wrong_become_password_is_an_error_naming_sudos_refusal(node, tmp_path, monkeypatch):
    log = tmp_path / "commands.log"
    monkeypatch.setenv("WIRECHECK_COMMAND_LOG", str(log))
    wrong = "not-the-Password-42"
    inv = demo_inventory(tmp_path / "host.yml", node, ansible_become_password=wrong)
    run = run_suite(["--ansible-inventory", inv, "-k", "sudo or firewall"], tmp_path / "r")
    for rid in ("HOST-SUDO", "DEMO-NET-FIREWALL"):
        res = run.result(rid)
        assert res["status"] == "error", res
        assert "sudo refused the password given in ansible_become_password for wire" in res["message"], res
        assert "incorrect password attempt" in res["message"] and "not installed" not in res["message"]
    assert run.rc != 0
    # asked once per run and host (sudo's failure delay is paid once), and never written anywhere
    asked = [line for line in log.read_text().splitlines() if "is the become password accepted" in line]
    assert len(asked) == 1, asked
    assert wrong not in everything_written(run, log)


def test_the_password_is_not_on_any_command_line(node):
    """What the ssh client is started with (the remote command included) never holds the password."""
    t = SshTransport(node.address, user=node.user, port=node.port, identity_file=node.key_path,
                     extra_args=[x for o in node.ssh_options for x in ("-o", o)])
    t.use_become_password(PASSWORD, "ansible_become_pass")
    try:
        argv = t.argv_for(t.wrap("id -u", sudo=True))
        assert PASSWORD not in json.dumps(argv) and "sudo -S" in argv[-1]
        # a command's own stdin reaches it whole after the password line sudo read
        res = t.run("id -u; cat", sudo=True, stdin=b"first line\nsecond\n")
        assert (res.rc, res.stdout) == (0, "0\nfirst line\nsecond\n"), res
        with t.popen(["sh", "-c", "id -u; cat"], sudo=True) as proc:     # the port probe's agent starts so
            out, _ = proc.communicate(b"to the agent\n", timeout=30)
        assert out == b"0\nto the agent\n"
    finally:
        t.close()


def test_a_password_sudo_did_not_ask_for_never_reaches_the_command(lab_module):
    """NOPASSWD sudo and a become password given anyway: the command's stdin starts with its own input."""
    h = lab_module.add_host("nopasswd", user="wire", sudo=True)
    t = SshTransport(h.address, user=h.user, port=h.port, identity_file=h.key_path,
                     extra_args=[x for o in h.ssh_options for x in ("-o", o)])
    t.use_become_password(PASSWORD, "ansible_become_pass")
    try:
        res = t.run("id -u; cat", sudo=True, stdin=b"own input\n")
        assert (res.rc, res.stdout) == (0, "0\nown input\n"), res
    finally:
        t.close()


def test_testinfra_sudo_in_site_packs_uses_the_become_password(node):
    """A site pack's `host` fixture (testinfra's modules over wirecheck's transport): host.sudo() gains
    root the way the target does, here with the become password; without it, sudo refuses."""
    from wirecheck.targets import Target
    from wirecheck.testinfra_backend import testinfra_host

    def host_with(password):
        t = SshTransport(node.address, user=node.user, port=node.port, identity_file=node.key_path,
                         extra_args=[x for o in node.ssh_options for x in ("-o", o)])
        if password:
            t.use_become_password(password, "ansible_become_pass")
        return Target(name="deploy_node", address=node.address, roles=["deploy_node"], transport=t)

    with_pw, without = host_with(PASSWORD), host_with(None)
    try:
        host = testinfra_host(with_pw)
        assert host.check_output("id -u") == str(node.uid)
        with host.sudo():
            assert host.check_output("id -u") == "0"
            assert host.file("/etc/shadow").contains(f"^{node.user}:\\$6\\$")      # root-only file, read
        with testinfra_host(without).sudo():
            res = testinfra_host(without).run("id -u")
        assert res.rc == 1 and "a password is required" in res.stderr
    finally:
        with_pw.close()
        without.close()


def test_wires_99_static_shape_password_login_and_become_password(lab_module, tmp_path, monkeypatch):
    """offline/99-static as Wire ships it, filled in: [all:vars] with ansible_user, ansible_password
    (the login, through sshpass) and ansible_become_pass (sudo). The login and root both work, and
    neither password is written anywhere; with a wrong become password, root-needing checks are errors."""
    h = lab_module.add_host("assethost", user="demo", sudo=True, sudo_password=PASSWORD, password_login=True)
    log = tmp_path / "commands.log"
    monkeypatch.setenv("WIRECHECK_COMMAND_LOG", str(log))
    known = f"-o UserKnownHostsFile={h.known_hosts_path} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes"

    def static(name: str, become: str) -> str:
        path = tmp_path / name
        path.write_text(f"[all]\nassethost ansible_host={h.address} ansible_port={h.port}\n\n"
                        f"[all:vars]\nansible_user={h.user}\nansible_password={PASSWORD}\n"
                        f"ansible_become_pass={become}\nansible_ssh_common_args='{known}'\n\n"
                        "[assethost]\nassethost\n")
        return str(path)

    run = run_suite(["--ansible-inventory", static("99-static", PASSWORD), "--profile", "production",
                     "-k", "sudo or ssh_non_interactive"], tmp_path / "r")
    login = run.result("CTRL-SSH-KEY-AUTH", "assethost")
    assert login["status"] == "pass", login
    assert f"Accepted password for {h.user}" in h.sshd_log()          # sshpass logged in, no key
    sudo = run.result("HOST-SUDO", "assethost")
    assert sudo["status"] == "pass" and "sudo -S id -u (password from ansible_become_pass)" in sudo["message"], sudo
    assert PASSWORD not in everything_written(run, log) and "Wire sudo pw" not in everything_written(run, log)
    run = run_suite(["--ansible-inventory", static("99-static-wrong", "wrong-one"), "--profile", "production",
                     "-k", "sudo or ssh_non_interactive"], tmp_path / "r2")
    assert run.result("CTRL-SSH-KEY-AUTH", "assethost")["status"] == "pass"
    sudo = run.result("HOST-SUDO", "assethost")
    assert sudo["status"] == "error" and "sudo refused the password given in ansible_become_pass for demo" \
        in sudo["message"], sudo
