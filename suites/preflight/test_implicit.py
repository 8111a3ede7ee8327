"""Implicit requirements: not stated in Wire's docs, but what a careful operator checks too (level should)."""

from __future__ import annotations

import shlex

from wirecheck import cannot_measure, expect, record, requirement
from wirecheck.coordination import register_commands

CLOCK_CMD = ("if command -v timedatectl >/dev/null && "
             "out=$(timedatectl show -p NTPSynchronized -p NTP --value 2>/dev/null); then "
             "echo @@timedatectl; echo \"$out\"; elif command -v chronyc >/dev/null; then "
             "echo @@chronyc; chronyc tracking 2>&1; else echo @@none; fi")
# asked with the host's other commands in one round trip, before the port probe holds the host
register_commands("IMP-TIME-DEMO", lambda target, spec: [(CLOCK_CMD, False, 15)])


@requirement("IMP-TIME-DEMO")
def test_clock_synchronised(target, spec):
    res = target.run(CLOCK_CMD, timeout=15)
    lines = res.stdout.strip().splitlines()
    source = lines[0] if res.rc == 0 and lines else None
    lines = lines[1:]
    if source == "@@none":
        expect("neither", "time synchronisation service", method="command -v timedatectl chronyc").satisfies(
            lambda _: False, "timedatectl or chronyc answering",
            "no time synchronisation service answers on the node (neither timedatectl nor chronyc)")
    if source == "@@timedatectl" and lines and all(ln in ("yes", "no") for ln in lines):
        synced = lines[-1] == "yes"
        record(timedatectl=dict(zip(["NTP", "NTPSynchronized"], lines, strict=False)))
        expect(synced, "clock synchronised", method="timedatectl show -p NTPSynchronized").is_true(
            "NTPSynchronized=yes", "the clock is not NTP-synchronised (timedatectl NTPSynchronized=no)")
        return
    offset = None
    for line in lines if source == "@@chronyc" else []:
        if line.startswith("System time"):
            try:
                offset = abs(float(line.split(":", 1)[1].split()[0])) * 1000
            except (IndexError, ValueError):
                offset = None
    if offset is None:
        cannot_measure(f"neither timedatectl nor chronyc gave a readable answer (exit {res.rc}): "
                       f"{(res.stderr.strip().splitlines() or [repr(res.stdout.strip()[:80])])[-1]}")
    expect(offset, "clock offset", method="chronyc tracking", unit="ms").satisfies(
        lambda o: o < spec.max_offset_ms, f"< {spec.max_offset_ms} ms and synchronised")


@requirement("IMP-INOTIFY")
def test_inotify_limits(target, spec):
    inst = (target.facts.sysctl_ints("fs.inotify.max_user_instances") or [None])[0]
    watches = (target.facts.sysctl_ints("fs.inotify.max_user_watches") or [None])[0]
    expect(inst, "fs.inotify.max_user_instances",
           method="/proc/sys/fs/inotify/max_user_instances", soft=True).at_least(spec.max_user_instances)
    expect(watches, "fs.inotify.max_user_watches",
           method="/proc/sys/fs/inotify/max_user_watches", soft=True).at_least(spec.max_user_watches)


#: the process names (as the kernel keeps them: 15 characters) of apt and dpkg at work
APT_PROCESSES = "apt|apt-get|dpkg|unattended-upgr"


def apt_idle_command(spec) -> str:
    """Who holds a lock on the dpkg/apt lock files, from the kernel's lock table (/proc/locks: the
    holder's pid and the file's inode; apt and dpkg lock with fcntl, which it lists), each holder
    confirmed by its open file descriptors; and any apt/dpkg process running (its name in
    /proc/*/comm).  The lock table has one line per lock, so this costs the same on a host with
    thousands of processes (fuser walks every process's descriptors: 1-2 s per host on the benchmark
    machine)."""
    paths = spec.locks if isinstance(spec.locks, list) else str(spec.locks).split(",")
    locks = " ".join(shlex.quote(p) for p in paths)
    # one stat for the files there are, one awk over the lock table for the holders of any of them
    # (pid and file), each holder then confirmed by a descriptor open on that file: a handful of
    # processes whatever the number of files (a stat, awk, sort and readlink per file cost 18 ms)
    return ("[ -r /proc/locks ] || { echo 'cannot read /proc/locks' >&2; exit 3; }; set --; "
            f"for f in {locks}; do [ -e \"$f\" ] && set -- \"$@\" \"$f\"; done; "
            "if [ $# -gt 0 ]; then s=$(stat -Lc '%i %n' -- \"$@\") || exit 3; "
            "h=$(printf '%s\\n' \"$s\" | awk 'NR == FNR { ino[$1] = substr($0, index($0, \" \") + 1); next } "
            "$2 != \"->\" { n = split($6, a, \":\"); if ((a[n] in ino) && !seen[$5 \" \" a[n]]++) print $5, ino[a[n]] }' "
            "- /proc/locks) || exit 3; "
            "printf '%s\\n' \"$h\" | while read -r p f; do [ -n \"$p\" ] || continue; r=$(readlink -f -- \"$f\"); "
            "for d in /proc/\"$p\"/fd/*; do if [ \"$(readlink -- \"$d\" 2>/dev/null)\" = \"$r\" ]; then "
            "echo \"$f held by pid $p ($(tr '\\0\\n' '  ' </proc/\"$p\"/cmdline 2>/dev/null | cut -c1-60))\"; break; fi; done; "
            "done; fi; "
            # the processes by name, as pgrep -x would find them (the kernel's 15-character name), with
            # one grep over /proc/*/comm: a third of pgrep's CPU, and a grep that did not run is said
            # (exit 2 is only a process that ended meanwhile)
            f"g=$(grep -lsxE {shlex.quote(APT_PROCESSES)} /proc/[0-9]*/comm); [ $? -le 2 ] || "
            "{ echo 'cannot search /proc/*/comm for apt/dpkg processes' >&2; exit 3; }; "
            # a process that has ended since (gone, or a zombie not yet reaped: it runs nothing and holds
            # no lock, and its namespace can no longer be read) is not running; a process in another
            # network namespace (a container with its own root file system) does not use this host's
            # dpkg database; a live one whose namespace cannot be read is counted
            "me=$(readlink /proc/self/ns/net 2>/dev/null); "
            "for c in $g; do p=${c#/proc/}; p=${p%/comm}; n=$(readlink /proc/\"$p\"/ns/net 2>/dev/null); "
            "if [ -z \"$n\" ]; then st=$(cat /proc/\"$p\"/stat 2>/dev/null) || continue; "
            "case ${st##*) } in Z*|X*) continue;; esac; fi; "
            "if [ -n \"$me\" ] && [ -n \"$n\" ] && [ \"$n\" != \"$me\" ]; then continue; fi; "
            "echo \"pid $p is running: $(tr '\\0\\n' '  ' </proc/\"$p\"/cmdline 2>/dev/null | cut -c1-60)\"; done; "
            "echo @@end")


# asked of every host before the check runs, with the other checks' commands (one round trip)
register_commands("IMP-APT-IDLE", lambda target, spec: [(apt_idle_command(spec), True, 20)])


@requirement("IMP-APT-IDLE")
def test_apt_idle(target, spec):
    res = target.run(apt_idle_command(spec), sudo=True, timeout=20)
    lines = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
    if res.rc != 0 or not lines or lines[-1] != "@@end":    # "nobody holds the locks" needs the search to have run
        cannot_measure(f"the search for apt/dpkg activity did not run to its end (exit {res.rc}): "
                       f"{(res.stderr.strip().splitlines() or [repr(res.stdout.strip()[:80])])[-1]}")
    holders = lines[:-1]
    expect(holders, "apt/dpkg activity", method="locks on the dpkg/apt lock files (/proc/locks); apt/dpkg process names in the host's network namespace (/proc/*/comm)").is_empty(
        "no process holding the dpkg/apt locks", "apt/dpkg is busy: " + "; ".join(holders[:5]))
