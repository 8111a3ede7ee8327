"""Access to the targets: SSH from the control machine, sudo and Python 3 on every host."""

from __future__ import annotations

import re
import shlex

from wirecheck import cannot_measure, expect, fail, not_applicable, record, requirement
from wirecheck.coordination import register_commands
from wirecheck.pyjobs import PyJob, register_job, run_job

#: what the checks below run on each target; registered so that the run can ask every host for them
#: in one round trip before the checks do (wirecheck.coordination.register_commands)
WHO_CMD = "id -un"


#: HOST-PYTHON3's Python: the interpreter's version (written before the imports, so that an import
#: that crashes the interpreter still leaves it), then the imports, each module's own name printed back
PYTHON_CODE = r"""
def main(argv, out, err):
    import importlib, sys
    out.write(sys.version.split()[0] + "\n")
    out.flush()
    names = [importlib.import_module(name).__name__ for name in argv]
    out.write("import-ok " + " ".join(names) + "\n")
"""


def python_modules(spec) -> tuple[str, ...]:
    """What the check imports: the module, and for apt also what Ansible's apt module imports beside it
    (ansible/modules/apt.py: import apt, apt.debfile, apt_pkg)."""
    return (spec.module, "apt.debfile", "apt_pkg") if spec.module == "apt" else (spec.module,)


def python_job(spec) -> PyJob:
    """HOST-PYTHON3's one command: exit 3 when the interpreter is not there or not executable (a
    measured no; any other failure measured nothing), then version and imports in one interpreter.
    In the host's Python program (wirecheck.pyjobs) that runs under the same interpreter, the
    program's own start proves what `test -x` tests."""
    interp = shlex.quote(spec.interpreter)
    return PyJob("HOST-PYTHON3", PYTHON_CODE, python_modules(spec), timeout=30.0, interpreter=spec.interpreter,
                 prelude=f"test -x {interp} || exit 3; echo @@executable; ", preamble="@@executable\n")


register_commands("CTRL-SSH-KEY-AUTH", lambda target, spec: [] if target.local else [(WHO_CMD, False, 15)])
register_commands("HOST-SUDO", lambda target, spec: [("id -u", True, 15)])      # Facts.sudo_ok
register_job("HOST-PYTHON3", lambda target, spec: python_job(spec))


@requirement("CTRL-SSH-KEY-AUTH")
def test_ssh_non_interactive(target):
    if target.local:
        not_applicable("the target is the machine running wirecheck; no SSH involved")
    t = target.transport
    key = getattr(t, "identity_file", None)
    record(user=t.user, key=key, password_login=bool(getattr(t, "_password", None)))
    res = target.run(WHO_CMD, timeout=15)    # raises Unreachable (-> error) when the login fails
    who = res.stdout.strip()
    if res.rc != 0 or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?", who):
        cannot_measure(f"logged in, but `id -un` did not say as whom (exit {res.rc}): "
                       f"{(res.stderr.strip().splitlines() or [repr(who[:80])])[-1]}")
    expect(who, "non-interactive login as", method="ssh -o BatchMode=yes … id -un").equals(t.user or who)


@requirement("HOST-SUDO")
def test_sudo(target):
    ok = target.facts.sudo_ok()       # a become password sudo refuses raises SudoRefused: error, named
    t = target.transport
    root = t.is_root
    who = target.user or "the login user"
    record(become_password_from=t.become_var if getattr(t, "sudo_with_password", False) else None)
    if getattr(t, "sudo_with_password", False):
        expect(ok.value, "sudo with the inventory's become password", method=ok.method).is_true(
            f"sudo -S with the password of {t.become_var} works for the login user",
            f"{who} cannot become root with sudo and the password of {t.become_var} ({ok.method})",
            passed=f"root with the inventory's become password: {ok.method} as {who} prints 0")
        return
    expect(ok.value, "passwordless sudo", method=ok.method).is_true(
        "sudo -n works for the login user",
        f"{who} cannot sudo without a password ({ok.method}); if sudo asks for one, give it in the "
        "inventory as ansible_become_pass",
        passed=("root without a password: the login user is root (`id -u` prints 0)" if root else
                f"passwordless sudo: `sudo -n id -u` as {who} prints 0"))


@requirement("HOST-PYTHON3")
def test_python3(target, spec):
    job = python_job(spec)
    res = run_job(target, job)
    lines = [ln.strip() for ln in res.stdout.strip().splitlines()]
    version = lines[1] if len(lines) > 1 else ""
    last_err = (res.stderr.strip().splitlines() or [""])[-1][:200]
    if res.rc == 3 and not lines:
        fail(f"{spec.interpreter} missing or not executable", observed="missing", expected=f"{spec.interpreter} present",
             method=f"test -x {spec.interpreter}")
    if lines[:1] == ["@@executable"] and not re.fullmatch(r"3\.\d+\.\d+\S*", version):
        fail(f"{spec.interpreter} is there but does not run as Python 3 (exit {res.rc}): "
             f"{last_err or (repr(version[:80]) if version else 'no output')}",
             observed="does not run", expected="Python 3", method=f"{spec.interpreter} -c 'print(sys.version)'")
    if not re.fullmatch(r"3\.\d+\.\d+\S*", version):
        cannot_measure(f"cannot tell the version of {spec.interpreter} (exit {res.rc}): {last_err or repr(version[:80])}")
    expect(version, spec.interpreter, method=f"{spec.interpreter} --version").is_true(f"{spec.interpreter} present")
    # the modules' own names printed back: an exit 0 alone could come from anything
    modules = python_modules(spec)
    imports = f"{spec.interpreter} -c 'import {', '.join(modules)}'"
    record(python=version, imported=list(modules))
    if res.rc == 0 and lines[2:] != [f"import-ok {' '.join(modules)}"]:
        cannot_measure(f"`{imports}` printed {' '.join(lines[2:])[:80]!r}")
    if res.rc != 0 and "Error" not in res.stderr:
        cannot_measure(f"`{imports}` did not run (exit {res.rc}): {last_err or 'no message'}")
    expect(res.rc == 0, f"python3-{spec.module}", method=imports).is_true(
        f"the {spec.module} module importable (python3-{spec.module}, needed by Ansible's apt module)",
        f"Python {version} is there, but `{imports}` fails: {last_err} (install python3-{spec.module})")
