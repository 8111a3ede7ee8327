"""ACME's own checks. They use wirecheck's ``target`` or testinfra's ``host`` (its modules run over
wirecheck's connection to the target), and wirecheck's ``expect`` for the verdict."""

from wirecheck import cannot_measure, expect, record, requirement


@requirement("ACME-SSH-NO-PASSWORD")
def test_ssh_no_password(target):
    res = target.run("sshd -T 2>&1", sudo=True)
    if res.rc != 0:
        cannot_measure(f"`sshd -T` failed on {target.name} (exit {res.rc}): {res.stdout.strip()[-300:]}")
    settings = dict(line.split(None, 1) for line in res.stdout.splitlines() if " " in line)
    if "passwordauthentication" not in settings:
        cannot_measure("`sshd -T` printed no passwordauthentication setting")
    seen = {k: settings.get(k, "absent") for k in ("passwordauthentication", "kbdinteractiveauthentication")}
    record(sshd=seen)
    allowed = [k for k, v in seen.items() if v == "yes"]
    expect(allowed, "password login methods sshd accepts", method="sshd -T").is_empty(
        "none", message=f"sshd accepts password logins ({', '.join(f'{k} yes' for k in allowed)})")


@requirement("ACME-PKG-MANDATED")
def test_mandated_packages(host, spec):
    wanted = spec.packages
    if isinstance(wanted, str):          # --param ACME-PKG-MANDATED.packages=chrony,auditd
        wanted = [p.strip() for p in wanted.split(",") if p.strip()]
    missing = [name for name in wanted if not host.package(name).is_installed]
    record(packages=list(wanted), missing=missing)
    expect(missing, "mandated packages not installed", method="dpkg-query (testinfra host.package)").is_empty(
        "none", message=f"not installed: {', '.join(missing)} (of {', '.join(wanted)})")
