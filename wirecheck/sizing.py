"""Sizing decisions in the requirement's own unit: memory in KiB (as /proc/meminfo reports it),
disks in bytes (df -B1), cores as usable CPUs. Numbers are compared exactly (integers and
fractions); rounding happens only in the text shown to people.

Usable CPUs = min(online CPUs, the process's CPU affinity (nproc, which the kernel keeps within
the cgroup's cpuset), the cpusets and the CPU quotas of every cgroup on the process's own path
from /proc/self/cgroup up to the root: cgroup v2 ``cpu.max``, cgroup v1
``cpu.cfs_quota_us / cpu.cfs_period_us``). A quota of 1.5 CPUs is 1.5 cores, not 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

KIB_PER_GIB = 1024**2
BYTES_PER_GIB = 1024**3


# --- memory and disks --------------------------------------------------------------------------------

def gib_in_kib(gib: float | int | str) -> Fraction:
    """GiB -> KiB, exactly (a catalog figure such as 16 or 3.5)."""
    return Fraction(str(gib)) * KIB_PER_GIB


def gib_in_bytes(gib: float | int | str) -> Fraction:
    return Fraction(str(gib)) * BYTES_PER_GIB


def with_allowance(need: Fraction, tolerance_pct: float | int | str) -> Fraction:
    """The floor a measured figure must reach: ``need`` less the catalog's tolerance, exactly."""
    return need * (100 - Fraction(str(tolerance_pct))) / 100


def more_than(observed: int | None, limit: Fraction | int) -> bool:
    """Strictly greater (the docs' "> 16 GiB"); nothing measured is never enough."""
    return observed is not None and observed > limit


def at_least(observed: int | float | Fraction | None, limit: Fraction | int) -> bool:
    return observed is not None and observed >= limit


def gib_text(value: int | Fraction | float, unit_per_gib: int, places: int = 2, up: bool = False) -> str:
    """A figure in KiB or bytes shown in GiB, for messages only. A measured figure is cut, never
    rounded up to a boundary it does not reach (16 GiB less 1 KiB shows as 15.99, not 16.00); a
    floor (``up=True``) is rounded up, so that a figure shown as reaching it does reach it."""
    exact = Fraction(value) / unit_per_gib
    scaled = exact * 10**places
    shown = math.ceil(scaled) if up else math.floor(scaled)
    if not places:
        return f"{shown:,}"
    sign, shown = ("-" if shown < 0 else ""), abs(shown)
    return f"{sign}{shown // 10**places:,}.{shown % 10**places:0{places}d}"


# --- CPUs ----------------------------------------------------------------------------------------------

def cpu_list_count(text: str) -> int | None:
    """Number of CPUs in a kernel CPU list ("0-3,8,10-11"); None when empty or unreadable."""
    total = 0
    text = text.strip()
    if not text:
        return None
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            return None
        total += (int(hi) - int(lo) + 1) if sep else 1
    return total or None


def quota_v2(text: str) -> Fraction | None:
    """cpu.max "<quota> <period>" -> CPUs; "max" (or unreadable) -> None (no limit)."""
    fields = text.split()
    if len(fields) != 2 or not fields[0].isdigit() or not fields[1].isdigit() or int(fields[1]) == 0:
        return None
    return Fraction(int(fields[0]), int(fields[1]))


def quota_v1(quota: str, period: str) -> Fraction | None:
    """cpu.cfs_quota_us / cpu.cfs_period_us -> CPUs; a quota of -1 -> None (no limit)."""
    q, p = quota.strip(), period.strip()
    if not q.isdigit() or not p.isdigit() or int(p) == 0:
        return None
    return Fraction(int(q), int(p))


@dataclass
class Mount:
    root: str        # the mount's root within its hierarchy (mountinfo field 4)
    point: str       # where it is mounted
    version: int     # 1 or 2
    controllers: set[str] = field(default_factory=set)   # v1: from the super options


def parse_cgroup_mounts(mountinfo: str) -> list[Mount]:
    out = []
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        if not sep:
            continue
        f, t = head.split(), tail.split()
        if len(f) < 5 or len(t) < 1 or t[0] not in ("cgroup", "cgroup2"):
            continue
        opts = set(t[2].split(",")) if len(t) > 2 else set()
        out.append(Mount(root=f[3], point=f[4], version=2 if t[0] == "cgroup2" else 1, controllers=opts))
    return out


def cgroup_dirs(proc_self_cgroup: str, mounts: list[Mount]) -> list[tuple[int, str, set[str]]]:
    """The process's own cgroup directories and all their ancestors up to each hierarchy's mount:
    (cgroup version, directory, controllers of that hierarchy), innermost first."""
    out: list[tuple[int, str, set[str]]] = []
    for line in proc_self_cgroup.splitlines():
        hid, sep, rest = line.partition(":")
        ctrls, sep2, path = rest.partition(":")
        if not sep or not sep2:
            continue
        names = set(c for c in ctrls.split(",") if c)
        if hid == "0" and not names:
            chosen = [m for m in mounts if m.version == 2]
        else:
            chosen = [m for m in mounts if m.version == 1 and names & m.controllers]
        for m in chosen:
            rel = path
            if m.root != "/" and (rel == m.root or rel.startswith(m.root.rstrip("/") + "/")):
                rel = rel[len(m.root.rstrip("/")):] or "/"
            parts = [p for p in rel.split("/") if p]
            for depth in range(len(parts), -1, -1):
                d = m.point.rstrip("/") + "".join("/" + p for p in parts[:depth])
                out.append((m.version, d or "/", names if m.version == 1 else {"cpu", "cpuset"}))
    return out


@dataclass
class CpuLimit:
    value: Fraction
    source: str        # what set it, for the method text


def usable_cpus(affinity: int, online: int | None, proc_self_cgroup: str, mountinfo: str,
                files: dict[str, str]) -> tuple[Fraction, list[CpuLimit], str | None]:
    """min(online, affinity, cpusets, quotas) along the process's cgroup path.

    ``files`` maps cgroup file paths to their contents (what the target printed). Returns the
    usable CPUs, every limit found, and a problem when the cgroup path could not be followed."""
    limits = [CpuLimit(Fraction(affinity), "nproc (CPU affinity)")]
    if online is not None:
        limits.append(CpuLimit(Fraction(online), "/sys/devices/system/cpu/online"))
    problem = None
    mounts = parse_cgroup_mounts(mountinfo)
    if proc_self_cgroup.strip() and not mounts:
        problem = "/proc/self/cgroup names cgroups but no cgroup file system is mounted"
    for version, d, ctrls in cgroup_dirs(proc_self_cgroup, mounts):
        if version == 2:
            q = quota_v2(files.get(f"{d}/cpu.max", ""))
            if q is not None:
                limits.append(CpuLimit(q, f"{d}/cpu.max {files[f'{d}/cpu.max'].strip()}"))
            n = cpu_list_count(files.get(f"{d}/cpuset.cpus.effective", ""))
            if n is not None:
                limits.append(CpuLimit(Fraction(n), f"{d}/cpuset.cpus.effective"))
            continue
        if "cpu" in ctrls:
            q = quota_v1(files.get(f"{d}/cpu.cfs_quota_us", ""), files.get(f"{d}/cpu.cfs_period_us", ""))
            if q is not None:
                limits.append(CpuLimit(q, f"{d}/cpu.cfs_quota_us {files[f'{d}/cpu.cfs_quota_us'].strip()} / "
                                          f"cpu.cfs_period_us {files[f'{d}/cpu.cfs_period_us'].strip()}"))
        if "cpuset" in ctrls:
            n = cpu_list_count(files.get(f"{d}/cpuset.effective_cpus", ""))
            if n is not None:
                limits.append(CpuLimit(Fraction(n), f"{d}/cpuset.effective_cpus"))
    return min(lim.value for lim in limits), limits, problem


def cpus_number(value: Fraction) -> int | float:
    """A CPU figure for evidence and comparison: whole numbers stay integers."""
    return int(value) if value.denominator == 1 else float(value)


#: `cat FILE` for text files with shell builtins only (no process): the facts scripts read small
#: files under /proc and /sys with it (a line without its newline at the end gets one).  Not for
#: /proc/sys numbers: the shell reads a byte per system call, and the kernel's sysctl handlers
#: answer a read past offset 0 with nothing ("65530" reads as "6")
CAT_FN = "wc_cat() { while IFS= read -r wc_l || [ -n \"$wc_l\" ]; do printf '%s\\n' \"$wc_l\"; done < \"$1\"; }; "

#: the part of a shell script that prints what usable_cpus() reads (sections @online, @cgroup,
#: @mountinfo, @cgfiles; nproc first)
CPU_SCRIPT = (
    # two processes (nproc, one grep of mountinfo, which can be long: the shell's read takes a byte
    # per system call); the rest is shell builtins: read, case, test, printf, set, for
    CAT_FN +
    "nproc; echo @online; wc_cat /sys/devices/system/cpu/online 2>/dev/null; "
    "echo @cgroup; wc_cat /proc/self/cgroup 2>/dev/null; "
    "echo @mountinfo; wc_m=$(grep -E ' - cgroup2? ' /proc/self/mountinfo 2>/dev/null); "
    "[ -n \"$wc_m\" ] && printf '%s\\n' \"$wc_m\"; "
    # each cgroup mount: its root and mount point (fields 4 and 5), its super options (the last field)
    "echo @cgfiles; wc_ifs=$IFS; set -f; IFS='\n'; for wc_line in $wc_m; do IFS=$wc_ifs; set -- $wc_line; "
    "root=$4; mnt=$5; o=\",${wc_line##* },\"; case \"$wc_line\" in *' - cgroup2 '*) ;; *) case \"$o\" in "
    "*,cpu,*|*,cpuset,*) ;; *) continue;; esac;; esac; "
    "while IFS= read -r p; do p=${p#*:}; p=${p#*:}; "
    "[ \"$root\" != / ] && case \"$p\" in \"$root\"|\"$root\"/*) p=${p#\"$root\"};; esac; "
    "d=$mnt${p%/}; while :; do "
    "for f in cpu.max cpu.cfs_quota_us cpu.cfs_period_us cpuset.cpus.effective cpuset.effective_cpus; do "
    "if [ -r \"$d/$f\" ]; then v=; read -r v < \"$d/$f\"; printf '%s\\t%s\\n' \"$d/$f\" \"$v\"; fi; done; "
    "[ \"$d\" = \"$mnt\" ] && break; d=${d%/*}; case \"$d\" in \"$mnt\"|\"$mnt\"/*) ;; *) break;; esac; "
    "done; done < /proc/self/cgroup; done; IFS=$wc_ifs; set +f; echo @cpuend; "
)


def parse_cpu_output(text: str) -> tuple[int, int | None, str, str, dict[str, str]]:
    """CPU_SCRIPT's output -> (nproc, online CPUs, /proc/self/cgroup, cgroup mountinfo lines, files)."""
    sections: dict[str, list[str]] = {"nproc": []}
    name = "nproc"
    for line in text.split("\n"):
        if line in ("@online", "@cgroup", "@mountinfo", "@cgfiles", "@cpuend"):
            name = line[1:]
            sections[name] = []
        else:
            sections.setdefault(name, []).append(line)
    first = [ln.strip() for ln in sections["nproc"] if ln.strip()]
    if not first or not first[0].isdigit():
        raise ValueError(f"nproc printed {first[0] if first else 'nothing'!r}")
    files = {}
    for line in sections.get("cgfiles", []):
        path, sep, content = line.partition("\t")
        if sep:
            files[path] = content
    return (int(first[0]), cpu_list_count("\n".join(sections.get("online", []))),
            "\n".join(sections.get("cgroup", [])), "\n".join(sections.get("mountinfo", [])), files)


def cpu_method(limits: list[CpuLimit], value: Fraction) -> str:
    """The method text: nproc, and the limit that decided when it is not nproc itself."""
    deciding = next(lim for lim in limits if lim.value == value)
    return "nproc" if deciding is limits[0] else f"nproc, {deciding.source}"
