"""Demo deploy node: operating system and sizing (planning.md › Demo installation › What you need)."""

from __future__ import annotations

from wirecheck import cannot_measure, expect, record, requirement, sizing
from wirecheck.coordination import register_commands
from wirecheck.facts import passwd_command

GIB = 1024**3


@requirement("DEMO-SYS-OS")
def test_os_release(target, spec):
    osr = target.facts.os_release()
    name = osr.get("PRETTY_NAME") or f"{osr.get('ID')} {osr.get('VERSION_ID')}"
    record(os_release={k: osr.get(k) for k in ("ID", "VERSION_ID", "VERSION_CODENAME", "PRETTY_NAME")})
    expect((osr.get("ID"), osr.get("VERSION_ID"), osr.get("VERSION_CODENAME")), "operating system",
           method="/etc/os-release").satisfies(
        lambda o: o == (spec.distro, spec.version_id, spec.codename),
        f"Ubuntu {spec.version_id} ({spec.codename})",
        f"{name} (ID={osr.get('ID')}, VERSION_ID={osr.get('VERSION_ID')}, "
        f"VERSION_CODENAME={osr.get('VERSION_CODENAME')}), need Ubuntu {spec.version_id} ({spec.codename})")


@requirement("DEMO-SYS-ARCH")
def test_architecture(target, spec):
    arch = target.facts.architecture()
    expect(arch.value, "architecture", method=arch.method).equals(spec.arch)


@requirement("DEMO-SYS-CPU")
def test_cpu_cores(target, spec):
    cores = target.facts.cpu_cores()
    if cores.detail:
        record(cpu_limits=cores.detail["limits"], cgroup=cores.detail["cgroup"])
    expect(cores.value, "CPU cores", method=cores.method).at_least(spec.min_cores)


@requirement("DEMO-SYS-MEM")
def test_memory(target, spec):
    """MemTotal (KiB) compared with the limit in KiB: > 16 GiB is > 16,777,216 KiB."""
    kib = target.facts.meminfo().get("MemTotal")
    if kib is None:
        cannot_measure("/proc/meminfo on the host has no MemTotal line")
    limit = sizing.gib_in_kib(spec.more_than_gib)
    record(mem_total_kib=kib, limit_kib=int(limit))
    shown = f"{sizing.gib_text(kib, sizing.KIB_PER_GIB)} GiB ({kib:,} KiB)"
    expect(kib, "memory", method="/proc/meminfo MemTotal", unit="KiB").satisfies(
        lambda k: sizing.more_than(k, limit), f"> {spec.more_than_gib:g} GiB ({int(limit):,} KiB)",
        f"memory: MemTotal {shown}, need more than {spec.more_than_gib:g} GiB ({int(limit):,} KiB)")
    headroom = sizing.gib_in_kib(spec.more_than_gib + spec.headroom_gib)
    if kib < headroom:
        record(note=f"only {sizing.gib_text(kib - limit, sizing.KIB_PER_GIB)} GiB above minikube's "
                    f"{spec.more_than_gib:g} GiB; the host OS and Docker need memory outside it")


@requirement("DEMO-SYS-DISK")
def test_disk(target, spec):
    """File-system sizes in bytes (df -B1) compared with the limit in bytes: > 200 GiB is
    > 214,748,364,800 bytes."""
    user = target.user or target.facts.whoami()
    limit = sizing.gib_in_bytes(spec.more_than_gib)
    seen: dict[str, dict] = {}
    for path in spec.paths:
        path = path.format(user=user)
        du = target.facts.disk(path)
        seen.setdefault(du.mount, {"paths": [], "source": du.source, "fstype": du.fstype, "size_bytes": du.size,
                                   "size_gib": round(du.size / GIB, 1), "avail_gib": round(du.avail / GIB, 1)})
        seen[du.mount]["paths"].append(path)
    record(filesystems=seen, limit_bytes=int(limit))
    for mount, fs in seen.items():
        size = fs["size_bytes"]
        expect(size, f"filesystem {mount} ({fs['source']}, holding {', '.join(fs['paths'])})",
               method="df -B1", unit="bytes", soft=True).satisfies(
            lambda b: sizing.more_than(b, limit), f"> {spec.more_than_gib:g} GiB ({int(limit):,} bytes)",
            f"filesystem {mount} ({fs['source']}, holding {', '.join(fs['paths'])}): "
            f"{sizing.gib_text(size, sizing.BYTES_PER_GIB)} GiB ({size:,} bytes), need more than "
            f"{spec.more_than_gib:g} GiB ({int(limit):,} bytes)")


# the login user's account, with the host's other commands in one round trip (only when the
# inventory names the user: otherwise the check asks who it is first)
register_commands("DEMO-SYS-USER-HOME",
                  lambda target, spec: [(passwd_command(target.user), False, None)] if target.user else [])


@requirement("DEMO-SYS-USER-HOME")
def test_user_home(target, spec):
    user = target.user or target.facts.whoami()
    entry = target.facts.passwd_entry(user) or []     # []: getent says there is no such account
    expect(entry, f"account {user}", method=f"getent passwd {user}").is_true(
        f"a local account {user}", f"user {user} does not exist on the node")
    uid, home = int(entry[2]), entry[5]
    record(user=user, uid=uid, home=home)
    expect(uid, f"uid of ansible_user {user}", method=f"getent passwd {user}").satisfies(
        lambda u: u != 0, "a non-root account (uid != 0)",
        f"ansible_user {user} is root (uid 0); the playbook writes /home/{user}/.kube/config")
    expect(home, f"home directory of {user}", method=f"getent passwd {user}").equals(f"{spec.home_prefix}/{user}")
