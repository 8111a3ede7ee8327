"""The host snapshot's one command (Facts.host_snapshot): what it runs on the target, built here;
Facts reads its output.  Few processes: shell builtins wherever the output stays what the tools
print (a cat, hostname, dirname, tail or head per item was most of the snapshot's CPU on the host).
"""

from __future__ import annotations

import shlex

from .sizing import CAT_FN, CPU_SCRIPT

#: programs whose location the host snapshot looks up at once (facts.which() then costs nothing)
WHICH_PRIMED = ("ufw", "iptables", "nft", "systemctl", "curl", "chronyc", "timedatectl", "fuser", "lsof",
                "python3", "docker", "minikube", "gpg", "nc", "sshd")

#: the kernel settings the host snapshot reads
SNAPSHOT_SYSCTLS = ("vm.max_map_count", "fs.nr_open", "fs.file-max", "net.ipv4.ip_forward",
                    "net.bridge.bridge-nf-call-iptables", "vm.swappiness", "net.ipv4.ip_local_port_range",
                    "fs.inotify.max_user_instances", "fs.inotify.max_user_watches",
                    "net.ipv4.ip_unprivileged_port_start")

#: the host name without a process (what hostname(1) prints: the kernel's, /proc has it too)
HOSTNAME = "h=; read -r h </proc/sys/kernel/hostname 2>/dev/null || h=$(hostname); "


def sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def dirname(path: str) -> str:
    """coreutils' dirname(1): the path without its last component and trailing slashes."""
    if path == "":
        return "."
    stripped = path.rstrip("/")
    if not stripped:
        return "/"
    cut = stripped.rfind("/")
    if cut < 0:
        return "."
    return stripped[:cut].rstrip("/") or "/"


def parents(path: str) -> list[str]:
    """path, its dirname, theirs... up to / (or ., which always exists): where the host snapshot
    looks for the nearest existing directory (what `while [ ! -e "$p" ]; do p=$(dirname "$p")`
    finds, without a process per step)."""
    chain = [path]
    while chain[-1] != "/" and dirname(chain[-1]) != chain[-1]:
        chain.append(dirname(chain[-1]))
    return chain


def snapshot_script(paths: tuple[str, ...]) -> str:
    """Facts.host_snapshot's one command.  Shell builtins wherever the output stays what the tools
    print (small files read with wc_cat, the host name from /proc, program locations with `command
    -v`, the nearest existing parent of a path); processes only for what only they can tell: nproc,
    grep (the cgroup mounts; the kernel settings, all in one), getent, ip, gpg, dpkg, grep of the
    netplan files (when there are any), df."""
    q = shlex.quote
    # one df for every path (the nearest existing parent of each, given as it is: df's `file` column
    # names it), each requested path beside its parent first: a df and a subshell per path cost a
    # host 7 ms more
    df = "set --; " + "".join(
        f"for p in {' '.join(q(x) for x in parents(p))}; do [ -e \"$p\" ] && break; done; "
        f"set -- \"$@\" \"$p\"; printf '@path\\t%s\\t%s\\n' {q(p)} \"$p\"; " for p in paths) + \
        "df -B1 --output=source,fstype,size,avail,target,file -- \"$@\"; "
    # one grep for every setting: the shell's read takes a byte per system call, and a /proc/sys
    # number read from an offset past 0 is empty (the kernel's sysctl handlers)
    sysctls = " ".join(q(sysctl_path(k)) for k in SNAPSHOT_SYSCTLS)
    return (
        "nl='\n'; s() { printf '\\n@@%s\\n' \"$1\"; }; " + CAT_FN +
        "s os; wc_cat /etc/os-release 2>/dev/null || wc_cat /usr/lib/os-release 2>/dev/null; "
        f"s nproc; {CPU_SCRIPT}"
        "s meminfo; wc_cat /proc/meminfo; "
        "s hostname; " + HOSTNAME + "printf '%s\\n' \"$h\"; "
        "s hosts; getent hosts \"$h\" || true; "
        "s machineid; wc_cat /etc/machine-id 2>/dev/null; "
        "s bootid; wc_cat /proc/sys/kernel/random/boot_id 2>/dev/null; "
        "s uuid; wc_cat /sys/class/dmi/id/product_uuid 2>/dev/null; "
        "s addr; ip -j addr; "
        "s route; ip -j route; "
        "s swaps; wc_cat /proc/swaps; "
        "s modules; for m in /sys/module/*; do [ -e \"$m\" ] && printf '%s\\n' \"${m##*/}\"; done; "
        f"s sysctl; grep -H '' {sysctls} 2>/dev/null; "
        "s gpg; g=$(gpg --version 2>/dev/null); [ -n \"$g\" ] && printf '%s\\n' \"${g%%\"$nl\"*}\"; "
        "s arch; dpkg --print-architecture 2>/dev/null || uname -m; "
        "s netplan; for f in /etc/netplan/*.yaml; do [ -e \"$f\" ] && "
        "grep -HnE 'dhcp4:|^ *[A-Za-z0-9_.-]+:$' /etc/netplan/*.yaml 2>/dev/null; break; done; "
        f"s which; for c in {' '.join(WHICH_PRIMED)}; do printf '%s=' \"$c\"; command -v -- \"$c\" || echo; done; "
        f"s df; {df}"
        "s end")



def identity_script(mark: str) -> str:
    """Facts.identity()'s command (host name, its getent hosts entry, machine-id, DMI product_uuid,
    boot id, mark between them): one process, getent."""
    return (CAT_FN + HOSTNAME +
            f"printf '%s\\n' \"$h\"; echo {mark}; getent hosts \"$h\"; echo {mark}; "
            f"wc_cat /etc/machine-id 2>/dev/null; echo {mark}; wc_cat /sys/class/dmi/id/product_uuid 2>/dev/null; "
            f"echo {mark}; wc_cat /proc/sys/kernel/random/boot_id 2>/dev/null; echo {mark}")


def parse_df_section(text: str) -> dict[str, tuple[str, str, int, int, str]]:
    """The snapshot's df section -> {requested path: (source, fstype, size, avail, mount point)}: each
    path's line is the df line whose `file` column is the parent it was given as (a parent df could
    not read has no line, and its paths no entry)."""
    asked: list[tuple[str, str]] = []
    rows: list[str] = []
    for line in text.splitlines():
        if line.startswith("@path\t"):
            fields = line.split("\t", 2)
            if len(fields) == 3 and fields[2]:
                asked.append((fields[1], fields[2]))
        elif line.strip():
            rows.append(line)
    found: dict[str, tuple[str, str, int, int, str]] = {}
    parents_given = sorted({parent for _p, parent in asked}, key=len, reverse=True)
    for line in rows:
        parent = next((g for g in parents_given if line.endswith(" " + g)), None)
        if parent is None:
            continue
        f = line[:-len(parent)].split()
        if len(f) >= 5 and f[2].isdigit() and f[3].isdigit():
            found.setdefault(parent, (f[0], f[1], int(f[2]), int(f[3]), " ".join(f[4:])))
    return {path: found[parent] for path, parent in asked if parent in found}
