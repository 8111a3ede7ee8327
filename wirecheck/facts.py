"""Facts about a target, measured on demand and cached per target (one SSH connection)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass
from typing import Any, Protocol

from .firewall import View
from .host_parsers import SAVES, SAVES_SCRIPT, parse_meminfo, parse_os_release, view_from_parts
from .host_script import (
    SNAPSHOT_SYSCTLS,
    WHICH_PRIMED,
    identity_script,
    parse_df_section,
    snapshot_script,
    sysctl_path,
)
from .outcome import CannotMeasure
from .sizing import CPU_SCRIPT, cpu_method, cpus_number, parse_cpu_output, usable_cpus
from .transport import file_lock, shared_dir


class Measurable(Protocol):
    """What Facts needs of a target (wirecheck.targets.Target is one; facts does not import targets)."""

    name: str
    user: str | None
    transport: Any

    def run(self, command: str, timeout: float | None = None, sudo: bool = False,
            stdin: bytes | None = None) -> Any: ...

    def read_file(self, path: str, timeout: float | None = None, sudo: bool = False) -> str | None: ...


@dataclass
class Measured:
    value: Any
    method: str
    detail: dict[str, Any] | None = None   # what else was read, for the evidence


@dataclass
class DiskUsage:
    path: str            # the path asked about
    mount: str           # where the filesystem holding it is mounted
    source: str
    fstype: str
    size: int
    avail: int


IDENTITY_FIELDS = ("hostname", "hosts_entry", "machine_id", "product_uuid", "boot_id")


# --- commands several facts run, built in one place: the suites register them (coordination.
# register_commands) so that they go in the host's one batch before the port probe holds the host ---

def sysctl_persisted_command(name: str) -> str:
    """grep of the sysctl configuration files for the lines that set name (Facts.sysctl_persisted)."""
    pat = shlex.quote(r"^\s*" + name.replace(".", "[./]") + r"\s*=")
    return (f"grep -HnE {pat} /etc/sysctl.conf /etc/sysctl.d/*.conf /run/sysctl.d/*.conf "
            "/usr/lib/sysctl.d/*.conf /lib/sysctl.d/*.conf 2>/dev/null; echo \"@@rc=$?\"")


def passwd_command(user: str) -> str:
    """The account entry of user (Facts.passwd_entry)."""
    return f"getent passwd -- {shlex.quote(user)}"


def firewall_snapshot_command() -> str:
    """ufw, iptables (filter and nat), the nft ruleset and the saved rule files in one privileged
    command (Facts.firewall_snapshot)."""
    return ("s() { printf '\\n@@%s\\n' \"$1\"; }; "
            "s ufw; if command -v ufw >/dev/null; then ufw status verbose || echo '@@fail'; else echo '@@absent'; fi; "
            "s iptables; if command -v iptables >/dev/null; then { iptables -S && echo '#nat' && "
            "iptables -t nat -S; } || echo '@@fail'; else echo '@@absent'; fi; "
            "s nft; if command -v nft >/dev/null; then nft -j list ruleset 2>&1 || echo '@@fail'; else echo '@@absent'; fi; "
            + SAVES_SCRIPT +
            "s end")


class Facts:
    def __init__(self, target: Measurable):
        self.t = target
        self._cache: dict[str, Any] = {}

    def _cached(self, key: str, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def _run(self, cmd: str, sudo: bool = False, timeout: float | None = None):
        return self.t.run(cmd, sudo=sudo, timeout=timeout)

    def _shared_output(self, cmd: str, what: str) -> str:
        """_need(cmd), measured once per run: with processes sharing a run directory (pytest-xdist), the
        first to need it runs it and leaves its output there; the others read that.  A failure is not
        kept: each process then tries for itself and reports what it sees."""
        store = shared_dir()
        if store is None:
            return self._need(cmd, what)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.t.name)[:80]
        path = os.path.join(store, f"{name}.{hashlib.sha256(cmd.encode()).hexdigest()[:16]}.out")
        with file_lock(path + ".lock"):
            try:
                with open(path, encoding="utf-8") as fh:
                    return fh.read()
            except FileNotFoundError:
                pass
            out = self._need(cmd, what)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(out)
            os.replace(tmp, path)
            return out

    def _need(self, cmd: str, what: str, sudo: bool = False) -> str:
        """stdout of a command that must succeed and print something (else CannotMeasure, saying why)."""
        res = self._run(cmd, sudo=sudo)
        if res.rc != 0:
            err = (res.stderr.strip().splitlines() or [f"exit {res.rc}"])[-1]
            raise CannotMeasure(f"{what}: `{cmd}` failed on {self.t.name} (exit {res.rc}): {err}")
        if not res.stdout.strip():
            raise CannotMeasure(f"{what}: `{cmd}` printed nothing on {self.t.name}")
        return res.stdout

    # --- system ---------------------------------------------------------------------------
    def os_release(self) -> dict[str, str]:
        def get():
            text = self.t.read_file("/etc/os-release")
            if text is None:
                text = self.t.read_file("/usr/lib/os-release")
            if text is None:
                raise CannotMeasure(f"neither /etc/os-release nor /usr/lib/os-release exists on {self.t.name}")
            osr = parse_os_release(text)
            if not osr.get("ID"):
                raise CannotMeasure(f"os-release on {self.t.name} has no ID= line: {text.strip()[:120]!r}")
            return osr
        return self._cached("os_release", get)

    def architecture(self) -> Measured:
        def get():
            res = self._run("dpkg --print-architecture 2>/dev/null")
            if res.rc == 0 and re.fullmatch(r"[a-z0-9_-]+", res.stdout.strip()):
                return Measured(res.stdout.strip(), "dpkg --print-architecture")
            out = self._need("uname -m", "architecture").strip()
            if not re.fullmatch(r"[a-z0-9_-]+", out):
                raise CannotMeasure(f"architecture: `uname -m` on {self.t.name} printed {out[:80]!r}")
            return Measured({"x86_64": "amd64", "aarch64": "arm64"}.get(out, out), f"uname -m ({out})")
        return self._cached("arch", get)

    def cpu_cores(self) -> Measured:
        """Usable CPUs: min(online, affinity (nproc), cgroup cpusets and CPU quotas along the process's
        own cgroup path, v1 and v2); see wirecheck.sizing."""
        def get():
            return self._cpus(self._need(CPU_SCRIPT, "CPU cores"))
        return self._cached("cpu", get)

    def _cpus(self, out: str) -> Measured:
        try:
            affinity, online, own, mounts, files = parse_cpu_output(out)
        except ValueError as exc:
            raise CannotMeasure(f"CPU cores on {self.t.name}: {exc}") from None
        value, limits, problem = usable_cpus(affinity, online, own, mounts, files)
        if problem:
            raise CannotMeasure(f"CPU quota on {self.t.name} cannot be read: {problem}")
        return Measured(cpus_number(value), cpu_method(limits, value),
                        {"limits": {lim.source: cpus_number(lim.value) for lim in limits},
                         "cgroup": own.strip().splitlines()})

    def meminfo(self) -> dict[str, int]:
        def get():
            text = self.t.read_file("/proc/meminfo")
            if text is None:
                raise CannotMeasure(f"/proc/meminfo does not exist on {self.t.name}")
            info = parse_meminfo(text)
            if "MemTotal" not in info:
                raise CannotMeasure(f"/proc/meminfo on {self.t.name} has no MemTotal line: {text.strip()[:120]!r}")
            return info
        return self._cached("meminfo", get)

    def disk(self, path: str) -> DiskUsage:
        """The filesystem holding path (or its nearest existing parent)."""
        def get():
            q = shlex.quote(path)
            out = self._need(
                f"p={q}; while [ ! -e \"$p\" ] && [ \"$p\" != / ]; do p=$(dirname -- \"$p\"); done; "
                f"df -B1 --output=source,fstype,size,avail,target -- \"$p\" | tail -n 1", f"disk of {path}")
            fields = out.split()
            if len(fields) < 5 or not fields[2].isdigit() or not fields[3].isdigit():
                raise CannotMeasure(f"unexpected df output for {path} on {self.t.name}: {out.strip()[:120]!r}")
            return DiskUsage(path=path, source=fields[0], fstype=fields[1], size=int(fields[2]),
                             avail=int(fields[3]), mount=" ".join(fields[4:]))
        return self._cached(f"disk:{path}", get)

    def sysctl(self, name: str) -> str | None:
        """The kernel setting's value; None when the kernel has no such setting (its /proc/sys file
        does not exist, e.g. a module not loaded). Unreadable or empty: CannotMeasure."""
        def get():
            path = "/proc/sys/" + name.replace(".", "/")
            text = self.t.read_file(path)
            if text is None:
                return None
            if not text.strip():
                raise CannotMeasure(f"reading {path} on {self.t.name} printed nothing")
            return " ".join(text.split())
        return self._cached(f"sysctl:{name}", get)

    def sysctl_ints(self, name: str) -> list[int] | None:
        """A numeric kernel setting as numbers (one or several, as ip_local_port_range has); None when
        the setting does not exist; CannotMeasure when it is unreadable or not numbers."""
        value = self.sysctl(name)
        if value is None:
            return None
        try:
            return [int(v) for v in value.split()]
        except ValueError:
            raise CannotMeasure(f"{name} on {self.t.name} is not a number: {value[:80]!r}") from None

    def sysctl_persisted(self, name: str) -> list[str]:
        """Lines in sysctl configuration files that set name (file:line: text)."""
        def get():
            res = self._run(sysctl_persisted_command(name))
            lines = [line.strip() for line in res.stdout.splitlines() if line.strip()]
            # grep: 0 found, 1 nothing found, 2 some file unreadable (a glob that matched nothing)
            if res.rc != 0 or not lines or not re.fullmatch(r"@@rc=[012]", lines[-1]):
                raise CannotMeasure(f"cannot search the sysctl configuration files on {self.t.name}: "
                                    f"{(res.stderr.strip().splitlines() or [f'exit {res.rc}'])[-1]}")
            return [line for line in lines[:-1] if re.match(r"^/[^:]+:\d+:", line)]
        return self._cached(f"sysctlp:{name}", get)

    def passwd_entry(self, user: str) -> list[str] | None:
        def get():
            res = self._run(passwd_command(user))
            if res.rc == 2 and not res.stderr.strip():       # getent: key not found
                return None
            fields = res.stdout.strip().split(":")
            if res.rc != 0 or len(fields) != 7 or fields[0] != user or not fields[2].isdigit():
                err = (res.stderr.strip().splitlines() or [repr(res.stdout.strip()[:80]) or f"exit {res.rc}"])[-1]
                raise CannotMeasure(f"`getent passwd {user}` on {self.t.name} gave no account entry "
                                    f"(exit {res.rc}): {err}")
            return fields
        return self._cached(f"passwd:{user}", get)

    def whoami(self) -> str:
        return self._cached("whoami", lambda: self._need("id -un", "login user").strip())

    def which(self, program: str) -> str | None:
        """Where program is; None when the shell says it is not there (command -v: silent, exit 1 in
        bash, 127 in dash); anything else (a message, other output) is CannotMeasure."""
        def get():
            res = self._run(f"command -v -- {shlex.quote(program)}")
            out = res.stdout.strip()
            if res.rc in (1, 127) and not out and not res.stderr.strip():
                return None
            if res.rc == 0 and out and "\n" not in out and (out.startswith("/") or out == program):
                return out
            err = (res.stderr.strip().splitlines() or [repr(out[:80]) if out else "no output"])[-1]
            raise CannotMeasure(f"cannot tell whether {program} is installed on {self.t.name}: "
                                f"`command -v {program}` (exit {res.rc}): {err}")
        return self._cached(f"which:{program}", get)

    def sudo_ok(self) -> Measured:
        """Whether the login user gets root: `id -u` run as root (through `sudo -n` unless the login
        user is root) must print 0. A refusal by sudo is a measured no; anything else (no answer,
        no output, other output) is CannotMeasure, even for a root login that never answered."""
        def get():
            root = self.t.transport.is_root
            how = "id -u" if root else self.sudo_how("id -u")
            res = self._run("id -u", sudo=True, timeout=15)
            out, err = res.stdout.strip(), res.stderr.strip()
            if res.rc == 0 and out == "0":
                return Measured(True, how)
            if res.rc == 0:
                raise CannotMeasure(f"`{how}` on {self.t.name} printed {out[:80]!r}, not a user ID"
                                    if out else f"`{how}` on {self.t.name} printed nothing")
            last = (err.splitlines() or [f"exit {res.rc}"])[-1][:200]
            if not root and (res.rc == 127 and "sudo" in err or re.search(
                    r"password is required|not in the sudoers|may not run sudo|not allowed to execute", err)):
                return Measured(False, f"{how}: {last}")
            raise CannotMeasure(f"cannot tell whether {self.t.user or 'the login user'} gets root on {self.t.name}: "
                                f"`{how}` exited {res.rc}: {last}")
        return self._cached("sudo", get)

    # --- network --------------------------------------------------------------------------
    def ip_json(self, what: str) -> list[dict[str, Any]]:
        routes = self._cache.get("ip:route")
        if what == "-4 route show default" and isinstance(routes, list):
            # the snapshot's `ip -j route` is the IPv4 main table: its default routes are what this prints
            return [r for r in routes if r.get("dst") == "default"]

        def get():
            out = self._need(f"ip -j {what}", f"ip {what}")
            try:
                data = json.loads(out)
            except json.JSONDecodeError:
                data = None
            if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
                raise CannotMeasure(f"`ip -j {what}` on {self.t.name} printed no JSON list: {out.strip()[:80]!r}")
            return data
        return self._cached(f"ip:{what}", get)

    def nameservers(self) -> list[str]:
        def get():
            text = self.t.read_file("/etc/resolv.conf") or ""
            return [ln.split()[1] for ln in text.splitlines() if ln.startswith("nameserver") and len(ln.split()) > 1]
        return self._cached("resolv", get)

    def sudo_how(self, cmd: str) -> str:
        """How cmd runs as root, as a reader would type it: `sudo -n cmd`, or `sudo -S cmd` with the
        inventory's become password (named by its variable, never shown)."""
        t = self.t.transport
        if getattr(t, "sudo_with_password", False):
            return f"sudo -S {cmd} (password from {t.become_var})"
        return f"sudo -n {cmd}"

    def privileged(self, cmd: str, what: str) -> tuple[Any, str]:
        """Run a command that needs root; say so when it could not run."""
        res = self._run(cmd, sudo=True)
        if res.rc != 0:
            err = (res.stderr.strip().splitlines() or ["no message"])[-1]
            if self.t.transport.is_root:     # nothing to do with sudo: say what failed
                raise CannotMeasure(f"{what}: `{cmd}` failed on {self.t.name} as root (exit {res.rc}): {err}")
            how = self.sudo_how("").split(" (")[0].strip()
            if re.search(r"^sudo: |password is required|not in the sudoers|may not run sudo", err):
                raise CannotMeasure(f"{what}: `{cmd}` needs root and {how} refused on {self.t.name}: {err}")
            raise CannotMeasure(f"{what}: `{cmd}` failed on {self.t.name} with {how} (exit {res.rc}): {err}")
        return res.stdout, cmd

    def firewall_snapshot(self) -> None:
        """ufw status, iptables -S (filter and nat) and the nft ruleset in one privileged command; fills
        the caches of ufw_status(), iptables_rules() and nft_ruleset(). Where this cannot run (no sudo)
        or one tool fails, those facts are measured one by one and report their own errors."""
        if "fwsnap" in self._cache:
            return
        self._cache["fwsnap"] = True
        res = self._run(firewall_snapshot_command(), sudo=True)
        if res.rc != 0 or "\n@@end" not in res.stdout:
            return
        parts: dict[str, str] = {}
        name = None
        for line in res.stdout.split("\n"):
            if line.startswith("@@") and line[2:].strip() in ("ufw", "iptables", "nft", "nftchains", "end", *SAVES):
                name = line[2:].strip()
                parts[name] = ""
            elif name is not None:
                parts[name] += line + "\n"

        def state(text: str) -> str | None:
            lines = [ln for ln in text.splitlines() if ln.strip()]
            if lines and lines[-1] in ("@@absent", "@@fail"):
                return lines[-1][2:]
            return None
        ufw = parts.get("ufw", "")
        if state(ufw) == "absent":
            self._cache["ufw"] = (None, "ufw not installed")
        elif state(ufw) is None:
            self._cache["ufw"] = (ufw, "ufw status verbose")
        ipt = parts.get("iptables", "")
        if state(ipt) == "absent":
            self._cache["rules:iptables"] = (None, "iptables not installed")
        elif state(ipt) is None:
            self._cache["rules:iptables"] = (ipt, "iptables -S")
        view = view_from_parts(parts, self.t.name)
        self._cache["netfilter"] = view
        if state(parts.get("nft", "")) == "absent":
            self._cache["nft"] = (None, "nft not installed")
        elif view.nft is not None:
            self._cache["nft"] = (view.nft, "nft -j list ruleset")

    def netfilter_view(self) -> View:
        """The packet filter as the kernel holds it: ``nft -j list ruleset`` plus iptables-nft-save,
        ip6tables-nft-save, iptables-legacy-save and ip6tables-legacy-save where installed (one
        privileged command, shared with firewall_snapshot()).  Raises CannotMeasure when the command
        cannot run at all (no root); a tool that fails is recorded in the view with its error."""
        def get():
            script = ("s() { printf '\\n@@%s\\n' \"$1\"; }; "
                      "s nft; if command -v nft >/dev/null; then nft -j list ruleset 2>&1 || echo '@@fail'; "
                      "else echo '@@absent'; fi; " + SAVES_SCRIPT + "s end")
            out, _ = self.privileged(script, "packet filter rules")
            parts: dict[str, str] = {}
            name = None
            for line in out.split("\n"):
                if line.startswith("@@") and line[2:].strip() in ("nft", "nftchains", "end", *SAVES):
                    name = line[2:].strip()
                    parts[name] = ""
                elif name is not None:
                    parts[name] += line + "\n"
            if "end" not in parts:
                raise CannotMeasure(f"reading the packet filter on {self.t.name} ended early")
            return view_from_parts(parts, self.t.name)
        return self._cached("netfilter", get)

    def iptables_rules(self, family: str = "iptables") -> tuple[str | None, str]:
        def get():
            if not self.which(family):
                return None, f"{family} not installed"
            out, cmd = self.privileged(f"{family} -S && echo '#nat' && {family} -t nat -S", f"{family} rules")
            return out, f"{family} -S"
        return self._cached(f"rules:{family}", get)

    def nft_ruleset(self) -> tuple[dict | None, str]:
        def get():
            if not self.which("nft"):
                return None, "nft not installed"
            out, _ = self.privileged("nft -j list ruleset", "nftables ruleset")
            try:
                return json.loads(out or "{}"), "nft -j list ruleset"
            except json.JSONDecodeError:
                raise CannotMeasure(f"`nft -j list ruleset` on {self.t.name} printed no JSON") from None
        return self._cached("nft", get)

    def ufw_status(self) -> tuple[str | None, str]:
        def get():
            if not self.which("ufw"):
                return None, "ufw not installed"
            out, _ = self.privileged("ufw status verbose", "ufw status")
            return out, "ufw status verbose"
        return self._cached("ufw", get)

    def service_active(self, unit: str) -> bool | None:
        def get():
            if not self.which("systemctl"):
                return None
            res = self._run(f"systemctl is-active -- {shlex.quote(unit)}")
            state = res.stdout.strip()
            if not state and re.search(r"Failed to connect to bus|not been booted with systemd", res.stderr):
                return None      # no systemd running (a container): no unit of it can be active
            if state not in ("active", "inactive", "failed", "activating", "deactivating", "reloading",
                             "unknown", "maintenance", "refreshing"):
                err = (res.stderr.strip().splitlines() or [repr(state[:80]) if state else "no output"])[-1]
                raise CannotMeasure(f"`systemctl is-active {unit}` on {self.t.name} (exit {res.rc}): {err}")
            return state in ("active", "activating", "reloading", "refreshing")
        return self._cached(f"svc:{unit}", get)

    # --- production hosts: one round trip for what the sizing and network checks read -----------
    def host_snapshot(self, disk_paths: tuple[str, ...] = ()) -> dict[str, Any]:
        """os-release, cores, memory, hostname, machine-id, addresses, routes, swaps, modules, a few
        sysctls, gpg, architecture and the filesystems holding disk_paths, in one SSH command.

        Fills the caches of os_release(), cpu_cores(), meminfo(), architecture(), ip_json("addr"),
        ip_json("route") and disk(path), so checks that ask for those later cost nothing.  A snapshot
        already taken that covers disk_paths answers; under pytest-xdist the first process of the run
        to take a host's snapshot leaves its output for the others (``transport.shared_dir``)."""
        paths = tuple(sorted(set(disk_paths)))
        for key, snap in self._cache.items():
            if key.startswith("snapshot:") and set(paths) <= set(snap["paths"]):
                return snap

        def get():
            script = snapshot_script(paths)
            out = self._shared_output(script, "host snapshot")
            parts: dict[str, str] = {}
            name = None
            for line in out.split("\n"):
                if line.startswith("@@"):
                    name = line[2:].strip()
                    parts[name] = ""
                elif name is not None:
                    parts[name] += line + "\n"
            if "end" not in parts:
                raise CannotMeasure(f"host snapshot on {self.t.name} ended early")
            snap: dict[str, Any] = {"raw": parts, "paths": paths}
            snap["os_release"] = parse_os_release(parts.get("os", ""))
            try:
                snap["cpu"] = self._cpus(parts.get("nproc", ""))
            except CannotMeasure as exc:     # only the checks that read the cores end in error
                snap["cpu"] = exc
            snap["meminfo"] = parse_meminfo(parts.get("meminfo", ""))
            names = parts.get("hostname", "").strip().splitlines()
            snap["hostname"] = names[0].strip() if names else ""
            snap["hosts_entry"] = parts.get("hosts", "").strip()
            snap["machine_id"] = parts.get("machineid", "").strip()
            snap["boot_id"] = parts.get("bootid", "").strip()
            snap["product_uuid"] = parts.get("uuid", "").strip()
            for key in ("addr", "route"):
                try:
                    snap[key] = json.loads(parts.get(key, "").strip() or "[]")
                except json.JSONDecodeError:
                    raise CannotMeasure(f"`ip -j {key}` on {self.t.name} printed no JSON") from None
            snap["ip_missing"] = not parts.get("addr", "").strip()
            snap["swaps"] = [ln.split() for ln in parts.get("swaps", "").strip().splitlines()[1:] if ln.strip()]
            snap["modules"] = set(parts.get("modules", "").split())
            names = {sysctl_path(k): k for k in SNAPSHOT_SYSCTLS}
            snap["sysctl"] = {}
            for line in parts.get("sysctl", "").splitlines():     # grep -H: the file, a colon, its line
                path, sep, value = line.partition(":")
                if sep and path in names:
                    snap["sysctl"].setdefault(names[path], value)
            snap["gpg"] = parts.get("gpg", "").strip() or None
            arch = parts.get("arch", "").strip()
            snap["arch"] = Measured({"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch),
                                    "dpkg --print-architecture (uname -m without dpkg)")
            snap["netplan"] = parts.get("netplan", "").strip().splitlines()
            disks: dict[str, DiskUsage] = {}
            for path, (source, fstype, size, avail, mount) in parse_df_section(parts.get("df", "")).items():
                disks[path] = DiskUsage(path=path, source=source, fstype=fstype, size=size, avail=avail, mount=mount)
            snap["disks"] = disks
            self._cache.setdefault("os_release", snap["os_release"])
            if isinstance(snap["cpu"], Measured):
                self._cache.setdefault("cpu", snap["cpu"])
            self._cache.setdefault("meminfo", snap["meminfo"])
            self._cache.setdefault("arch", snap["arch"])
            for key in ("addr", "route"):
                if parts.get(key, "").strip():    # `ip` printed its JSON (an empty table is "[]"); no
                    self._cache.setdefault(f"ip:{key}", snap[key])   # output: ip_json asks itself
            for p, du in disks.items():
                self._cache.setdefault(f"disk:{p}", du)
            for k, v in snap["sysctl"].items():
                self._cache.setdefault(f"sysctl:{k}", " ".join(v.split()))
            if "which" in parts:
                for line in parts["which"].splitlines():
                    prog, sep, path = line.partition("=")
                    if sep and prog in WHICH_PRIMED:
                        self._cache.setdefault(f"which:{prog}", path.strip() or None)
            return snap
        return self._cached(f"snapshot:{','.join(paths)}", get)

    def identity(self) -> dict[str, str]:
        """hostname, its /etc/hosts or DNS entry, machine-id and DMI product_uuid: from a host snapshot
        already taken, else one light command (fleet checks ask every host for these)."""
        for key, snap in list(self._cache.items()):
            if key.startswith("snapshot:"):
                return {k: snap[k] for k in IDENTITY_FIELDS}

        def get():
            mark = "@@wirecheck-id@@"
            out = self._shared_output(identity_script(mark), "host identity")
            parts = [p.strip() for p in out.split(mark)]
            if len(parts) != len(IDENTITY_FIELDS) + 1 or not re.fullmatch(r"[A-Za-z0-9_.-]+", parts[0]):
                raise CannotMeasure(f"host identity: `hostname; getent hosts …` on {self.t.name} printed "
                                    f"no host name: {out.strip()[:80]!r}")
            return dict(zip(IDENTITY_FIELDS, parts[:len(IDENTITY_FIELDS)], strict=True))
        return self._cached("identity", get)
