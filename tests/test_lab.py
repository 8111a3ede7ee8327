"""Self-tests of the test-host lab (tests/lab): real sshd in real namespaces, isolated from the runner."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.lab import Lab, LabError, LabHost, cleanup_stale

# the `lab` and `lab_module` fixtures come from tests/conftest.py (tests.lab.fixtures)

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _link_names() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _netns_inode(name: str) -> int:
    return os.stat(f"/run/netns/{name}").st_ino


def _netns_inodes() -> set[int]:
    """Identity of the live named netns (names alone may be reused at once by a parallel lab)."""
    inodes = set()
    for name in _netns_names():
        try:
            inodes.add(_netns_inode(name))
        except FileNotFoundError:
            pass
    return inodes


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


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
    assert not [line for line in Path("/etc/passwd").read_text().splitlines() if line.startswith("wire:")]
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


def test_root_login_only_when_enabled(lab: Lab) -> None:
    closed, open_ = lab.add_hosts([{"name": "noroot"}, {"name": "root", "root_login": True}])
    assert closed.ssh("id -u", user="root").returncode == 255
    assert open_.ssh("id -u", user="root").stdout.strip() == "0"
    assert open_.ssh("id -un").stdout.strip() == "wire"


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


def test_private_tmp_per_host(pair: tuple[LabHost, LabHost]) -> None:
    one, two = pair
    one.ssh("echo mine > /tmp/wcl-lab-private", check=True)
    assert one.ssh("cat /tmp/wcl-lab-private").stdout == "mine\n"
    assert two.ssh("test -e /tmp/wcl-lab-private").returncode == 1
    assert not Path("/tmp/wcl-lab-private").exists()
    assert one.ssh("stat -c %a /tmp").stdout.strip() == "1777"
    # a private /dev/shm too: of the runner's only this lab's own directory is carried over
    assert one.ssh("ls -A /dev/shm").stdout.split() == ([one.lab.dir.name] if str(one.lab.dir).startswith("/dev/shm/")
                                                        else [])


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


def test_fake_cpus_and_executable_files(lab: Lab) -> None:
    host = lab.add_host("big", fake_cpus=16, files={"/usr/local/bin/wcl-hello": ("#!/bin/sh\necho hi\n", 0o755)})
    assert host.ssh("nproc").stdout.strip() == "16"
    assert host.ssh("grep -c ^processor /proc/cpuinfo").stdout.strip() == "16"
    assert host.ssh("cat /sys/devices/system/cpu/online").stdout.strip() == "0-15"
    assert host.ssh("wcl-hello").stdout == "hi\n"
    assert _runner("nproc").strip() == str(len(os.sched_getaffinity(0)))
    assert not Path("/usr/local/bin/wcl-hello").exists()


def test_private_dirs_are_copy_on_write(lab: Lab) -> None:
    host = lab.add_host("cow", private_dirs=["/var/lib/dpkg"])
    assert host.ssh("test -s /var/lib/dpkg/status && echo present").stdout.strip() == "present"
    host.exec("echo held > /var/lib/dpkg/wcl-lab-private && touch /var/lib/dpkg/status")
    assert host.exec("cat /var/lib/dpkg/wcl-lab-private").stdout == "held\n"
    assert not Path("/var/lib/dpkg/wcl-lab-private").exists()
    with pytest.raises(ValueError, match="existing ordinary directory"):
        lab.add_host("cow2", private_dirs=["/proc/sys"])


def test_session_path_has_sbin_like_ubuntu(pair: tuple[LabHost, LabHost]) -> None:
    one, _ = pair
    assert "/usr/sbin" in one.ssh("echo $PATH").stdout.split(":")
    assert one.ssh("sysctl -n net.ipv4.ip_forward").stdout.strip() == "1"


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
    # the mount exists only in node1: neither the runner nor node2 has it
    assert "/var/lib/docker" not in Path("/proc/self/mounts").read_text()
    assert two.ssh("findmnt -n /var/lib/docker").returncode != 0


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
        listener.communicate()


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


def test_host_with_port_22_firewalled_still_starts(lab: Lab) -> None:
    host = lab.add_host("closed", setup=["iptables -P INPUT DROP"])
    assert host.ssh("true", timeout=30).returncode == 255  # ConnectTimeout, as with a real filtered port
    assert "policy DROP" in host.exec("iptables -L INPUT").stdout
    host.exec("iptables -A INPUT -p tcp --dport 22 -j ACCEPT")
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
    with pytest.raises(LabError, match="setup command 2 failed: exit 7"):
        lab.add_host("broken", setup=["echo noise on stdout", "exit 7"])
    broken = lab.host("broken")
    assert "noise on stdout" in (broken.workdir / "setup.log").read_text()
    inode = _netns_inode(broken.netns)
    lab.close()
    assert inode not in _netns_inodes()
    assert broken.holder is not None and broken.holder.returncode is not None


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
        # only the sleeps inside this host's network namespace (hosts share the machine's PID space)
        in_ns = subprocess.run(["ip", "netns", "pids", hosts[0].netns], capture_output=True, text=True).stdout.split()
        remote_sleep = [int(p) for p in in_ns if Path(f"/proc/{p}/comm").exists()
                        and Path(f"/proc/{p}/comm").read_text().strip() == "sleep"]
        assert remote_sleep
        directory = lab.dir
        inodes = {_netns_inode(h.netns) for h in hosts}
        ifindexes = {int(Path(f"/sys/class/net/{name}/ifindex").read_text())
                     for name in (lab.bridge, *(h.veth for h in hosts))}
    session.wait(timeout=10)  # the ssh client ends because the host went away
    assert not inodes & _netns_inodes()
    live_ifindexes = {int(p.read_text()) for p in Path("/sys/class/net").glob("*/ifindex")}
    assert not ifindexes & live_ifindexes
    assert not [pid for pid in pids + remote_sleep if _alive(pid)]
    assert not directory.exists()


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
        print(json.dumps({"sshd": host.sshd.pid, "dir": str(lab.dir),
                          "netns_inode": os.stat(f"/run/netns/{host.netns}").st_ino,
                          "bridge_ifindex": int(open(f"/sys/class/net/{lab.bridge}/ifindex").read()),
                          }), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    info = json.loads(child.stdout)
    assert _alive(info["sshd"])  # the killed owner left its host behind
    # a lab starting in parallel may clean up (and reuse the index) first: compare identities
    cleanup_stale()
    assert info["netns_inode"] not in _netns_inodes()
    live_ifindexes = {int(p.read_text()) for p in Path("/sys/class/net").glob("*/ifindex")}
    assert info["bridge_ifindex"] not in live_ifindexes
    assert not Path(info["dir"]).exists()
    assert not _alive(info["sshd"])


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
        from tests.lab.fixtures import skip_or_fail

        skip_or_fail("ansible is not installed next to the running python")
    yml = one.lab.inventory_yaml(tmp_path / "host.yml", vars={"target_domain": "example.com", "wire_ip": ""},
                                 hosts=[one])
    ini = one.lab.inventory_ini(tmp_path / "hosts.ini", groups={"kube-node": [one, two], "restund": [two]},
                                vars={"domain": "example.com", "flag": True, "spaced": "a b"})
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
           "ANSIBLE_HOME": str(tmp_path / "ansible-home"), "ANSIBLE_PIPELINING": "1",
           "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"}
    listing = json.loads(subprocess.run([str(VENV_BIN / "ansible-inventory"), "-i", str(ini), "--list"],
                                        capture_output=True, text=True, check=True, env=env).stdout)
    hostvars = listing["_meta"]["hostvars"]
    assert hostvars["node1"]["ansible_host"] == one.address
    assert hostvars["node2"]["ansible_user"] == "ops"
    assert hostvars["node1"]["ansible_ssh_common_args"] == one.ssh_extra_args
    assert hostvars["node1"]["flag"] is True and hostvars["node1"]["spaced"] == "a b"
    assert sorted(listing["kube-node"]["hosts"]) == ["node1", "node2"]
    # real logins through both inventories: become on the sudo host (YAML), both hosts (INI)
    become = subprocess.run([str(VENV_BIN / "ansible"), "-i", str(yml), "wiab", "-b", "-m", "command",
                             "-a", "id -u"], capture_output=True, text=True, env=env, timeout=120)
    assert become.returncode == 0 and "node1 | CHANGED | rc=0 >>\n0" in become.stdout, become.stdout + become.stderr
    ping = subprocess.run([str(VENV_BIN / "ansible"), "-i", str(ini), "kube-node", "-m", "ping"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count("SUCCESS") == 2
    demo = yaml.safe_load(yml.read_text())
    assert demo["wiab"]["vars"] == {"target_domain": "example.com", "wire_ip": ""}
    node = demo["wiab"]["hosts"]["node1"]
    assert (node["ansible_host"], node["ansible_user"], node["ansible_port"]) == (one.address, "wire", 22)
    assert node["ansible_ssh_private_key_file"] == one.key_path
    assert f"UserKnownHostsFile={one.known_hosts_path}" in node["ansible_ssh_common_args"]


# -- the fixture's skip/fail switch ----------------------------------------------------------------


def test_missing_lab_skips_normally(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.lab.fixtures import skip_or_fail

    monkeypatch.delenv("WIRECHECK_REQUIRE_LAB", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no sshd"):
        skip_or_fail("no sshd")


def test_missing_lab_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.lab.fixtures import skip_or_fail

    monkeypatch.setenv("WIRECHECK_REQUIRE_LAB", "1")
    with pytest.raises(pytest.fail.Exception, match="lab required .* no sshd"):
        skip_or_fail("no sshd")


def test_fixture_without_capability() -> None:
    """Real pytest runs as an unprivileged user: the lab fixture skips, or errors when required."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) not installed")
    workdir = Path(tempfile.mkdtemp(prefix="wcl-unprivileged-"))
    try:
        workdir.chmod(0o755)
        (workdir / "conftest.py").write_text("from tests.lab.fixtures import *  # noqa: F403\n")
        (workdir / "test_needs_lab.py").write_text("def test_needs_lab(lab):\n    raise AssertionError('ran')\n")
        runs = {}
        for required in ("", "1"):
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
                   "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(workdir), "WIRECHECK_REQUIRE_LAB": required,
                   "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
            runs[required] = subprocess.Popen(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                 sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q",
                 "--rootdir", str(workdir), str(workdir / "test_needs_lab.py")],
                cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        outputs = {required: proc.communicate(timeout=120)[0] for required, proc in runs.items()}
    finally:
        for proc in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    skipped, required = outputs[""], outputs["1"]
    assert runs[""].returncode == 0 and "1 skipped" in skipped and "needs root" in skipped, skipped
    assert runs["1"].returncode != 0 and "1 error" in required, required
    assert "lab required (WIRECHECK_REQUIRE_LAB=1) but unavailable: the lab needs root" in required
    assert "AssertionError" not in skipped + required


def test_atexit_closes_an_unclosed_lab() -> None:
    script = textwrap.dedent("""
        import json, os
        from tests.lab import Lab
        lab = Lab()
        host = lab.add_host("forgotten")
        print(json.dumps({"sshd": host.sshd.pid, "dir": str(lab.dir),
                          "netns_inode": os.stat(f"/run/netns/{host.netns}").st_ino}), flush=True)
    """)  # exits without close(): the atexit hook must tear the lab down
    child = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    info = json.loads(child.stdout)
    assert info["netns_inode"] not in _netns_inodes()
    assert not Path(info["dir"]).exists()
    assert not _alive(info["sshd"])
