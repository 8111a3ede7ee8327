"""Real test hosts for wirecheck's own tests: network namespaces with their own sshd.

Each host is a network namespace on a per-lab Linux bridge plus a private mount and UTS
namespace, held open by a small "holder" process. sshd runs inside those namespaces as a child
of the test process, so tests SSH into a host exactly as into a real machine, and fault tests can
stop and restart sshd while the host (its mounts, firewall rules, sysctls) stays as it is.

Everything a lab creates is named after its index (netns ``wcl<idx>h<n>``, bridge ``wcl<idx>br``,
veths ``wcl<idx>v<n>``) and owned through a flock'd file under /run/wirecheck-lab/, so leftovers of
a killed test run can be recognised and removed by the next one (:func:`cleanup_stale`).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCK_DIR = Path("/run/wirecheck-lab")
#: lab indices map to 198.18.<index>.0/24 (RFC 2544 benchmarking range, never routed anywhere)
INDEX_RANGE = range(1, 251)
SUBNET_PREFIX = "198.18"
SSHD = "/usr/sbin/sshd"
SFTP_SERVER_CANDIDATES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server")
REQUIRED_TOOLS = ("ip", "unshare", "nsenter", "ssh-keygen", "ssh", "mount", "taskset")
#: directories that must never be covered by an overlay (the host would lose its /proc, /dev ...)
_NO_OVERLAY = {"/", "/proc", "/sys", "/dev", "/run", "/tmp"}
#: copy-on-write for every host: what a host writes there stays in the host
DEFAULT_OVERLAYS = ("/etc", "/var", "/usr", "/opt", "/root", "/srv")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_SIZE_RE = re.compile(r"^[0-9]+[kKmMgG%]?$")
_STALE_NETNS_RE = re.compile(r"^wcl(\d+)h(\d+)$")
_STALE_LINK_RE = re.compile(r"^wcl(\d+)(br|v\d+)$")


#: content of a file override: text, bytes, or (text-or-bytes, mode) e.g. ("#!/bin/sh\necho 16\n", 0o755)
FileContent = str | bytes | tuple[str | bytes, int]
#: PATH of SSH sessions: Ubuntu's (pam_env /etc/environment), with sbin, as on the real targets
UBUNTU_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games:/usr/local/games:/snap/bin"


class LabUnavailable(RuntimeError):
    """The machine cannot run a lab (not root, no `ip netns`, no sshd, no free index ...)."""


class LabError(RuntimeError):
    """Building or driving a lab host failed; the message carries the host's own diagnostics."""


# --------------------------------------------------------------------------------------------
# capability check


_capability_cache: str | None = None
_capability_checked = False


def lab_unavailable_reason() -> str | None:
    """Why this machine cannot run a lab, or None when it can (checked once per process)."""
    global _capability_cache, _capability_checked
    if _capability_checked:
        return _capability_cache
    _capability_cache = _probe_capabilities()
    _capability_checked = True
    return _capability_cache


def _probe_capabilities() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (network and mount namespaces)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    if not os.access(SSHD, os.X_OK):
        return f"no sshd at {SSHD} (install openssh-server)"
    probe = f"wclp{os.getpid()}"
    created = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10)
    if created.returncode != 0:
        return f"`ip netns add` does not work here: {created.stderr.strip()}"
    try:
        moved = subprocess.run(
            ["ip", "netns", "exec", probe, "unshare", "--mount", "--uts", "--propagation", "private", "true"],
            capture_output=True, text=True, timeout=10,
        )
        if moved.returncode != 0:
            return f"cannot enter a network + mount namespace: {moved.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


# --------------------------------------------------------------------------------------------
# helpers


def _run(argv: Sequence[str], *, input_text: str | None = None, timeout: float = 30,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), input=input_text, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise LabError(f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _ip_batch(lines: Iterable[str], *, force: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run many `ip` commands in one process (much faster than one fork per command)."""
    argv = ["ip"] + (["-force"] if force else []) + ["-batch", "-"]
    text = "".join(line + "\n" for line in lines)
    result = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=timeout)
    if not force and result.returncode != 0:
        raise LabError(f"ip -batch failed: {result.stderr.strip()}\n--- batch ---\n{text}")
    return result


def _netns_pids(netns: str) -> list[int]:
    result = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, timeout=10)
    return [int(tok) for tok in result.stdout.split() if tok.isdigit()]


def _pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


def _kill_pids(pids: Iterable[int], timeout: float = 5.0) -> None:
    """SIGKILL pids and wait until they are gone or zombies (zombies hold no namespaces)."""
    pids = [pid for pid in pids if pid > 1]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if not _pid_gone(pid)]
        if pids:
            time.sleep(0.01)


def _stop_popen(proc: subprocess.Popen[Any] | None, timeout: float = 5.0) -> None:
    if proc is None or proc.returncode is not None:
        if proc is not None:
            proc.wait()
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=timeout)


def _scratch_parent() -> str | None:
    """Where lab directories go: /dev/shm when it is a tmpfs (creating the ~40 small files of a
    host on a busy disk costs far more than the rest of its start), else the default temp dir."""
    with contextlib.suppress(OSError):
        with open("/proc/self/mounts") as fh:
            if any(line.split()[1:3] == ["/dev/shm", "tmpfs"] for line in fh):
                return "/dev/shm"
    return None


def _write(path: Path, content: str | bytes, mode: int) -> None:
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    path.chmod(mode)


def _sysctl_path(key: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", key) or ".." in key:
        raise ValueError(f"bad sysctl name {key!r}")
    return "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))


def _meminfo_with_total(total_kib: int) -> str:
    """The runner's /proc/meminfo with MemTotal replaced and free figures capped to match."""
    out = []
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key == "MemTotal":
            line = f"MemTotal:       {total_kib:>8} kB"
        elif key in ("MemFree", "MemAvailable"):
            value = int(rest.split()[0])
            cap = total_kib * (9 if key == "MemAvailable" else 8) // 10
            line = f"{key}:{min(value, cap):>{max(8, len(rest) - 3)}} kB"
        out.append(line)
    return "\n".join(out) + "\n"


def _fake_cpu_files(count: int | None) -> dict[str, FileContent]:
    """A stand-in for machines bigger than the runner: `nproc`, /proc/cpuinfo and the sysfs CPU
    lists report `count` CPUs (the host still runs on the runner's real CPUs)."""
    if count is None:
        return {}
    if count < 1:
        raise ValueError(f"fake_cpus={count}: need at least 1")
    blocks = [b for b in Path("/proc/cpuinfo").read_text().split("\n\n") if b.strip()]
    template = blocks[0] if blocks else "processor\t: 0\n"
    cpuinfo = ""
    for number in range(count):
        block = re.sub(r"^processor\s*:.*$", f"processor\t: {number}", template, flags=re.M)
        block = re.sub(r"^(core id\s*:).*$", rf"\g<1> {number}", block, flags=re.M)
        block = re.sub(r"^(apicid|initial apicid)(\s*:).*$", rf"\g<1>\g<2> {number}", block, flags=re.M)
        block = re.sub(r"^(siblings|cpu cores)(\s*:).*$", rf"\g<1>\g<2> {count}", block, flags=re.M)
        cpuinfo += block.rstrip("\n") + "\n\n"
    cpu_range = "0" if count == 1 else f"0-{count - 1}"
    nproc = ("#!/bin/sh\n# wirecheck lab stand-in: this host reports a fixed CPU count\n"
             f"echo {count}\n")
    files: dict[str, FileContent] = {"/proc/cpuinfo": cpuinfo, "/usr/bin/nproc": (nproc, 0o755)}
    for name in ("online", "present", "possible"):
        if os.path.isfile(f"/sys/devices/system/cpu/{name}"):
            files[f"/sys/devices/system/cpu/{name}"] = cpu_range + "\n"
    # the cgroup files wirecheck reads along the process's cgroup path (the runner's: the host's
    # sshd starts in it) say the same: cpusets of `count` CPUs, no CPU quota
    from wirecheck.sizing import cgroup_dirs, parse_cgroup_mounts
    try:
        own = Path("/proc/self/cgroup").read_text()
        mounts = parse_cgroup_mounts(Path("/proc/self/mountinfo").read_text())
    except OSError:
        own, mounts = "", []
    fake = {"cpu.max": "max 100000", "cpu.cfs_quota_us": "-1", "cpuset.cpus.effective": cpu_range,
            "cpuset.effective_cpus": cpu_range}
    for _, directory, _ in cgroup_dirs(own, mounts):
        for name, content in fake.items():
            if os.path.isfile(f"{directory}/{name}"):
                files[f"{directory}/{name}"] = content + "\n"
    return files


def _cgroup_mount_lines() -> list[str]:
    """Shell lines that mount, inside a host, the runner's cgroup v2 hierarchy and its v1 cpu and
    cpuset hierarchies where the runner has them (same places, same hierarchies: a cgroup made on
    the runner shows inside the host)."""
    try:
        info = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    lines: list[str] = []
    for line in info.splitlines():
        head, sep, tail = line.partition(" - ")
        f, t = head.split(), tail.split()
        if not sep or len(f) < 5 or not t:
            continue
        point = f[4]
        if not point.startswith("/sys/fs/cgroup"):
            continue
        if t[0] == "tmpfs" and point == "/sys/fs/cgroup":
            lines.append("mount -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup || echo 'lab: no tmpfs on /sys/fs/cgroup' >&2")
        elif t[0] == "cgroup2":
            lines.append(f"{{ mkdir -p {shlex.quote(point)} && mount -t cgroup2 cgroup2 {shlex.quote(point)}; }} || "
                         f"echo 'lab: cannot mount cgroup2 on {point}' >&2")
        elif t[0] == "cgroup" and len(t) > 2:
            ctrls = [o for o in t[2].split(",") if o in ("cpu", "cpuacct", "cpuset")]
            if "cpu" in ctrls or "cpuset" in ctrls:
                lines.append(f"{{ mkdir -p {shlex.quote(point)} && mount -t cgroup -o {','.join(ctrls)} cgroup "
                             f"{shlex.quote(point)}; }} || echo 'lab: cannot mount cgroup {point}' >&2")
    return lines


# --------------------------------------------------------------------------------------------
# hosts


@dataclass
class LabHost:
    """One test host. Address, user and key for SSH; exec() for root access from the runner."""

    lab: Lab
    index: int
    name: str
    address: str
    user: str
    sudo: bool
    netns: str
    veth: str
    workdir: Path
    cpu_list: str | None
    uid: int
    gid: int = 0
    port: int = 22
    holder: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    sshd: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    extra_addresses: list[str] = field(default_factory=list)
    #: the login user's password, asked by sudo (``sudo_password=``); None: sudo without a password
    sudo_password: str | None = field(default=None, repr=False)

    # -- addressing ---------------------------------------------------------------------------

    @property
    def key_path(self) -> str:
        return str(self.lab.key_path)

    @property
    def known_hosts_path(self) -> str:
        return str(self.lab.known_hosts_path)

    @property
    def hostspec(self) -> str:
        """For testinfra --hosts (combine with --ssh-config=lab.ssh_config_path or ssh_extra_args)."""
        return f"ssh://{self.user}@{self.address}:{self.port}"

    @property
    def ssh_options(self) -> list[str]:
        """`ssh -o` option values (without the -o) that make ssh trust exactly this lab's host key."""
        return self.lab.ssh_options

    @property
    def ssh_extra_args(self) -> str:
        """The options as one string, for testinfra's ssh_extra_args or ansible_ssh_common_args."""
        return " ".join(f"-o {shlex.quote(opt)}" for opt in self.ssh_options)

    def ssh_argv(self, command: str | None = None, *, user: str | None = None) -> list[str]:
        """argv for the runner's ssh client logging into this host (command is a remote shell string)."""
        argv = ["ssh"]
        for opt in self.ssh_options:
            argv += ["-o", opt]
        argv += ["-p", str(self.port), f"{user or self.user}@{self.address}"]
        if command is not None:
            argv += ["--", command]
        return argv

    def ssh(self, command: str, *, timeout: float = 30, check: bool = False,
            user: str | None = None, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a remote shell command over real SSH as the host's login user."""
        result = subprocess.run(self.ssh_argv(command, user=user), input=input_text,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise LabError(f"ssh {self.name} {command!r} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    @contextlib.contextmanager
    def sudo_asks_password(self, password: str):
        """For the duration: the login user has `password` and sudo asks for it (as with sudo_password=
        at creation); afterwards sudo without a password again."""
        hashed = _run(["openssl", "passwd", "-6", "-stdin"], input_text=password + "\n").stdout.strip()
        self.exec(["sh", "-c", 'cp /etc/shadow /etc/shadow.wc-saved && usermod -p "$1" "$2" && '
                   'sed -i "s/^$2\tALL=(ALL:ALL) NOPASSWD: ALL$/$2\tALL=(ALL:ALL) ALL/" /etc/sudoers && '
                   'grep -q "^$2\tALL=(ALL:ALL) ALL$" /etc/sudoers', "sh", hashed, self.user])
        try:
            yield self
        finally:
            self.exec(["sh", "-c", 'cat /etc/shadow.wc-saved > /etc/shadow && rm /etc/shadow.wc-saved && '
                       'sed -i "s/^$1\tALL=(ALL:ALL) ALL$/$1\tALL=(ALL:ALL) NOPASSWD: ALL/" /etc/sudoers',
                       "sh", self.user])

    # -- root access from the runner -----------------------------------------------------------

    def _enter_argv(self, argv: Sequence[str]) -> list[str]:
        if self.holder is None or self.holder.returncode is not None:
            raise LabError(f"host {self.name} is not running")
        prefix = ["nsenter", "-t", str(self.holder.pid), "-n", "-m", "-u"]
        if self.cpu_list is not None:
            prefix += ["taskset", "-c", self.cpu_list]
        return prefix + list(argv)

    def exec(self, command: str | Sequence[str], *, check: bool = True, timeout: float = 60,
             input_text: str | None = None, env: Mapping[str, str] | None = None,
             ) -> subprocess.CompletedProcess[str]:
        """Run as root inside the host's network, mount and UTS namespaces (a str goes to `sh -c`)."""
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        result = subprocess.run(self._enter_argv(argv), input=input_text, capture_output=True, text=True,
                                timeout=timeout, env=dict(env) if env is not None else None)
        if check and result.returncode != 0:
            raise LabError(f"{self.name}: {argv!r} exited {result.returncode}\nstdout: {result.stdout}\n"
                           f"stderr: {result.stderr}")
        return result

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start argv as root inside the host without waiting; the caller stops and wait()s it
        (close() of the lab kills whatever is left inside the host)."""
        return subprocess.Popen(self._enter_argv(argv), **kwargs)

    # -- sshd ----------------------------------------------------------------------------------

    def start_sshd(self, timeout: float = 10.0) -> None:
        if self.sshd is not None and self.sshd.poll() is None:
            return
        self._spawn_sshd()
        self.wait_for_sshd(timeout)

    def _spawn_sshd(self) -> None:
        log = open(self.workdir / "sshd.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.sshd = subprocess.Popen(
                self._enter_argv([SSHD, "-D", "-e", "-f", str(self.workdir / "sshd_config")]),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        finally:
            log.close()

    def wait_for_sshd(self, timeout: float = 10.0) -> None:
        """Block until sshd's socket listens on address:port inside the host.

        Read from the host's /proc/net/tcp rather than by connecting, so a host whose own
        firewall drops port 22 (a fault some tests build on purpose) still starts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sshd is None or self.sshd.poll() is not None:
                raise LabError(f"sshd on {self.name} exited early:\n{self.sshd_log()}")
            if self._listening():
                return
            time.sleep(0.005)
        raise LabError(f"sshd on {self.name} ({self.address}:{self.port}) not listening after {timeout}s\n"
                       f"{self.sshd_log()}")

    def _listening(self) -> bool:
        assert self.sshd is not None
        # /proc/net/tcp prints the address as the host-order (little-endian) integer, in hex
        wanted = f"{int.from_bytes(socket.inet_aton(self.address), 'little'):08X}:{self.port:04X}"
        try:
            with open(f"/proc/{self.sshd.pid}/net/tcp") as fh:
                next(fh)
                return any(f[1] == wanted and f[3] == "0A" for f in (line.split() for line in fh))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            return False

    def stop_sshd(self) -> None:
        """Stop the listening sshd (open sessions keep running); the host itself stays up."""
        _stop_popen(self.sshd)

    def sshd_log(self) -> str:
        path = self.workdir / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logins(self) -> int:
        """SSH logins this host's sshd has accepted so far (from its log)."""
        return self.sshd_log().count("Accepted publickey for ")

    # -- teardown ------------------------------------------------------------------------------

    def _stop(self) -> None:
        _stop_popen(self.sshd, timeout=2)
        if self.holder is not None:
            if self.holder.stdin is not None:
                with contextlib.suppress(OSError):
                    self.holder.stdin.close()
            _stop_popen(self.holder, timeout=2)
            if self.holder.stdout is not None:
                self.holder.stdout.close()
        # sessions forked by sshd and anything started with popen(): nothing may outlive the host
        _kill_pids(_netns_pids(self.netns))


# --------------------------------------------------------------------------------------------
# the lab


_open_labs: set[Lab] = set()
_open_labs_lock = threading.Lock()


def _close_open_labs() -> None:
    for lab in list(_open_labs):
        with contextlib.suppress(Exception):
            lab.close()


atexit.register(_close_open_labs)


class Lab:
    """A set of test hosts on one bridge. Use as a context manager, or call close()."""

    def __init__(self, *, index: int | None = None) -> None:
        reason = lab_unavailable_reason()
        if reason:
            raise LabUnavailable(reason)
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        self.hosts: list[LabHost] = []
        self._closed = False
        self._lock_fd: int | None = None
        self._tmp: Path | None = None
        self._next_host = 2
        self.index = self._acquire(index)
        try:
            self.bridge = f"wcl{self.index}br"
            self.gateway = f"{SUBNET_PREFIX}.{self.index}.1"
            self._tmp = Path(tempfile.mkdtemp(prefix=f"wirecheck-lab{self.index}-", dir=_scratch_parent()))
            # hosts' sshd reads authorized_keys as the login user: the directory must be traversable
            self._tmp.chmod(0o711)
            self._write_state()
            with _open_labs_lock:
                _open_labs.add(self)
            self._make_keys()
            self.known_hosts_path.write_text("")
            _ip_batch([
                f"link add {self.bridge} type bridge",
                f"addr add {self.gateway}/24 dev {self.bridge}",
                f"link set {self.bridge} up",
            ])
        except BaseException:
            self.close()
            raise

    # -- index allocation & stale cleanup ------------------------------------------------------

    def _acquire(self, wanted: int | None) -> int:
        cleanup_stale()
        candidates = [wanted] if wanted is not None else list(INDEX_RANGE)
        for index in candidates:
            fd = os.open(LOCK_DIR / f"lab{index}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if _index_in_use_by_others(index):
                # lock free but names present: leftovers cleanup_stale could not remove; skip index
                _remove_index_leftovers(index)
                if _index_in_use_by_others(index):
                    os.close(fd)
                    continue
            self._lock_fd = fd
            return index
        raise LabUnavailable(f"no free lab index in {candidates[0]}..{candidates[-1]}")

    def _write_state(self) -> None:
        state = {"pid": os.getpid(), "tmp": str(self._tmp), "started": time.time()}
        (LOCK_DIR / f"lab{self.index}.json").write_text(json.dumps(state))

    # -- keys ----------------------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        assert self._tmp is not None
        return self._tmp

    @property
    def key_path(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def host_key_path(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def known_hosts_path(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def authorized_keys_path(self) -> Path:
        return self.dir / "authorized_keys"

    @property
    def ssh_config_path(self) -> Path:
        """An ssh_config with one entry per host (by name and by address): `ssh -F <this> node1`."""
        return self.dir / "ssh_config"

    def _make_keys(self) -> None:
        procs = [
            subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for path, comment in ((self.key_path, f"wirecheck-lab{self.index}"),
                                  (self.host_key_path, f"wirecheck-lab{self.index}-host"))
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=30)
            if proc.returncode != 0:
                raise LabError(f"ssh-keygen failed: {err.decode(errors='replace')}")
        self.authorized_keys_path.write_text(Path(f"{self.key_path}.pub").read_text())
        self.authorized_keys_path.chmod(0o644)
        self._host_public_key = " ".join(Path(f"{self.host_key_path}.pub").read_text().split()[:2])

    @property
    def ssh_options(self) -> list[str]:
        return [
            f"IdentityFile={self.key_path}",
            "IdentitiesOnly=yes",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "GlobalKnownHostsFile=/dev/null",
            "StrictHostKeyChecking=yes",
            "CheckHostIP=no",
            "BatchMode=yes",
            "PasswordAuthentication=no",
            "ConnectTimeout=5",
            "LogLevel=ERROR",
        ]

    # -- hosts ---------------------------------------------------------------------------------

    def add_host(self, name: str, **options: Any) -> LabHost:
        """Create and start one host (see add_hosts for the options); returns when sshd answers."""
        return self.add_hosts([{"name": name, **options}])[0]

    def add_hosts(self, specs: Sequence[Mapping[str, Any]]) -> list[LabHost]:
        """Create and start several hosts in parallel. Each spec is a dict of add_host's arguments:

        name, user="wire", sudo=True, sudo_password=None (the login user's password: sudo then asks
        for it, as on machines whose operators give Ansible ansible_become_pass), files={path: content},
        sysctls={key: value}, password_login=False (sshd also takes that password, as for Wire's
        offline/99-static with ansible_password),
        setup=[shell commands run as root inside the host before sshd], cpus=None,
        meminfo_kib=None, tmpfs={path: size}, extra_addresses=[cidr],
        fake_cpus=None (stand-in: nproc, /proc/cpuinfo and sysfs report this many CPUs),
        private_dirs=[dir] (copy-on-write overlays: the host sees the runner's content, its own
        writes and locks stay private, e.g. "/var/lib/dpkg" for apt-lock tests),
        session_path=UBUNTU_PATH (PATH of SSH sessions), root_login=False (allow root
        logins with the lab key), max_sessions=100 (sshd's MaxSessions: sessions per connection;
        OpenSSH's default is 10), private_tmp=True (a tmpfs /tmp and /dev/shm of the host's own; the
        runner's /tmp, e.g. pytest's tmp_path, is then not visible inside the host: pass content
        via files=).
        """
        if self._closed:
            raise LabError("lab is closed")
        known = {h.name for h in self.hosts}
        plans: list[tuple[LabHost, str]] = []
        for raw in specs:
            spec = dict(raw)
            name = spec.pop("name")
            if name in known:
                raise ValueError(f"duplicate host name {name!r}")
            known.add(name)
            plans.append(self._plan_host(name, **spec))
        if not plans:
            return []
        hosts = [h for h, _ in plans]
        self.hosts.extend(hosts)  # registered first so close() cleans up a half-built host
        _ip_batch(line for h in hosts for line in (
            f"netns add {h.netns}",
            f"link add {h.veth} type veth peer name eth0 netns {h.netns}",
            f"link set {h.veth} master {self.bridge} up",
        ))
        for host, script in plans:
            host.holder = self._spawn_holder(host, script)
        errors: list[str] = []

        def bring_up(host: LabHost) -> None:
            try:
                self._await_holder(host)
                host._spawn_sshd()
                host.wait_for_sshd(15)
            except LabError as exc:
                errors.append(str(exc))

        if len(hosts) == 1:
            bring_up(hosts[0])
        else:
            with ThreadPoolExecutor(max_workers=min(32, len(hosts))) as pool:
                list(pool.map(bring_up, hosts))
        if errors:
            raise LabError("\n".join(errors))
        with self.known_hosts_path.open("a") as fh:
            for host in hosts:
                fh.write(f"{host.address} {self._host_public_key}\n")
        self._write_ssh_config()
        return hosts

    def _plan_host(self, name: str, *, user: str = "wire", sudo: bool = True, sudo_password: str | None = None,
                   files: Mapping[str, FileContent] | None = None,
                   sysctls: Mapping[str, str | int] | None = None,
                   setup: Sequence[str] = (), cpus: int | None = None, meminfo_kib: int | None = None,
                   fake_cpus: int | None = None, session_path: str = UBUNTU_PATH,
                   private_dirs: Sequence[str] = (),
                   tmpfs: Mapping[str, str] | None = None, extra_addresses: Sequence[str] = (),
                   root_login: bool = False, private_tmp: bool = True, password_login: bool = False,
                   max_sessions: int = 100) -> tuple[LabHost, str]:
        if not _NAME_RE.match(name):
            raise ValueError(f"bad host name {name!r}")
        if not _USER_RE.match(user) or user == "root":
            raise ValueError(f"bad login user {user!r} (a non-root user name)")
        number = self._next_host
        if number > 254:
            raise LabError("a lab holds at most 253 hosts")
        self._next_host += 1
        workdir = self.dir / f"h{number}"
        workdir.mkdir()
        cpu_list = None
        if cpus is not None:
            available = sorted(os.sched_getaffinity(0))
            if not 1 <= cpus <= len(available):
                raise ValueError(f"cpus={cpus}: this machine offers {len(available)} CPUs")
            # rotate so that single-CPU hosts spread over the machine's CPUs
            start = number % len(available)
            cpu_list = ",".join(str(available[(start + i) % len(available)]) for i in range(cpus))
        host = LabHost(
            lab=self, index=number, name=name, address=f"{SUBNET_PREFIX}.{self.index}.{number}", user=user,
            sudo=sudo, netns=f"wcl{self.index}h{number}", veth=f"wcl{self.index}v{number}",
            workdir=workdir, cpu_list=cpu_list, uid=0, extra_addresses=list(extra_addresses),
            sudo_password=sudo_password,
        )
        script = _HostBuilder(self, host, files=files or {}, sysctls=sysctls or {}, setup=setup,
                              meminfo_kib=meminfo_kib, tmpfs=tmpfs or {}, root_login=root_login,
                              fake_cpus=fake_cpus, session_path=session_path, private_dirs=private_dirs,
                              private_tmp=private_tmp, max_sessions=max_sessions,
                              password_login=password_login).script()
        (workdir / "setup.sh").write_text(script)
        return host, script

    def _spawn_holder(self, host: LabHost, script: str) -> subprocess.Popen[bytes]:
        argv = ["ip", "netns", "exec", host.netns]
        if host.cpu_list is not None:
            argv += ["taskset", "-c", host.cpu_list]
        argv += ["unshare", "--mount", "--uts", "--propagation", "private",
                 "sh", str(host.workdir / "setup.sh")]
        log = open(host.workdir / "setup.log", "wb")  # noqa: SIM115 - handed to the child
        try:
            return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        finally:
            log.close()

    def _await_holder(self, host: LabHost, timeout: float = 60.0) -> None:
        assert host.holder is not None and host.holder.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(host.holder.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout):
                raise LabError(f"setup of host {host.name} did not finish within {timeout}s:\n"
                               f"{(host.workdir / 'setup.log').read_text(errors='replace')}")
        finally:
            sel.close()
        line = host.holder.stdout.readline()
        if line.strip() != b"READY":
            host.holder.wait(timeout=5)
            raise LabError(f"setup of host {host.name} failed (exit {host.holder.returncode}):\n"
                           f"{(host.workdir / 'setup.log').read_text(errors='replace')}")

    @property
    def hostspecs(self) -> str:
        """All hosts for testinfra's --hosts (with --ssh-config=<ssh_config_path>)."""
        return ",".join(h.hostspec for h in self.hosts)

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def _write_ssh_config(self) -> None:
        blocks = []
        for h in self.hosts:
            opts = "\n".join(f"    {opt.replace('=', ' ', 1)}" for opt in self.ssh_options)
            blocks.append(f"Host {h.name} {h.address}\n    HostName {h.address}\n    Port {h.port}\n"
                          f"    User {h.user}\n{opts}\n")
        self.ssh_config_path.write_text("\n".join(blocks))

    # -- inventories ---------------------------------------------------------------------------

    def _host_vars(self, h: LabHost) -> dict[str, Any]:
        return {
            "ansible_host": h.address,
            "ansible_port": h.port,
            "ansible_user": h.user,
            "ansible_ssh_private_key_file": str(self.key_path),
            "ansible_ssh_common_args": h.ssh_extra_args,
        }

    def inventory_yaml(self, path: str | os.PathLike[str], vars: Mapping[str, Any] | None = None,
                       *, hosts: Sequence[LabHost] | None = None, group: str = "wiab",
                       host_vars: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
        """Write an Ansible YAML inventory in the demo layout (`wiab: hosts: deploy_node: ...`).

        Inventory host names are the lab host names (name a host "deploy_node" for the demo).
        """
        import yaml

        chosen = list(hosts) if hosts is not None else list(self.hosts)
        entries = {}
        for h in chosen:
            entries[h.name] = {**self._host_vars(h), **dict((host_vars or {}).get(h.name, {}))}
        doc = {group: {"hosts": entries, "vars": dict(vars or {})}}
        out = Path(path)
        out.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
        return out

    def inventory_ini(self, path: str | os.PathLike[str], groups: Mapping[str, Sequence[LabHost | str]] | None = None,
                      vars: Mapping[str, Any] | None = None, *,
                      group_vars: Mapping[str, Mapping[str, Any]] | None = None,
                      hosts: Sequence[LabHost] | None = None,
                      aliases: Mapping[str, LabHost] | None = None) -> Path:
        """Write an Ansible INI inventory in the production layout: hosts with their connection
        variables under [all], then one section per group listing host names, then [all:vars].

        aliases={name: host} adds further inventory names for a host (same address and port: one
        machine under two names); groups may list those names as strings."""
        chosen = list(hosts) if hosts is not None else list(self.hosts)
        lines = ["[all]"]
        named = [(h.name, h) for h in chosen] + list((aliases or {}).items())
        for name, h in named:
            lines.append(name + "".join(f" {k}={_ini_host_value(v)}" for k, v in self._host_vars(h).items()))
        for group, members in (groups or {}).items():
            lines += ["", f"[{group}]"] + [m if isinstance(m, str) else m.name for m in members]
        for group, gvars in (group_vars or {}).items():
            lines += ["", f"[{group}:vars]"] + [f"{k}={_ini_vars_value(v)}" for k, v in gvars.items()]
        if vars:
            lines += ["", "[all:vars]"] + [f"{k}={_ini_vars_value(v)}" for k, v in vars.items()]
        out = Path(path)
        out.write_text("\n".join(lines) + "\n")
        return out

    # -- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _open_labs_lock:
            _open_labs.discard(self)
        errors = []
        for host in self.hosts:
            try:
                host._stop()
            except Exception as exc:  # keep tearing down the rest
                errors.append(f"{host.name}: {exc}")
        if self._lock_fd is not None:
            _remove_index_leftovers(self.index, kill=False)
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                (LOCK_DIR / f"lab{self.index}.json").unlink()
            os.close(self._lock_fd)
            self._lock_fd = None
        elif self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if errors:
            raise LabError("lab teardown: " + "; ".join(errors))

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __hash__(self) -> int:
        return id(self)


def _ini_host_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return shlex.quote(text) if text == "" or re.search(r"[\s'\"#;=\\]", text) else text


def _ini_vars_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value)  # lists/dicts: JSON is a Python literal ansible evaluates


# --------------------------------------------------------------------------------------------
# host setup script


class _HostBuilder:
    """Turns a host spec into the shell script the holder runs inside the host's namespaces.

    The host's file system: copy-on-write overlays over /etc, /var, /usr, /opt, /root and /srv
    (so whatever the host or a setup command writes there, ufw state included, stays in the
    host), tmpfs on /run, /home and /tmp, and bind mounts over files elsewhere (/proc/meminfo ...).
    File overrides under an overlay are written into its upper directory before mounting, which
    costs no mount at all."""

    def __init__(self, lab: Lab, host: LabHost, *, files: Mapping[str, FileContent],
                 fake_cpus: int | None, session_path: str, private_dirs: Sequence[str],
                 sysctls: Mapping[str, str | int], setup: Sequence[str], meminfo_kib: int | None,
                 tmpfs: Mapping[str, str], root_login: bool, private_tmp: bool,
                 max_sessions: int = 100, password_login: bool = False) -> None:
        if password_login and host.sudo_password is None:
            raise ValueError("password_login needs sudo_password= (the login user's password)")
        self.password_login = password_login
        self.lab, self.host = lab, host
        self.max_sessions = max_sessions
        self.files, self.sysctls, self.setup = files, sysctls, setup
        self.meminfo_kib, self.tmpfs, self.root_login = meminfo_kib, tmpfs, root_login
        self.private_tmp = private_tmp
        self.fake_cpus, self.session_path = fake_cpus, session_path
        self.private_dirs = private_dirs
        # stdout is the READY channel: everything else the script and setup commands print goes
        # to stderr (the host's setup.log)
        self.lines: list[str] = ["set -eu", "exec 3>&1 1>&2"]
        self.overlays: list[str] = []
        self.uppers: dict[str, Path] = {}
        self.tmpfs_dirs: list[str] = []
        self.counter = 0

    def _q(self, *args: str) -> str:
        return " ".join(shlex.quote(a) for a in args)

    def _asset(self, content: str | bytes, mode: int = 0o644) -> str:
        self.counter += 1
        path = self.host.workdir / f"f{self.counter}"
        _write(path, content, mode)
        return str(path)

    @staticmethod
    def _under(path: str, roots: Iterable[str]) -> bool:
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def _ensure_creatable(self, path: str) -> None:
        """Make `path` creatable inside the host: fine under a host tmpfs or an overlaid dir,
        otherwise overlay its nearest existing ancestor (so nothing is written to the runner)."""
        if self._under(path, self.tmpfs_dirs) or self._under(path, self.overlays):
            return
        ancestor = os.path.dirname(path)
        while not os.path.isdir(ancestor):
            ancestor = os.path.dirname(ancestor)
        if ancestor in _NO_OVERLAY or ancestor.startswith(("/proc/", "/sys/", "/dev/")):
            raise ValueError(f"{path}: cannot create it in a lab host (nearest existing directory "
                             f"{ancestor} cannot be overlaid); put it under a tmpfs= mount")
        self.overlays.append(ancestor)

    @staticmethod
    def _norm(path: str) -> str:
        """Absolute, normalised, with symlinked parents resolved (/var/run/x is /run/x)."""
        if not path.startswith("/"):
            raise ValueError(f"{path!r}: absolute path required")
        path = os.path.normpath(path)
        return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))

    def _write_upper(self, path: str, content: str | bytes, mode: int | None) -> None:
        """Place a file into the overlay that covers `path` (parents mirror the lower dirs)."""
        root = max((r for r in self.uppers if self._under(path, [r])), key=len)
        upper = self.uppers[root]
        rel = os.path.relpath(path, root)
        target = upper / rel
        lower_dir, upper_dir = root, upper
        for part in Path(rel).parent.parts:
            lower_dir, upper_dir = os.path.join(lower_dir, part), upper_dir / part
            if not upper_dir.exists():
                upper_dir.mkdir()
                if os.path.isdir(lower_dir):  # a merged dir takes its attributes from the upper one
                    st = os.stat(lower_dir)
                    os.chown(upper_dir, st.st_uid, st.st_gid)
                    upper_dir.chmod(st.st_mode & 0o7777)
        lower = os.stat(path) if os.path.isfile(path) else None
        _write(target, content, mode if mode is not None else (lower.st_mode & 0o7777 if lower else 0o644))
        if lower is not None:
            os.chown(target, lower.st_uid, lower.st_gid)

    def script(self) -> str:
        host = self.host
        q = self._q
        files: dict[str, FileContent] = {**self._user_files(), **_fake_cpu_files(self.fake_cpus)}
        files.update({self._norm(p): c for p, c in self.files.items()})
        tmpfs = {self._norm(p): s for p, s in self.tmpfs.items()}
        for path, size in tmpfs.items():
            if not _SIZE_RE.match(str(size)):
                raise ValueError(f"tmpfs {path}: bad size {size!r}")

        # -- network (inside the netns) --
        L = self.lines
        L.append("ip -batch - <<'WCL_IP'\nlink set lo up\n"
                 f"addr add {host.address}/24 dev eth0\nlink set eth0 up\nWCL_IP")
        if host.extra_addresses:
            for cidr in host.extra_addresses:  # they go into an ip batch: refuse anything odd
                if not re.fullmatch(r"[0-9a-fA-F.:]+/[0-9]{1,3}", cidr):
                    raise ValueError(f"extra_addresses: {cidr!r} is not an address/prefix")
            # a dummy device where the kernel has one, else a port-less bridge (equally unrouted)
            L.append("ip link add extra0 type dummy 2>/dev/null || ip link add extra0 type bridge")
            L.append("ip -batch - <<'WCL_IP'\n" + "".join(f"addr add {c} dev extra0\n" for c in host.extra_addresses)
                     + "link set extra0 up\nWCL_IP")
        L.append(f"echo {q(host.name)} > /proc/sys/kernel/hostname")
        # `ip netns exec` mounts a fresh /sys, which hides the cgroup file systems; mount them again
        # as the runner has them (the CPU ones: wirecheck reads CPU quotas and cpusets there)
        L += _cgroup_mount_lines()

        # -- plan: overlays (defaults, private_dirs, ancestors of new paths), tmpfs, files --
        self.tmpfs_dirs = ["/run", "/home"] + (["/tmp", "/dev/shm"] if self.private_tmp else [])
        self.overlays = [d for d in DEFAULT_OVERLAYS if os.path.isdir(d) and not os.path.islink(d)]
        for path in map(self._norm, self.private_dirs):
            if not os.path.isdir(path) or path in _NO_OVERLAY or path.startswith(("/proc/", "/sys/", "/dev/")):
                raise ValueError(f"private_dirs: {path} must be an existing ordinary directory")
            self.overlays.append(path)
        for path in sorted(tmpfs, key=lambda p: p.count("/")):
            if not os.path.isdir(path):
                self._ensure_creatable(path)
            self.tmpfs_dirs.append(path)
        for path in files:
            if not os.path.isfile(path):
                self._ensure_creatable(path)
        overlays = sorted(set(self.overlays), key=lambda p: p.count("/"))
        overlays = [o for o in overlays if not self._under(o, [x for x in overlays if x != o])]
        for number, lower in enumerate(overlays):
            upper, work = host.workdir / f"ov{number}u", host.workdir / f"ov{number}w"
            upper.mkdir()
            work.mkdir()
            st = os.stat(lower)
            os.chown(upper, st.st_uid, st.st_gid)
            upper.chmod(st.st_mode & 0o7777)
            self.uppers[lower] = upper
            L.append("mount -t overlay overlay -o " + q(f"lowerdir={lower},upperdir={upper},workdir={work}")
                     + " " + q(lower))

        # -- file overrides: into an overlay's upper dir, a tmpfs (after mounting), or bind mounted --
        late: list[str] = []
        for path, spec in files.items():
            content, mode = spec if isinstance(spec, tuple) else (spec, None)
            if self._under(path, self.tmpfs_dirs):
                late += ["mkdir -p " + q(os.path.dirname(path)),
                         "cp " + q(self._asset(content, mode if mode is not None else 0o644), path)]
            elif self._under(path, overlays):
                self._write_upper(path, content, mode)
            else:  # an existing file outside the overlays (/proc/cpuinfo, /sys/...)
                late.append("mount --bind " + q(self._asset(content, mode if mode is not None else 0o644), path))

        L += ["mount -t tmpfs -o mode=0755,size=64m tmpfs /run",
              "mkdir -p -m 0755 /run/sshd /run/lock /run/user"]
        for scratch in (["/tmp", "/dev/shm"] if self.private_tmp else []):
            # a private /tmp and /dev/shm like a real machine's; the lab directory (sshd config,
            # host key, overlay dirs) lives in one of the runner's, so carry it over to the same path
            mount = f"mount -t tmpfs -o mode=1777,size=256m,nosuid,nodev tmpfs {scratch}"
            lab_dir = str(self.lab.dir)
            if self._under(lab_dir, [scratch]):
                L += ["mkdir /run/.wcl-lab-dir", "mount --bind " + q(lab_dir, "/run/.wcl-lab-dir"), mount,
                      "mkdir -p " + q(lab_dir), "mount --move " + q("/run/.wcl-lab-dir", lab_dir),
                      "rmdir /run/.wcl-lab-dir"]
            else:
                L.append(mount)
        L.append("mount -t tmpfs -o mode=0755,size=64m tmpfs /home")
        for path in sorted(tmpfs, key=lambda p: p.count("/")):
            L.append("mkdir -p " + q(path))
            L.append("mount -t tmpfs -o " + q(f"mode=0755,size={tmpfs[path]}") + " tmpfs " + q(path))
        # the login user's home, prepared here and copied with owners and modes onto the tmpfs
        skel = host.workdir / "home" / host.user
        (skel / ".ssh").mkdir(parents=True)
        shutil.copyfile(self.lab.authorized_keys_path, skel / ".ssh" / "authorized_keys")
        for path, mode in ((skel, 0o755), (skel / ".ssh", 0o700), (skel / ".ssh" / "authorized_keys", 0o600)):
            os.chown(path, host.uid, host.gid)
            path.chmod(mode)
        L.append("cp -a " + q(str(skel), "/home/"))
        if self.meminfo_kib is not None:
            L.append("mount --bind " + q(self._asset(_meminfo_with_total(int(self.meminfo_kib))), "/proc/meminfo"))
        L += late

        # -- sysctls: namespaced ones are set for real; global ones get a private proc file --
        for key, value in self.sysctls.items():
            proc = _sysctl_path(key)
            text = str(value)
            if proc.startswith("/proc/sys/net/"):
                L.append(f"[ -e {q(proc)} ] || {{ echo {q(f'sysctl {key} is not per network namespace')} >&2; "
                         "exit 3; }")
                L.append(f"printf '%s\\n' {q(text)} > {q(proc)}")
            else:
                L.append("mount --bind " + q(self._asset(text + "\n"), proc))

        # -- sshd config --
        self._sshd_config()

        # -- caller's setup commands, as root inside the host --
        for number, command in enumerate(self.setup, 1):
            L.append(f"sh -c {q(command)} || {{ rc=$?; echo {q(f'setup command {number} failed: {command}')} "
                     "\"(exit $rc)\" >&2; exit $rc; }")
        L += ["echo READY >&3", "exec cat >/dev/null 3>&-"]
        return "\n".join(L) + "\n"

    def _user_files(self) -> dict[str, FileContent]:
        """Private /etc files: the login user, its sudo rights, the host's name."""
        host = self.host
        passwd = Path("/etc/passwd").read_text()
        group = Path("/etc/group").read_text()
        shadow = Path("/etc/shadow").read_text() if os.path.exists("/etc/shadow") else ""
        entries = {f[0]: f for f in (line.split(":") for line in passwd.splitlines()) if len(f) >= 7}
        if host.user in entries:
            host.uid, host.gid = int(entries[host.user][2]), int(entries[host.user][3])
        else:
            used_gids = {int(f[2]) for f in (line.split(":") for line in group.splitlines()) if len(f) >= 3}
            used = {int(f[2]) for f in entries.values()} | used_gids
            uid = 4200
            while uid in used:
                uid += 1
            host.uid = host.gid = uid
            passwd = passwd.rstrip("\n") + f"\n{host.user}:x:{uid}:{uid}:wirecheck lab user:/home/{host.user}:/bin/bash\n"
            group = group.rstrip("\n") + f"\n{host.user}:x:{uid}:\n"
            shadow = shadow.rstrip("\n") + f"\n{host.user}:*:19000:0:99999:7:::\n"
        sudoers = ("Defaults\tenv_reset\nDefaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:"
                   "/usr/sbin:/usr/bin:/sbin:/bin\"\nroot\tALL=(ALL:ALL) ALL\n")
        if host.sudo and host.sudo_password is not None:
            # the user's own password, hashed as passwd would (SHA-512 crypt); sudo asks for it
            hashed = _run(["openssl", "passwd", "-6", "-stdin"], input_text=host.sudo_password + "\n").stdout.strip()
            shadow = "\n".join(f"{host.user}:{hashed}:19000:0:99999:7:::" if line.split(":", 1)[0] == host.user
                               else line for line in shadow.splitlines()) + "\n"
            sudoers += f"{host.user}\tALL=(ALL:ALL) ALL\n"
        elif host.sudo:
            sudoers += f"{host.user}\tALL=(ALL:ALL) NOPASSWD: ALL\n"
        hosts = (f"127.0.0.1\tlocalhost\n127.0.1.1\t{host.name}\n{host.address}\t{host.name}\n"
                 "::1\tlocalhost ip6-localhost ip6-loopback\n")
        # a machine-id of its own: /etc is a copy-on-write overlay of the runner's, so without this every
        # host would carry the runner's machine-id and wirecheck would (rightly) take them for one machine
        machine_id = uuid.uuid4().hex + "\n"
        return {"/etc/passwd": passwd, "/etc/group": group, "/etc/shadow": (shadow, 0o640),
                "/etc/sudoers": (sudoers, 0o440), "/etc/hostname": host.name + "\n", "/etc/hosts": hosts,
                "/etc/machine-id": machine_id}

    def _sshd_config(self) -> None:
        host = self.host
        sftp = next((p for p in SFTP_SERVER_CANDIDATES if os.path.exists(p)), None)
        config = [
            f"ListenAddress {host.address}:{host.port}",
            f"HostKey {self.lab.host_key_path}",
            "PidFile none",
            "UsePAM no",
            f"PasswordAuthentication {'yes' if self.password_login else 'no'}",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "AuthorizedKeysFile .ssh/authorized_keys",
            f"PermitRootLogin {'prohibit-password' if self.root_login else 'no'}",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxStartups 200",
            f"MaxSessions {self.max_sessions}",
            "AcceptEnv LANG LC_*",
            f"SetEnv PATH={self.session_path}",
            "LogLevel INFO",     # one "Accepted publickey" line per login: tests count connections
            # the default post-quantum hybrid KEX costs ~150 ms per login on small test machines
            "KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256",
        ]
        if sftp:
            config.append(f"Subsystem sftp {sftp}")
        if self.root_login:
            # root's real authorized_keys stays untouched: root reads the lab's key file instead
            config += ["Match User root", f"    AuthorizedKeysFile {self.lab.authorized_keys_path}"]
        (host.workdir / "sshd_config").write_text("\n".join(config) + "\n")


# --------------------------------------------------------------------------------------------
# stale labs


def _index_in_use_by_others(index: int) -> bool:
    names = _lab_names()
    return index in names


def _lab_names() -> dict[int, tuple[list[str], list[str]]]:
    """Lab-looking netns and link names, grouped by lab index."""
    found: dict[int, tuple[list[str], list[str]]] = {}
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    for line in netns.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _STALE_NETNS_RE.match(name)
        if m:
            found.setdefault(int(m.group(1)), ([], []))[0].append(name)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=10).stdout
    for line in links.splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        m = _STALE_LINK_RE.match(name)
        if m:
            found.setdefault(int(m.group(1)), ([], []))[1].append(name)
    return found


def _remove_index_leftovers(index: int, *, kill: bool = True) -> None:
    """Remove netns, links and processes of lab `index` (caller holds the index's lock)."""
    names = _lab_names().get(index, ([], []))
    netns, links = names
    if kill:
        for ns in netns:
            _kill_pids(_netns_pids(ns))
    veths = [link for link in links if not link.endswith("br")]
    bridges = [link for link in links if link.endswith("br")]
    lines = [f"link del {link}" for link in veths] + [f"netns del {ns}" for ns in netns]
    lines += [f"link del {link}" for link in bridges]
    if lines:
        _ip_batch(lines, force=True)


def cleanup_stale() -> list[int]:
    """Remove leftovers of labs whose owner is gone (its lock is free): processes in their
    namespaces, the namespaces, veths, bridge and temporary directory. Returns the indices cleaned."""
    if not LOCK_DIR.is_dir():
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
    names = _lab_names()
    indices = set(names)
    for entry in LOCK_DIR.glob("lab*.json"):
        with contextlib.suppress(ValueError):
            indices.add(int(entry.stem[3:]))
    cleaned = []
    for index in sorted(indices):
        fd = os.open(LOCK_DIR / f"lab{index}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live lab owns it
            _remove_index_leftovers(index)
            state_file = LOCK_DIR / f"lab{index}.json"
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
                tmp = json.loads(state_file.read_text())["tmp"]
                if Path(tmp).name.startswith("wirecheck-lab"):
                    shutil.rmtree(tmp, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                state_file.unlink()
            cleaned.append(index)
        finally:
            os.close(fd)
    return cleaned
