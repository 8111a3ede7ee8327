"""Self-tests of the test-host lab (tests/lab): real sshd in real namespaces, isolated from the runner."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.lab import Lab, LabError, LabHost, cleanup_stale
from tests.lab.core import LOCK_DIR
from tests.lab.fixtures import lab, lab_module, skip_or_fail  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _link_names() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _runner(cmd: str) -> str:
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=30).stdout


def _firewall_snapshot() -> dict[str, str]:
    """The runner's complete firewall state and ufw configuration, to prove hosts leave it alone."""
    snap = {
        "iptables": _runner("iptables-save | grep -v '^#'"),
        "ip6tables": _runner("ip6tables-save | grep -v '^#'"),
        "nft": _runner("nft list ruleset"),
        "ufw-status": _runner("ufw status verbose"),
    }
    for path in sorted(Path("/etc/ufw").rglob("*")) + [Path("/etc/default/ufw")]:
        if path.is_file():
            snap[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return snap


@pytest.fixture(scope="module")
def pair(lab_module: Lab) -> tuple[LabHost, LabHost]:
    """Two differently configured hosts, built once for the read-only tests of this module."""
    one, two = lab_module.add_hosts([
        {
            "name": "node1", "user": "wire", "sudo": True,
            "files": {"/etc/os-release": 'ID=ubuntu\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\n',
                      "/etc/wirecheck-lab-test/created.conf": "created in the host only\n"},
            "sysctls": {"net.ipv4.ip_forward": "1", "vm.max_map_count": "262144"},
            "setup": ["iptables -A INPUT -p tcp --dport 9999 -j DROP -m comment --comment wcl-lab-test",
                      "nft add table inet wcllabtest"],
            "cpus": 1, "meminfo_kib": 8_000_000, "tmpfs": {"/var/lib/docker": "1G"},
            "extra_addresses": ["10.9.8.7/24"],
        },
        {"name": "node2", "user": "ops", "sudo": False, "sysctls": {"net.ipv4.ip_forward": "0"}},
    ])
    return one, two


# -- login, user, sudo ----------------------------------------------------------------------------


def test_ssh_login_runs_commands_as_the_login_user(pair: tuple[LabHost, LabHost]) -> None:
    one, two = pair
    result = one.ssh("id -un; echo $HOME; hostname; test -w $HOME && echo writable")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["wire", "/home/wire", "node1", "writable"]
    assert two.ssh("id -un").stdout.strip() == "ops"
    # the users exist only inside the hosts
    assert "wire:" not in Path("/etc/passwd").read_text().replace("wireshark:", "")
    assert one.hostspec == f"ssh://wire@{one.address}:22"


def test_ssh_key_is_required(pair: tuple[LabHost, LabHost], tmp_path: Path) -> None:
    one, _ = pair
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    argv = ["ssh", "-o", f"IdentityFile={tmp_path / 'other'}"] + [
        x for opt in one.ssh_options if not opt.startswith("IdentityFile=") for x in ("-o", opt)
    ] + [f"wire@{one.address}", "true"]
    denied = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert denied.returncode == 255
    assert "Permission denied" in denied.stderr


def test_host_key_is_checked(pair: tuple[LabHost, LabHost], tmp_path: Path) -> None:
    one, _ = pair
    (tmp_path / "known_hosts").write_text(f"{one.address} ssh-ed25519 "
                                          "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    opts = [o for o in one.ssh_options if not o.startswith("UserKnownHostsFile=")]
    argv = ["ssh"] + [x for o in opts for x in ("-o", o)] + [
        "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}", f"wire@{one.address}", "true"]
    mismatch = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert mismatch.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in mismatch.stderr or "verification failed" in mismatch.stderr


def test_sudo_only_when_granted(pair: tuple[LabHost, LabHost]) -> None:
    one, two = pair
    granted = one.ssh("sudo -n id -u")
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.strip() == "0"
    denied = two.ssh("sudo -n id -u")
    assert denied.returncode != 0
    assert "password is required" in denied.stderr or "not allowed" in denied.stderr
    assert "unable to resolve host" not in granted.stderr


# -- files, sysctls, resources ---------------------------------------------------------------------


def test_file_override_visible_over_ssh_only(pair: tuple[LabHost, LabHost]) -> None:
    one, two = pair
    assert "VERSION_CODENAME=noble" in one.ssh("cat /etc/os-release").stdout
    assert one.ssh("cat /etc/wirecheck-lab-test/created.conf").stdout == "created in the host only\n"
    runner_release = Path("/etc/os-release").read_text()
    assert "noble" not in runner_release
    assert not Path("/etc/wirecheck-lab-test").exists()
    assert two.ssh("cat /etc/os-release").stdout == runner_release
    # the rest of /etc is still the runner's (the overlay only adds the new file)
    assert one.ssh("cat /etc/debian_version").stdout == Path("/etc/debian_version").read_text()


def test_sysctls_are_per_host(pair: tuple[LabHost, LabHost]) -> None:
    one, two = pair
    runner_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    runner_maps = Path("/proc/sys/vm/max_map_count").read_text().strip()
    assert one.ssh("/sbin/sysctl -n net.ipv4.ip_forward").stdout.strip() == "1"
    assert two.ssh("/sbin/sysctl -n net.ipv4.ip_forward").stdout.strip() == "0"
    assert one.ssh("cat /proc/sys/vm/max_map_count").stdout.strip() == "262144"
    assert two.ssh("cat /proc/sys/vm/max_map_count").stdout.strip() == runner_maps
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == runner_forward
    assert runner_maps != "262144" or pytest.skip("runner already has vm.max_map_count=262144")


def test_nproc_reflects_cpus(pair: tuple[LabHost, LabHost]) -> None:
    one, two = pair
    assert one.ssh("nproc").stdout.strip() == "1"
    assert one.exec("nproc").stdout.strip() == "1"
    assert two.ssh("nproc").stdout.strip() == str(len(os.sched_getaffinity(0)))


def test_meminfo_override(pair: tuple[LabHost, LabHost]) -> None:
    one, two = pair
    assert one.ssh("grep MemTotal /proc/meminfo").stdout.split()[1] == "8000000"
    assert one.ssh("free -k | awk '/^Mem:/ {print $2}'").stdout.strip() == "8000000"
    available = int(one.ssh("awk '/^MemAvailable/ {print $2}' /proc/meminfo").stdout)
    assert 0 < available <= 8_000_000
    runner_total = Path("/proc/meminfo").read_text().split()[1]
    assert two.ssh("grep MemTotal /proc/meminfo").stdout.split()[1] == runner_total
    assert runner_total != "8000000"


def test_tmpfs_size_visible_with_df(pair: tuple[LabHost, LabHost]) -> None:
    one, two = pair
    size = one.ssh("df -k --output=size,target /var/lib/docker | tail -1").stdout.split()
    assert size == ["1048576", "/var/lib/docker"]
    assert not Path("/var/lib/docker").exists() or Path("/var/lib/docker").is_dir()
    assert two.ssh("test -d /var/lib/docker").returncode != 0 or Path("/var/lib/docker").is_dir()


# -- network ---------------------------------------------------------------------------------------


def test_hosts_reach_each_other_and_have_no_default_route(pair: tuple[LabHost, LabHost]) -> None:
    one, two = pair
    banner = one.exec(["python3", "-c", textwrap.dedent(f"""
        import socket
        s = socket.create_connection(({two.address!r}, 22), timeout=5)
        print(s.recv(64).decode().strip())
    """)]).stdout
    assert banner.startswith("SSH-2.0-")
    assert "default" not in one.exec("ip route; ip -6 route").stdout
    addrs = one.exec("ip -o addr show").stdout
    assert "10.9.8.7/24" in addrs and f"{one.address}/24" in addrs
    assert "10.9.8.7" not in _runner("ip -o addr show")
    bridge = subprocess.run(["ip", "-o", "addr", "show", "dev", one.lab.bridge], capture_output=True,
                            text=True, check=True).stdout
    assert f"{one.lab.gateway}/24" in bridge


def test_firewall_rules_are_per_host(pair: tuple[LabHost, LabHost]) -> None:
    one, two = pair
    assert "wcl-lab-test" in one.exec("iptables -S INPUT").stdout
    assert "wcl-lab-test" not in two.exec("iptables -S INPUT").stdout
    assert "wcl-lab-test" not in _runner("iptables-save")
    assert "wcllabtest" in one.exec("nft list tables").stdout
    assert "wcllabtest" not in two.exec("nft list tables").stdout
    assert "wcllabtest" not in _runner("nft list tables")


def test_ufw_enable_in_host_leaves_runner_untouched(lab: Lab) -> None:
    before = _firewall_snapshot()
    host = lab.add_host("fw1")
    other = lab.add_host("fw2")
    listener = host.popen(["python3", "-c", textwrap.dedent(f"""
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(({host.address!r}, 8080)); s.listen(); print("listening", flush=True)
        while True:
            s.accept()[0].close()
    """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == b"listening"
        socket.create_connection((host.address, 8080), timeout=2).close()  # open before ufw
        host.exec("ufw allow 22/tcp && ufw --force enable")
        assert "Status: active" in host.exec("ufw status").stdout
        assert "Status: inactive" in other.exec("ufw status").stdout
        # ufw really filters inside the host: 8080 is now dropped, ssh still allowed
        with pytest.raises(OSError):
            socket.create_connection((host.address, 8080), timeout=1).close()
        assert host.ssh("echo ok").stdout.strip() == "ok"
        assert "ufw-user-input" in host.exec("iptables -S").stdout
        assert "ufw-user-input" not in other.exec("iptables -S").stdout
        assert _firewall_snapshot() == before
    finally:
        listener.kill()
        listener.wait()
        listener.stdout.close() if listener.stdout else None
        listener.stderr.close() if listener.stderr else None


# -- sshd faults, exec, popen ----------------------------------------------------------------------


def test_stop_and_start_sshd(lab: Lab) -> None:
    host = lab.add_host("fault1", sysctls={"net.ipv4.ip_forward": "1"})
    host.stop_sshd()
    assert host.sshd is not None and host.sshd.returncode is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host.address, 22), timeout=2).close()
    assert host.ssh("true").returncode == 255
    # the host itself (namespaces, mounts, sysctls) survives without sshd
    assert host.exec("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert host.exec("hostname").stdout.strip() == "fault1"
    host.start_sshd()
    assert host.ssh("id -un").stdout.strip() == "wire"


def test_exec_enters_the_same_mount_namespace_as_sshd(lab: Lab) -> None:
    host = lab.add_host("ns1", files={"/etc/os-release": "ID=lab\n"})
    assert host.exec("cat /etc/os-release").stdout == "ID=lab\n"
    assert host.exec("id -u").stdout.strip() == "0"
    assert host.exec(["sh", "-c", "exit 3"], check=False).returncode == 3
    with pytest.raises(LabError, match="exited 3"):
        host.exec("exit 3")
    sshd_pid = host.sshd.pid if host.sshd else 0
    assert os.readlink(f"/proc/{sshd_pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    inside = host.exec("readlink /proc/self/ns/mnt /proc/self/ns/net").stdout.split()
    assert inside == [os.readlink(f"/proc/{sshd_pid}/ns/mnt"), os.readlink(f"/proc/{sshd_pid}/ns/net")]


def test_setup_failure_is_reported_and_cleaned_up(lab: Lab) -> None:
    before = _netns_names()
    with pytest.raises(LabError, match="setup command 2 failed: exit 7"):
        lab.add_host("broken", setup=["true", "exit 7"])
    lab.close()
    assert _netns_names() <= before


def test_bad_arguments_are_refused(lab: Lab) -> None:
    with pytest.raises(ValueError, match="cannot create"):
        lab.add_host("x1", files={"/wirecheck-no-such-top-dir/file": "x"})
    with pytest.raises(ValueError, match="bad host name"):
        lab.add_host("bad name; rm -rf /")
    with pytest.raises(ValueError, match="cpus"):
        lab.add_host("x2", cpus=len(os.sched_getaffinity(0)) + 1)
    with pytest.raises(ValueError, match="login user"):
        lab.add_host("x3", user="root")


# -- teardown --------------------------------------------------------------------------------------


def test_close_removes_everything() -> None:
    lab = Lab()
    with lab:
        hosts = lab.add_hosts([{"name": "a"}, {"name": "b"}])
        session = subprocess.Popen(hosts[0].ssh_argv("sleep 300"), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while "sleep 300" not in hosts[0].exec("ps -eo args").stdout and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [h.sshd.pid for h in hosts if h.sshd] + [h.holder.pid for h in hosts if h.holder]
        directory, index = lab.dir, lab.index
        netns = {h.netns for h in hosts}
        assert netns <= _netns_names()
    session.wait(timeout=10)  # the ssh client ends because the host went away
    assert not netns & _netns_names()
    assert not {f"wcl{index}br", *(h.veth for h in hosts)} & _link_names()
    assert not any(Path(f"/proc/{pid}").exists() and
                   Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z" for pid in pids)
    assert not directory.exists()
    assert not (LOCK_DIR / f"lab{index}.json").exists()
    assert "sleep 300" not in _runner("ps -eo args")


def test_two_labs_get_different_indices() -> None:
    with Lab() as first, Lab() as second:
        assert first.index != second.index
        assert first.add_host("n").address != second.add_host("n").address


def test_cleanup_stale_after_sigkill(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import json, os, signal, sys
        from tests.lab import Lab
        lab = Lab()
        host = lab.add_host("doomed")
        print(json.dumps({"index": lab.index, "sshd": host.sshd.pid, "dir": str(lab.dir),
                          "netns": host.netns}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    info = json.loads(child.stdout)
    assert info["netns"] in _netns_names()  # the killed owner left it behind
    cleaned = cleanup_stale()
    assert info["index"] in cleaned
    assert info["netns"] not in _netns_names()
    assert f"wcl{info['index']}br" not in _link_names()
    assert not Path(info["dir"]).exists()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{info['sshd']}").exists() and time.monotonic() < deadline:
        if Path(f"/proc/{info['sshd']}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{info['sshd']}").exists() or \
        Path(f"/proc/{info['sshd']}/stat").read_text().split()[2] == "Z"


def test_cleanup_stale_leaves_live_labs_alone(lab: Lab) -> None:
    host = lab.add_host("alive")
    assert lab.index not in cleanup_stale()
    assert host.ssh("true").returncode == 0


# -- clients: testinfra, ansible -------------------------------------------------------------------


def test_testinfra_reaches_host(pair: tuple[LabHost, LabHost]) -> None:
    testinfra = pytest.importorskip("testinfra")
    one, _ = pair
    host = testinfra.get_host(one.hostspec, ssh_config=str(one.lab.ssh_config_path), controlpersist=0)
    assert host.check_output("id -un") == "wire"
    assert host.file("/etc/os-release").contains("noble")
    with host.sudo():
        assert host.check_output("id -u") == "0"


def test_ansible_inventories(pair: tuple[LabHost, LabHost], tmp_path: Path) -> None:
    one, two = pair
    if not (VENV_BIN / "ansible").exists():
        skip_or_fail("ansible is not installed next to the running python")
    yml = one.lab.inventory_yaml(tmp_path / "host.yml", vars={"target_domain": "example.com", "wire_ip": ""},
                                 hosts=[one])
    ini = one.lab.inventory_ini(tmp_path / "hosts.ini", groups={"kube-node": [one, two], "restund": [two]},
                                vars={"domain": "example.com", "flag": True, "spaced": "a b"})
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
           "ANSIBLE_HOME": str(tmp_path / "ansible-home")}
    listing = json.loads(subprocess.run([str(VENV_BIN / "ansible-inventory"), "-i", str(ini), "--list"],
                                        capture_output=True, text=True, check=True, env=env).stdout)
    hostvars = listing["_meta"]["hostvars"]
    assert hostvars["node1"]["ansible_host"] == one.address
    assert hostvars["node2"]["ansible_user"] == "ops"
    assert hostvars["node1"]["ansible_ssh_common_args"] == one.ssh_extra_args
    assert hostvars["node1"]["flag"] is True and hostvars["node1"]["spaced"] == "a b"
    assert sorted(listing["kube-node"]["hosts"]) == ["node1", "node2"]
    # real logins through both inventories, with become on the sudo host
    for inventory, pattern in ((yml, "wiab"), (ini, "kube-node")):
        ping = subprocess.run([str(VENV_BIN / "ansible"), "-i", str(inventory), pattern, "-m", "ping"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert ping.stdout.count("SUCCESS") == (1 if pattern == "wiab" else 2)
    become = subprocess.run([str(VENV_BIN / "ansible"), "-i", str(yml), "node1", "-b", "-m", "command",
                             "-a", "id -u"], capture_output=True, text=True, env=env, timeout=120)
    assert become.returncode == 0 and "\n0" in become.stdout, become.stdout + become.stderr
    assert "target_domain: example.com" in yml.read_text()


# -- the fixture's skip/fail switch ----------------------------------------------------------------


def test_missing_lab_skips_normally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WIRECHECK_REQUIRE_LAB", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no sshd"):
        skip_or_fail("no sshd")


def test_missing_lab_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIRECHECK_REQUIRE_LAB", "1")
    with pytest.raises(pytest.fail.Exception, match="lab required .* no sshd"):
        skip_or_fail("no sshd")
