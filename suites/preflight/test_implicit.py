"""Implicit requirements: not stated in Wire's docs, but what a careful operator checks too (level should)."""

from __future__ import annotations

import shlex

from wirecheck import expect, record, requirement


@requirement("IMP-TIME-DEMO")
def test_clock_synchronised(target, spec):
    res = target.run("timedatectl show -p NTPSynchronized -p NTP --value 2>/dev/null || "
                     "(command -v chronyc >/dev/null && chronyc tracking)", timeout=15)
    text = res.stdout.strip()
    lines = text.splitlines()
    if res.rc == 0 and lines and lines[0] in ("yes", "no"):
        synced = lines[-1] == "yes" if len(lines) > 1 else lines[0] == "yes"
        record(timedatectl=dict(zip(["NTP", "NTPSynchronized"], lines, strict=False)))
        expect(synced, "clock synchronised", method="timedatectl show -p NTPSynchronized").is_true(
            "NTPSynchronized=yes", "the clock is not NTP-synchronised (timedatectl NTPSynchronized=no)")
        return
    offset = None
    for line in lines:
        if line.startswith("System time"):
            offset = abs(float(line.split(":", 1)[1].split()[0])) * 1000
    expect(offset, "clock offset", method="timedatectl / chronyc tracking", unit="ms").satisfies(
        lambda o: o is not None and o < spec.max_offset_ms, f"< {spec.max_offset_ms} ms and synchronised",
        "no time synchronisation service answers on the node (neither timedatectl nor chronyc)")


@requirement("IMP-INOTIFY")
def test_inotify_limits(target, spec):
    inst = target.facts.sysctl("fs.inotify.max_user_instances")
    watches = target.facts.sysctl("fs.inotify.max_user_watches")
    expect(int(inst) if inst else None, "fs.inotify.max_user_instances",
           method="/proc/sys/fs/inotify/max_user_instances", soft=True).at_least(spec.max_user_instances)
    expect(int(watches) if watches else None, "fs.inotify.max_user_watches",
           method="/proc/sys/fs/inotify/max_user_watches", soft=True).at_least(spec.max_user_watches)


@requirement("IMP-APT-IDLE")
def test_apt_idle(target, spec):
    locks = " ".join(shlex.quote(p) for p in spec.locks)
    res = target.run(f"for f in {locks}; do [ -e \"$f\" ] || continue; "
                     f"if command -v fuser >/dev/null; then fuser \"$f\" 2>/dev/null | sed \"s|^|$f |\"; "
                     f"else p=$(lsof -t -- \"$f\" 2>/dev/null); [ -n \"$p\" ] && echo \"$f $p\"; fi; echo; done; "
                     "pgrep -a -x 'apt|apt-get|dpkg|unattended-upgr' || true", sudo=True, timeout=20)
    holders = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
    expect(holders, "apt/dpkg activity", method="fuser on the dpkg/apt locks; pgrep apt|dpkg").is_empty(
        "no process holding the dpkg/apt locks", "apt/dpkg is busy: " + "; ".join(holders[:5]))
