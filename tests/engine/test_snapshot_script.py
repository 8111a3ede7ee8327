"""The host snapshot's one command (wirecheck.facts.snapshot_script) reads with shell builtins what
it used to read with a process per file: what it reports is what the tools report (cat, hostname,
ls, dirname, `$(cat ...)` of each kernel setting, df | tail, gpg | head), on this machine, under
dash and bash."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess

import pytest

from wirecheck.facts import Facts
from wirecheck.host_parsers import parse_meminfo, parse_os_release
from wirecheck.host_script import SNAPSHOT_SYSCTLS, WHICH_PRIMED, dirname, parents, snapshot_script
from wirecheck.sizing import CPU_SCRIPT, parse_cpu_output
from wirecheck.targets import Target
from wirecheck.transport import LocalTransport


def sh(script: str, shell: str = "sh") -> str:
    return subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=30, check=False).stdout


ODD_PATHS = ["/", "//", "/var/lib", "/var/lib/", "/nonexistent/wirecheck/deep", "//nonexistent/b//",
             "relative/not/there", "nothere", "", ".", "/tmp/", "/a//b//c", "/var/lib/no such dir"]


@pytest.mark.parametrize("path", ODD_PATHS)
def test_dirname_is_coreutils_dirname(path) -> None:
    assert dirname(path) == sh(f"dirname -- {shlex.quote(path)}").rstrip("\n")


@pytest.mark.parametrize("path", ODD_PATHS)
def test_the_nearest_existing_parent_is_what_the_dirname_loop_finds(path) -> None:
    old = sh(f"p={shlex.quote(path)}; while [ ! -e \"$p\" ] && [ \"$p\" != / ]; do p=$(dirname -- \"$p\"); done; "
             "printf %s \"$p\"")
    new = sh(f"for p in {' '.join(shlex.quote(x) for x in parents(path))}; do [ -e \"$p\" ] && break; done; "
             "printf %s \"$p\"")
    assert new == old


@pytest.fixture(scope="module")
def snap():
    t = Target(name="here", address="127.0.0.1", roles=[], transport=LocalTransport(), local=True)
    return Facts(t).host_snapshot(("/var/lib/cassandra", "/", "/nonexistent/wirecheck/x"))


def test_files_read_with_builtins_are_what_cat_prints(snap) -> None:
    assert snap["os_release"] == parse_os_release(sh("cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release"))
    assert set(snap["meminfo"]) == set(parse_meminfo(sh("cat /proc/meminfo")))
    assert snap["meminfo"]["MemTotal"] == parse_meminfo(sh("cat /proc/meminfo"))["MemTotal"]
    assert snap["machine_id"] == sh("cat /etc/machine-id 2>/dev/null").strip()
    assert snap["boot_id"] == sh("cat /proc/sys/kernel/random/boot_id").strip() != ""
    assert snap["product_uuid"] == sh("cat /sys/class/dmi/id/product_uuid 2>/dev/null").strip()
    assert snap["swaps"] == [ln.split() for ln in sh("cat /proc/swaps").strip().splitlines()[1:] if ln.strip()]


def test_names_are_what_the_tools_print(snap) -> None:
    assert snap["hostname"] == sh("hostname").strip() != ""
    assert snap["hosts_entry"] == sh("getent hosts \"$(hostname)\"").strip()
    assert snap["modules"] == set(sh("ls /sys/module").split()) != set()
    gpg = sh("gpg --version 2>/dev/null | head -n 1").strip() or None
    assert snap["gpg"] == gpg


def test_the_identity_command_reads_what_the_tools_print() -> None:
    """Facts.identity() without a snapshot: its own light command."""
    t = Target(name="here3", address="127.0.0.1", roles=[], transport=LocalTransport(), local=True)
    ident = Facts(t).identity()
    assert ident == {"hostname": sh("hostname").strip(), "hosts_entry": sh("getent hosts \"$(hostname)\"").strip(),
                     "machine_id": sh("cat /etc/machine-id 2>/dev/null").strip(),
                     "product_uuid": sh("cat /sys/class/dmi/id/product_uuid 2>/dev/null").strip(),
                     "boot_id": sh("cat /proc/sys/kernel/random/boot_id").strip()}


def test_kernel_settings_are_what_cat_prints_whole(snap) -> None:
    """Not what the shell's `read` gets of them: a byte per system call, and a /proc/sys number read
    past offset 0 is empty."""
    old = sh("for k in " + " ".join(SNAPSHOT_SYSCTLS) + "; do f=/proc/sys/$(echo \"$k\" | tr . /); "
             "[ -r \"$f\" ] && printf '%s=%s\\n' \"$k\" \"$(cat \"$f\")\"; done")
    assert snap["sysctl"] == dict(ln.split("=", 1) for ln in old.splitlines() if "=" in ln)
    assert len(snap["sysctl"]["vm.max_map_count"]) >= 5 and "\t" in snap["sysctl"]["net.ipv4.ip_local_port_range"]


def test_program_locations_are_what_command_v_prints(snap) -> None:
    t = Target(name="here2", address="127.0.0.1", roles=[], transport=LocalTransport(), local=True)
    f = Facts(t)
    f.host_snapshot(())
    for prog in WHICH_PRIMED:
        assert f._cache[f"which:{prog}"] == (shutil.which(prog, path=os.environ["PATH"] + ":/usr/local/sbin:/usr/sbin:/sbin")
                                             or None), prog


def test_disks_are_what_df_tail_prints(snap) -> None:
    for path in ("/var/lib/cassandra", "/", "/nonexistent/wirecheck/x"):
        old = sh(f"p={shlex.quote(path)}; while [ ! -e \"$p\" ] && [ \"$p\" != / ]; do p=$(dirname -- \"$p\"); done; "
                 "df -B1 --output=source,fstype,size,avail,target -- \"$p\" | tail -n 1").split()
        du = snap["disks"][path]
        assert (du.source, du.fstype, du.size, du.mount) == (old[0], old[1], int(old[2]), " ".join(old[4:]))


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_the_script_runs_under_dash_and_bash_alike(shell) -> None:
    if not shutil.which(shell):
        pytest.fail(f"{shell} is not installed (an essential package on Debian and Ubuntu)")
    out = sh(snapshot_script(("/",)), shell)
    assert out.rstrip().endswith("@@end")
    sections = [ln[2:] for ln in out.splitlines() if ln.startswith("@@")]
    assert sections == ["os", "nproc", "meminfo", "hostname", "hosts", "machineid", "bootid", "uuid", "addr", "route",
                        "swaps", "modules", "sysctl", "gpg", "arch", "netplan", "which", "df", "end"]
    addr = out.split("\n@@addr\n", 1)[1].split("\n@@route\n", 1)[0]
    assert isinstance(json.loads(addr), list)


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_the_cpu_script_reads_with_builtins_what_python_sees(shell) -> None:
    nproc, online, own, mounts, files = parse_cpu_output(sh(CPU_SCRIPT, shell))
    assert nproc == len(os.sched_getaffinity(0))
    assert own.strip() == open("/proc/self/cgroup").read().strip()
    with open("/proc/self/mountinfo") as fh:
        assert mounts.strip().splitlines() == [ln for ln in fh.read().splitlines()
                                               if " - cgroup " in ln or " - cgroup2 " in ln]
    for path, value in files.items():
        with open(path) as fh:
            assert fh.readline().strip() == value.strip(), path


def test_df_section_names_each_path_by_its_own_line_and_skips_what_df_could_not_read() -> None:
    from wirecheck.host_script import parse_df_section
    text = ("@path\t/var/lib/cassandra\t/var/lib\n@path\t/\t/\n@path\t/srv/data\t/srv\n@path\t/mnt/x\t/mnt/my disk\n"
            "Filesystem     Type    1B-blocks       Avail Mounted on File\n"
            "/dev/vda       ext4 270553174016 74344108032 /          /var/lib\n"
            "/dev/vdb       xfs  100000000000 50000000000 /          /\n"
            "/dev/vdc       ext4 200 100 /mnt/my disk /mnt/my disk\n")
    # /srv had no line (df could not read it): no entry, not the line of another path
    assert parse_df_section(text) == {
        "/var/lib/cassandra": ("/dev/vda", "ext4", 270553174016, 74344108032, "/"),
        "/": ("/dev/vdb", "xfs", 100000000000, 50000000000, "/"),
        "/mnt/x": ("/dev/vdc", "ext4", 200, 100, "/mnt/my disk"),
    }


def test_one_df_process_for_all_paths() -> None:
    script = snapshot_script(("/", "/var/lib/cassandra", "/var/lib/minio", "/opt/assets"))
    assert script.count("df -B1") == 1 and "$(df" not in script


def test_default_routes_from_the_snapshot_are_what_ip_prints() -> None:
    t = Target(name="here", address="127.0.0.1", roles=[], transport=LocalTransport(), local=True)
    facts = Facts(t)
    facts.host_snapshot(("/",))
    assert facts.ip_json("-4 route show default") == json.loads(sh("ip -j -4 route show default") or "[]")
    fresh = Facts(t)          # without a snapshot: its own command
    assert fresh.ip_json("-4 route show default") == facts.ip_json("-4 route show default")


def test_a_snapshot_without_ip_output_is_not_read_as_no_routes(monkeypatch) -> None:
    """`ip` missing on the host: the snapshot's addr and route sections are empty. That is not an empty
    routing table (ip prints "[]" for one): ip_json asks itself and says it cannot measure."""
    from wirecheck.outcome import CannotMeasure
    t = Target(name="here", address="127.0.0.1", roles=[], transport=LocalTransport(), local=True)
    facts = Facts(t)
    real = facts._run

    def no_ip(cmd, sudo=False, timeout=None):
        cmd = cmd.replace("ip -j ", "ip-not-installed -j ")
        return real(cmd, sudo=sudo, timeout=timeout)
    monkeypatch.setattr(facts, "_run", no_ip)
    facts.host_snapshot(("/",))
    for what in ("-4 route show default", "route", "addr"):
        with pytest.raises(CannotMeasure):
            facts.ip_json(what)
