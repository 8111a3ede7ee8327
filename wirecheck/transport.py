"""How commands reach a target: locally, or over one shared SSH connection per host.

Every command has a timeout, on both ends: this process kills the client when it runs out, and the
command itself runs under ``timeout`` on the target (in a batch: under the batch runner, which ends
it at its limit, see wirecheck.batch), so that it also ends when this process is killed and no one
is left to stop it.  SSH uses one master connection per target (ControlMaster), started
explicitly so that no background process holds our pipes, and closed as ``ssh -O exit`` closes it
(the request sent over its control socket: wirecheck.ssh_mux; ``ssh -O exit`` where that fails).

The masters' control sockets live in one private directory per run (``/tmp/wc-ssh-*``).  A small
reaper (``sh``, in its own session) holds the read end of a pipe whose write end only this process
has: however this process ends (normal exit, Ctrl-C, SIGKILL), the reaper sees end-of-file, tells
every master still there to exit and removes the directory.  So no master outlives the run by its
ControlPersist time and no socket directory is left behind.

Under pytest-xdist the workers share the controlling process's directory (``share_run_dir``): a
socket is named after the connection's parameters, so every process of the run finds the same master
and a host has one SSH connection for the whole run, whichever worker runs its checks.  A lock file
per socket makes the first process to need a host start its master while the others wait for it; a
host that cannot be reached is recorded beside the socket, so the others report the same error
instead of each waiting for their own connect timeout.  ``shared_dir`` is where processes of one run
leave each other what they measured (the host snapshots of ``facts``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

from . import ssh_mux
from .batch import batch_script, limit_seconds, parse_batch
from .rundir import (  # noqa: F401 - re-exported: the run directory is part of how commands reach a host
    enable_sharing,
    file_lock,
    is_guest,
    release_run_dir,
    run_dir,
    session_slot,
    share_run_dir,
    shared_dir,
)

DEFAULT_TIMEOUT = 20.0
CONNECT_TIMEOUT = 8


class TransportError(Exception):
    """The target could not be reached or did not answer in time."""


class Unreachable(TransportError):
    pass


class CommandTimeout(TransportError):
    pass


class SudoRefused(TransportError):
    """sudo on the target refused the become password the inventory gives (ansible_become_pass)."""


@dataclass
class CommandResult:
    command: str
    rc: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.rc == 0


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def bounded(command: str, timeout: float) -> str:
    """command, ended by the machine that runs it once timeout has passed (plus a grace second):
    what still runs when nobody waits for it any more (this process was killed, the connection
    dropped) does not run for ever.  Without coreutils' timeout the command runs as it is."""
    limit = limit_seconds(timeout)
    q = shlex.quote(command)
    return (f"if command -v timeout >/dev/null 2>&1; then exec timeout -k 2 {limit} /bin/sh -c {q}; "
            f"else exec /bin/sh -c {q}; fi")


#: commands one run has open at once over one host's master (sshd's MaxSessions, sessions per
#: connection, is 10 by default; the long-lived port-probe listener and a little headroom stay outside)
SESSION_SLOTS = 6


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except (subprocess.TimeoutExpired, ValueError):
        pass


def _trace(where: str, command: str, sudo: bool, result: CommandResult) -> None:
    """With WIRECHECK_COMMAND_LOG=FILE, every command run on a target is appended to FILE (for an
    operator who wants to know exactly what wirecheck ran on a machine, and for profiling)."""
    path = os.environ.get("WIRECHECK_COMMAND_LOG")
    if not path:
        return
    line = f"{where}\t{'sudo ' if sudo else ''}{' '.join(command.split())}\trc={result.rc}\t{result.duration:.3f}s\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)


#: what sudo says when it did not accept the password it read (sudo 1.8 and 1.9, any count)
SUDO_PASSWORD_REFUSED = re.compile(r"incorrect password attempt|Sorry, try again")


class Transport:
    """Base: runs shell commands on a target.

    Root-needing commands run through ``sudo -n`` (sudo must not ask), or, when the inventory gives a
    become password (``ansible_become_pass`` and its aliases), through ``sudo -S``: the password is
    the first line of the command's stdin, never on a command line, in the command log or in a
    report.  Before the first such command, ``sudo -S -k`` is asked once whether it accepts the
    password; a refusal is remembered (``SudoRefused``) so that no later command costs sudo's
    failure delay again.  After the password line comes a line with a token of this transport's
    own: the command, started by sudo, skips lines up to it, so that a password sudo did not ask
    for (NOPASSWD, cached credentials) never reaches the command's own input.
    """

    user: str | None = None
    is_root: bool = False
    description = "transport"
    #: the locale commands run in: fixed, so that output parses the same everywhere
    locale = "C"
    _become_password: str | None = None
    #: the inventory variable the become password came from (named in messages)
    become_var: str | None = None
    _become_token: str = ""
    _become_refused: str | None = None
    _become_checked: bool = False

    def use_become_password(self, password: str, var: str = "ansible_become_pass") -> None:
        """Gain root with ``sudo -S`` and this password (see the class text)."""
        if "\n" in password or "\r" in password or "\0" in password:
            raise ValueError(f"{var} holds a line break or NUL: sudo reads the password as one line")
        self._become_password, self.become_var = password, var
        self._become_token = "@@wirecheck-stdin-" + secrets.token_hex(8)
        self._become_lock = threading.Lock()

    def refuse_become(self, message: str) -> None:
        """A become password that cannot be used (say why): every root-needing command raises SudoRefused."""
        self._become_password, self._become_lock = "", threading.Lock()
        self._become_refused, self._become_checked = message, True

    @property
    def sudo_with_password(self) -> bool:
        return self._become_password is not None and not self.is_root

    def argv_for(self, command: str) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None

    def wrap(self, command: str, sudo: bool) -> str:
        # sbin directories: a non-root login's PATH often lacks them, and iptables/nft/ufw live there
        command = f"LC_ALL={self.locale}; PATH=\"$PATH:/usr/local/sbin:/usr/sbin:/sbin\"; export LC_ALL PATH; {command}"
        if sudo and self.sudo_with_password:
            skip = (f"while IFS= read -r wc_line && [ \"$wc_line\" != {self._become_token} ]; do :; done; "
                    "unset wc_line; ")
            return f"sudo -S -p '' -- /bin/sh -c {shlex.quote(skip + command)}"
        if sudo and not self.is_root:
            return f"sudo -n -- /bin/sh -c {shlex.quote(command)}"
        return command

    def _become_stdin(self, sudo: bool) -> bytes:
        """What goes before a command's own stdin: the password and the token line (sudo -S), else nothing."""
        if sudo and self.sudo_with_password:
            assert self._become_password is not None
            return f"{self._become_password}\n{self._become_token}\n".encode()
        return b""

    def _become_flag(self) -> str | None:
        """Where processes of one run leave each other sudo's answer to the become password ("ok" or
        the refusal; never the password). None: not shared."""
        return None

    def check_become(self) -> None:
        """Ask sudo once whether it takes the become password; raise SudoRefused when it does not.
        Once per transport, and where processes share a run directory once per run and host."""
        if not self.sudo_with_password:
            return
        if self._become_refused:
            raise SudoRefused(self._become_refused)
        if self._become_checked:
            return
        with self._become_lock:
            flag = self._become_flag()
            with file_lock(flag + ".lock") if flag else contextlib.nullcontext():
                if not self._become_checked:
                    said = None
                    if flag and os.path.exists(flag):
                        with open(flag, encoding="utf-8") as fh:
                            said = fh.read()
                    if said is None:
                        try:
                            said = self._ask_sudo()
                        except CommandTimeout as exc:     # a sudo that hangs: not asked again for each check
                            said = str(exc)
                        if flag:
                            with contextlib.suppress(OSError), open(flag, "w", encoding="utf-8") as fh:
                                fh.write(said)
                    self._become_refused = None if said == "ok" else said
                    self._become_checked = True
        if self._become_refused:
            raise SudoRefused(self._become_refused)

    def _ask_sudo(self) -> str:
        """"ok", or the sentence saying that sudo refused the password. What else sudo says (the user is
        not in sudoers, no sudo at all) is "ok" here: the commands themselves then report it."""
        assert self._become_password is not None
        # -k: judge the password itself, not credentials sudo may have cached
        argv = self.argv_for(bounded("sudo -S -k -p '' -- /bin/sh -c 'echo @@wirecheck-become-ok'", 30))
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.env(), start_new_session=True)
        try:
            out, err = proc.communicate(f"{self._become_password}\n".encode(), timeout=30)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise CommandTimeout(f"{self.description}: sudo did not answer within 30 s whether it accepts the "
                                 f"password given in {self.become_var}") from None
        result = CommandResult("sudo -S -k true", proc.returncode, _decode(out), _decode(err),
                               time.monotonic() - start)
        _trace(self.description, "sudo -S -k (is the become password accepted?)", False, result)
        self.check_transport(result)
        if proc.returncode == 0 or not SUDO_PASSWORD_REFUSED.search(result.stderr):
            return "ok"
        lines = [x.strip() for x in result.stderr.splitlines() if x.strip()]
        said = next((x for x in lines if "incorrect password attempt" in x), lines[-1] if lines else "")
        return (f"{self.description}: sudo refused the password given in {self.become_var} for "
                f"{self.user or 'the login user'} ({said[:200] or 'Sorry, try again.'}), so nothing that needs "
                f"root could run: correct {self.become_var} in the inventory")

    def run(self, command: str, timeout: float = DEFAULT_TIMEOUT, sudo: bool = False,
            stdin: bytes | None = None) -> CommandResult:
        self.connect()
        if sudo:
            self.check_become()
        with self.slot():
            return self._run(command, timeout, sudo, stdin)

    def slot(self):
        """Where the transport limits how many commands run at once (see SshTransport.slot)."""
        return contextlib.nullcontext()

    def run_batch(self, commands: list[tuple[str, bool, float]]) -> dict[tuple[str, bool], CommandResult]:
        """Several (command, sudo, timeout) in one round trip, side by side on the target: each runs
        exactly as run() would run it (the same wrapping, sudo and time limit on the target), with its
        own stdout, stderr and exit status (wirecheck.batch: one Python runner on the target where it
        has python3, else a POSIX sh script).  Returns the results to be trusted; a command that reached
        its time limit is left out (run() would have given up on it: the caller runs it itself), and
        so is everything when the batch did not run to its end."""
        # a command under a sudo that reads the become password from stdin cannot share the batch's
        # (empty) stdin: it is left out, and runs on its own when its check asks (run() feeds sudo)
        commands = [c for c in commands if not (c[1] and self.sudo_with_password)]
        if not commands:
            return {}
        script = batch_script([(self.wrap(c, sudo), t, sudo and not self.is_root) for c, sudo, t in commands])
        limit = max(t for _c, _s, t in commands) + 5.0
        self.connect()
        start = time.monotonic()
        with self.slot():
            res = self._run_bare(script, limit)
        if res.rc != 0:
            return {}
        got = parse_batch(res.stdout, len(commands))
        out: dict[tuple[str, bool], CommandResult] = {}
        for i, (command, sudo, timeout) in enumerate(commands):
            if i not in got:
                continue
            rc, stdout, stderr, elapsed = got[i]
            _trace(self.description + " (batch)", command, sudo,
                   CommandResult(command, rc, "", "", elapsed if elapsed is not None else -1.0))
            if (elapsed is None and rc in (124, 137)) or (elapsed is not None and elapsed >= timeout):
                continue     # run() would have stopped waiting for it: CommandTimeout, not this result
            out[(command, sudo)] = CommandResult(command, rc, stdout, stderr,
                                                 elapsed if elapsed is not None else time.monotonic() - start)
        return out

    def _run_bare(self, script: str, timeout: float) -> CommandResult:
        """_run without wrap(): the script wraps each of its commands itself."""
        argv = self.argv_for(bounded(script, timeout))
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.env(), start_new_session=True)
        try:
            out, err = proc.communicate(b"", timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return CommandResult(script, -1, "", "timed out", time.monotonic() - start)
        result = CommandResult(script, proc.returncode, _decode(out), _decode(err), time.monotonic() - start)
        _trace(self.description, script, False, result)
        return result

    def _run(self, command: str, timeout: float, sudo: bool, stdin: bytes | None) -> CommandResult:
        argv = self.argv_for(bounded(self.wrap(command, sudo), timeout))
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env(), start_new_session=True)
        try:
            out, err = proc.communicate(self._become_stdin(sudo) + (stdin or b""), timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise CommandTimeout(f"{self.description}: no answer to {command!r} within {timeout:g} s") from None
        result = CommandResult(command, proc.returncode, _decode(out), _decode(err), time.monotonic() - start)
        _trace(self.description, command, sudo, result)
        self.check_transport(result)
        return result

    def popen(self, argv: list[str], sudo: bool = False) -> subprocess.Popen:
        """Start argv on the target with pipes; killing the returned process ends the remote one
        (over SSH: stdin closes, which the programs we start watch for)."""
        self.connect()
        if sudo:
            self.check_become()
        command = shlex.join(argv)
        proc = subprocess.Popen(self.argv_for(self.wrap(command, sudo)), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env(),
                                start_new_session=True)
        first = self._become_stdin(sudo)
        if first and proc.stdin is not None:
            proc.stdin.write(first)
            proc.stdin.flush()
        return proc

    def check_transport(self, result: CommandResult) -> None:
        pass

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass


class LocalTransport(Transport):
    description = "local machine"
    # A UTF-8 locale with C's messages and formats: operators' tools refuse anything else (ansible-core
    # will not start under LC_ALL=C: "Ansible requires the locale encoding to be UTF-8").
    locale = "C.UTF-8"

    def __init__(self) -> None:
        self.is_root = os.geteuid() == 0
        import pwd
        self.user = pwd.getpwuid(os.geteuid()).pw_name

    def argv_for(self, command: str) -> list[str]:
        return ["/bin/sh", "-c", command]


class SshTransport(Transport):
    """OpenSSH client with one master connection per target."""

    def __init__(self, host: str, user: str | None = None, port: int | None = None,
                 identity_file: str | None = None, ssh_config: str | None = None,
                 extra_args: list[str] | None = None, password: str | None = None,
                 connect_timeout: int = CONNECT_TIMEOUT, persist: int = 60):
        self.host, self.user, self.port = host, user, port
        self.identity_file, self.ssh_config = identity_file, ssh_config
        self.extra_args = list(extra_args or [])
        self._password = password
        self.connect_timeout, self.persist = connect_timeout, persist
        self.is_root = user == "root"
        self.description = f"ssh {user + '@' if user else ''}{host}{':' + str(port) if port else ''}"
        self._socket: str | None = None
        self._connected = False
        self._connect_error: str | None = None

    @property
    def control_path(self) -> str:
        """The master's socket, named after what the connection is (user, host, port, key, options):
        the same in every process of a run, so they all find one master per host."""
        if self._socket is None:
            what = repr((self.user, self.host, self.port, self.identity_file, self.ssh_config, self.extra_args,
                         bool(self._password)))
            self._socket = os.path.join(run_dir(), hashlib.sha256(what.encode()).hexdigest()[:20])
        return self._socket

    def base_argv(self) -> list[str]:
        argv = ["sshpass", "-e", "ssh"] if self._password else ["ssh"]
        if self.ssh_config:
            argv += ["-F", self.ssh_config]
        argv += ["-o", f"ConnectTimeout={self.connect_timeout}", "-o", "ServerAliveInterval=5",
                 "-o", "ServerAliveCountMax=3", "-o", f"ControlPath={self.control_path}",
                 "-o", "LogLevel=ERROR"]
        if not self._password:
            argv += ["-o", "BatchMode=yes"]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.user:
            argv += ["-l", self.user]
        if self.identity_file:
            argv += ["-i", os.path.expanduser(self.identity_file), "-o", "IdentitiesOnly=yes"]
        argv += self.extra_args
        return argv

    def env(self) -> dict[str, str] | None:
        if not self._password:
            return None
        env = dict(os.environ)
        env["SSHPASS"] = self._password   # never on a command line
        return env

    def connect(self) -> None:
        if self._connected and os.path.exists(self.control_path):
            return
        self._connected = False      # the master is gone (idle past ControlPersist, or killed): a new one
        if self._connect_error:
            raise Unreachable(self._connect_error)
        if self._password and not shutil.which("sshpass"):
            self._connect_error = f"{self.description}: password login needs sshpass on this machine"
            raise Unreachable(self._connect_error)
        with file_lock(self.control_path + ".lock"):     # one process of the run connects, the others wait
            self._connect_locked()

    def _become_flag(self) -> str | None:
        return self.control_path + ".become" if shared_dir() else None

    def _master_alive(self) -> bool:
        if ssh_mux.master_pid(self.control_path) is not None:
            return True
        try:
            return subprocess.run(self.base_argv() + ["-O", "check", "--", self.host], stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=10, env=self.env(), check=False).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _connect_locked(self) -> None:
        failed = self.control_path + ".unreachable" if shared_dir() else None
        if failed and os.path.exists(failed):            # another process of this run could not connect
            with open(failed, encoding="utf-8") as fh:
                self._connect_error = fh.read()
            raise Unreachable(self._connect_error)
        if os.path.exists(self.control_path):
            if self._master_alive():                     # started by another process of this run
                self._connected = True
                return
            with contextlib.suppress(OSError):           # a dead master's socket: ssh would not replace it
                os.unlink(self.control_path)
        argv = self.base_argv() + ["-M", "-N", "-f", "-o", "ControlMaster=yes",
                                   "-o", f"ControlPersist={self.persist}", "--", self.host]
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, env=self.env(), start_new_session=True)
            try:
                rc = proc.wait(timeout=self.connect_timeout * 2 + 5)
            except subprocess.TimeoutExpired:
                _kill(proc)
                rc = None
            err.seek(0)
            text = _decode(err.read()).strip().splitlines()
        if rc != 0:
            why = text[-1] if text else ("timed out" if rc is None else f"ssh exit {rc}")
            if self._password and rc == 6:        # sshpass: ssh asked whether to trust an unknown host key
                why = (f"the host key of {self.host} is not known to this machine, and a password login cannot "
                       f"answer ssh's question about it (sshpass exit 6): add it with `ssh-keyscan -H {self.host} "
                       ">> ~/.ssh/known_hosts` after checking its fingerprint, or set StrictHostKeyChecking="
                       "accept-new in ansible_ssh_common_args")
            elif self._password and rc == 5:
                why = "the password was refused (sshpass exit 5): check ansible_password / ansible_ssh_pass"
            self._connect_error = f"{self.description}: cannot connect: {why}"
            if failed:
                with contextlib.suppress(OSError), open(failed, "w", encoding="utf-8") as fh:
                    fh.write(self._connect_error)
            raise Unreachable(self._connect_error)
        self._connected = True

    def argv_for(self, command: str) -> list[str]:
        return self.base_argv() + ["-o", "ControlMaster=no", "--", self.host, command]

    def slot(self):
        """At most SESSION_SLOTS commands at once over this host's master, counted across every process
        of the run (pytest-xdist workers share the master): beyond sshd's MaxSessions the server
        refuses the session, and OpenSSH then opens a new connection (a login) for the command."""
        return session_slot(self.control_path, SESSION_SLOTS)

    def check_transport(self, result: CommandResult) -> None:
        if result.rc == 255:
            last = result.stderr.strip().splitlines()
            self._connected = False
            raise Unreachable(f"{self.description}: connection lost: {last[-1] if last else 'ssh exit 255'}")

    def close(self) -> None:
        if is_guest():               # the master belongs to the run's controlling process, which ends it
            self._connected = False
            return
        if self._connected:
            if not ssh_mux.terminate(self.control_path):
                subprocess.run(self.base_argv() + ["-O", "exit", "--", self.host], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=10, env=self.env(), check=False)
            self._connected = False
        if self._socket:
            try:
                os.unlink(self._socket)
            except OSError:
                pass
            self._socket = None
