"""Access to the targets: SSH from the control machine, sudo and Python 3 on every host."""

from __future__ import annotations

import shlex

from wirecheck import expect, not_applicable, record, requirement


@requirement("CTRL-SSH-KEY-AUTH")
def test_ssh_non_interactive(target):
    if target.local:
        not_applicable("the target is the machine running wirecheck; no SSH involved")
    t = target.transport
    key = getattr(t, "identity_file", None)
    record(user=t.user, key=key, password_login=bool(getattr(t, "_password", None)))
    res = target.run("true", timeout=15)    # raises Unreachable (-> error) when the login fails
    expect(res.rc, "non-interactive login", method="ssh -o BatchMode=yes … true").equals(0)


@requirement("HOST-SUDO")
def test_sudo(target):
    ok = target.facts.sudo_ok()
    expect(ok.value, "passwordless sudo", method=ok.method).is_true(
        "sudo -n works for the login user",
        f"{target.user or 'the login user'} cannot sudo without a password ({ok.method})")


@requirement("HOST-PYTHON3")
def test_python3(target, spec):
    interp = shlex.quote(spec.interpreter)
    res = target.run(f"test -x {interp} && {interp} -c 'import sys; print(sys.version.split()[0])'")
    version = res.stdout.strip() if res.rc == 0 else None
    expect(version, spec.interpreter, method=f"{spec.interpreter} --version").is_true(
        f"{spec.interpreter} present", f"{spec.interpreter} missing or not executable")
    mod = target.run(f"{interp} -c 'import {spec.module}'")
    record(python=version)
    expect(mod.rc == 0, f"python3-{spec.module}", method=f"{spec.interpreter} -c 'import {spec.module}'").is_true(
        f"the {spec.module} module importable (python3-{spec.module}, needed by Ansible's apt module)",
        f"Python {version} is there, but `import {spec.module}` fails (install python3-{spec.module})")
