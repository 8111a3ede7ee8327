"""A pytest plugin for wirecheck runs (``-p tests.faults.hostile``): every target, and the control
machine, answers every command in a broken way.  WIRECHECK_HOSTILE=<mode> sets the way for all of
them; WIRECHECK_HOSTILE=per-host takes each target's inventory variable ``wirecheck_hostile``, and
the control machine then goes through the modes in turn, one command after the other.

- ``not-found``   rc 127, "sh: 1: <cmd>: not found" (the tool is missing)
- ``denied``      rc 1, "Permission denied" / sudo's "a password is required"
- ``denied-126``  rc 126, "Permission denied" (cannot execute)
- ``empty``       rc 0, nothing on stdout (a command that printed nothing)
- ``garbage``     rc 0, text no tool prints (a wrapper, a banner, a broken locale)
- ``timeout``     no answer within the time limit (CommandTimeout)
- ``dropped``     ssh exit 255, "Connection closed by remote host" (the connection died)

File reads are commands (``cat``) and fail the same way; so do the long-lived processes a check
starts (the port probe's listener).  With WIRECHECK_HOSTILE_LOG=FILE every command is appended to
FILE with the check that ran it, so a test can tell which checks never touched a target.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from wirecheck.transport import CommandResult, CommandTimeout, SshTransport, Unreachable

MODES = ("not-found", "denied", "denied-126", "empty", "garbage", "timeout", "dropped")

GARBAGE = ("\x1b[1;31m*** Welcome to HAL 9000 ***\x1b[0m\n<html><body>502 Bad Gateway</body></html>\n"
           "%% lorem ipsum: dolor = sit amet @@ \xbf?\n\n  ,,;; -- ::\n")


def _log(where: str, mode: str, command: str) -> None:
    path = os.environ.get("WIRECHECK_HOSTILE_LOG")
    if path:
        check = os.environ.get("PYTEST_CURRENT_TEST", "-").rsplit(" (", 1)[0]
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{check}\t{where}\t{mode}\t{' '.join(command.split())[:200]}\n")


def _first_word(command: str) -> str:
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return words[0] if words else "sh"


class HostileTransport(SshTransport):
    """Answers every command in a broken way (the module text). An SshTransport by its attributes (what
    checks read from the ssh configuration stays real); it never connects anywhere."""

    def __init__(self, mode: str, host: str, user: str | None = "wire") -> None:
        if mode not in (*MODES, "rotate"):
            raise ValueError(f"hostile mode {mode!r}: one of {', '.join(MODES)} or rotate")
        super().__init__(host, user=user)
        self.mode, self._turn = mode, 0
        self.description = f"ssh {user}@{host}" if host != "control" else "control machine"

    def _mode(self) -> str:
        if self.mode != "rotate":
            return self.mode
        self._turn += 1
        return MODES[self._turn % len(MODES)]

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _answer(self, command: str, sudo: bool, mode: str) -> tuple[int, str, str]:
        word = _first_word(command)
        return {
            "not-found": (127, "", f"sh: 1: {word}: not found\n"),
            "denied": (1, "", "sudo: a password is required\n" if sudo else f"{word}: Permission denied\n"),
            "denied-126": (126, "", f"sh: 1: {word}: Permission denied\n"),
            "empty": (0, "", ""),
            "garbage": (0, GARBAGE, ""),
            "dropped": (255, "", f"Connection to {self.description} closed by remote host.\n"),
        }[mode]

    def run(self, command: str, timeout: float = 20.0, sudo: bool = False,
            stdin: bytes | None = None) -> CommandResult:
        mode = self._mode()
        _log(self.description, mode, command)
        if mode == "timeout":
            raise CommandTimeout(f"{self.description}: no answer to {command!r} within {timeout:g} s")
        rc, out, err = self._answer(command, sudo, mode)
        result = CommandResult(command, rc, out, err, 0.0)
        if rc == 255:        # what SshTransport.check_transport makes of ssh's own exit status
            raise Unreachable(f"{self.description}: connection lost: {err.strip()}")
        return result

    def popen(self, argv: list[str], sudo: bool = False) -> subprocess.Popen:
        command = shlex.join(argv)
        mode = self._mode()
        _log(self.description, mode, command)
        if mode == "timeout":       # the target's `timeout` ends it: no output, exit 124
            rc, out, err = 124, "", ""
        else:
            rc, out, err = self._answer(command, sudo, mode)
        script = "import sys; sys.stdout.write(sys.argv[1]); sys.stderr.write(sys.argv[2]); sys.exit(int(sys.argv[3]))"
        return subprocess.Popen([sys.executable, "-c", script, out, err, str(rc)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)



@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("WIRECHECK_HOSTILE"):
        return
    from wirecheck import coordination, plugin
    from wirecheck.targets import local_target

    site = config.stash.get(plugin.SITE_KEY, None)
    if site is None:
        return
    chosen = os.environ["WIRECHECK_HOSTILE"]
    for t in site.targets:
        mode = t.vars.get("wirecheck_hostile") if chosen == "per-host" else chosen
        if mode is None:
            raise pytest.UsageError(f"hostile run: host {t.name} has no wirecheck_hostile variable")
        t.transport = HostileTransport(str(mode), t.address, user=t.vars.get("ansible_user") or "wire")
    control = local_target(["control"])
    control.name = "control"
    control.transport = HostileTransport("rotate" if chosen == "per-host" else chosen, "control", user="operator")
    coordination.CONTROL["t"] = control
