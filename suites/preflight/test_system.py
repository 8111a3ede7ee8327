"""Demo deploy node: operating system and sizing (planning.md › Demo installation › What you need)."""

from __future__ import annotations

from wirecheck import expect, record, requirement

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
    expect(cores.value, "CPU cores", method=cores.method).at_least(spec.min_cores)


@requirement("DEMO-SYS-MEM")
def test_memory(target, spec):
    kib = target.facts.meminfo().get("MemTotal")
    gib = round(kib / 1024**2, 2) if kib else None
    record(mem_total_kib=kib)
    expect(gib, "memory", method="/proc/meminfo MemTotal", unit="GiB").greater_than(spec.more_than_gib)
    if gib is not None and gib < spec.more_than_gib + spec.headroom_gib:
        record(note=f"only {gib - spec.more_than_gib:.2f} GiB above minikube's {spec.more_than_gib} GiB; "
                    f"the host OS and Docker need memory outside it")


@requirement("DEMO-SYS-DISK")
def test_disk(target, spec):
    user = target.user or target.facts.whoami()
    seen: dict[str, dict] = {}
    for path in spec.paths:
        path = path.format(user=user)
        du = target.facts.disk(path)
        seen.setdefault(du.mount, {"paths": [], "source": du.source, "fstype": du.fstype,
                                   "size_gib": round(du.size / GIB, 1), "avail_gib": round(du.avail / GIB, 1)})
        seen[du.mount]["paths"].append(path)
    record(filesystems=seen)
    for mount, fs in seen.items():
        expect(fs["size_gib"], f"filesystem {mount} ({fs['source']}, holding {', '.join(fs['paths'])})",
               method="df -B1", unit="GiB", soft=True).greater_than(spec.more_than_gib)


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
