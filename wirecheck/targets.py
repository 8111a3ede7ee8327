"""Targets: the machines checks run against, from --hosts, --ansible-inventory or the local default."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from .facts import Facts
from .transport import DEFAULT_TIMEOUT, CommandResult, LocalTransport, SshTransport, Transport


class TargetError(Exception):
    """A target specification is wrong (user error: reported in one line)."""


SECRET_KEY = re.compile(r"(pass(word)?|secret|token|_key$|^key$|private_key(?!_file)|vault)", re.I)
HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$")


# ssh options that make the ssh client run a local command or load local code: an inventory value must
# never do that.
COMMAND_OPTIONS = {"proxycommand", "localcommand", "permitlocalcommand", "knownhostscommand", "remotecommand",
                   "match", "pkcs11provider", "securitykeyprovider", "xauthlocation", "include"}


def _ssh_option_key(opt: str) -> str:
    """The keyword of an ``-o`` value as ssh reads it: leading blanks skipped, quotes removed, ended by
    a blank or ``=`` (ssh accepts ``-o ' ProxyCommand=...'`` and ``-o '"ProxyCommand" ...'``)."""
    opt = opt.lstrip(" \t\r\n\f\v")
    if opt.startswith('"'):
        return opt[1:].split('"', 1)[0].lower()
    return re.split(r"[=\s]", opt, maxsplit=1)[0].lower()


# ssh options wirecheck leaves out of an inventory's arguments: it manages the connection sharing
# itself, needs no forwarding (forwardings open listeners on this machine, agent and X11 forwarding
# hand this machine's credentials to the target), and a TTY, a session type or a closed stdin break
# how commands and the port-probe agent talk over the connection. Ansible inventories set some of
# these for Ansible's sake; dropping them changes no verdict.
IGNORED_OPTIONS = {"controlmaster", "controlpath", "controlpersist", "localforward", "remoteforward",
                   "dynamicforward", "forwardagent", "forwardx11", "forwardx11trusted", "gatewayports",
                   "tunnel", "tunneldevice", "permitremoteopen", "requesttty", "sessiontype", "stdinnull",
                   "forkafterauthentication"}
# single-letter flags kept (IPv4/6, compression, quiet, no pty, no X11/agent/GSSAPI delegation, syslog,
# verbose); the others of the same family (-A -X -Y -g -K -t -n -N -f -s -V) are left out, as above
KEPT_FLAGS = set("46CqTxakyv")


def safe_ssh_args(args: list[str], where: str) -> list[str]:
    """Keep ssh arguments that configure the connection; refuse those that run commands; leave out
    those that change what the connection does (IGNORED_OPTIONS)."""
    out: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "-o" or arg.startswith("-o"):
            opt = next(it, "") if arg == "-o" else arg[2:]
            key = _ssh_option_key(opt)
            if key in COMMAND_OPTIONS:
                raise TargetError(f"{where}: ssh option {key} runs a local command; wirecheck refuses it "
                                  "(use ProxyJump for bastions)")
            if key not in IGNORED_OPTIONS:
                out += ["-o", opt]
        elif arg == "-F":
            raise TargetError(f"{where}: an ssh config file (-F) can run local commands (ProxyCommand, "
                              "Match exec); give it with --ssh-config instead")
        elif arg in ("-J", "-p", "-l", "-i"):
            out += [arg, next(it, "")]
        elif re.fullmatch(r"-[46AaCgKkNnqsTtVvXxYy]+", arg):
            kept = "".join(c for c in arg[1:] if c in KEPT_FLAGS)
            if kept:
                out.append("-" + kept)
        else:
            raise TargetError(f"{where}: unsupported ssh argument {arg!r}")
    return out


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key))


PRIVATE_KEY_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----(.*?)-----END \1PRIVATE KEY-----", re.S)


def looks_secret(value: str) -> bool:
    """A value that is a secret whatever its variable is called: a private key, a vault blob."""
    return "PRIVATE KEY-----" in value or value.lstrip().startswith("$ANSIBLE_VAULT;")


def secret_strings(value: str) -> list[str]:
    """What to redact for one secret value: the value, and for a PEM private key also each line of
    its body (a message that quotes one line of the key must not leak that line)."""
    out = [value]
    for m in PRIVATE_KEY_PEM.finditer(value):
        out += [line.strip() for line in m.group(2).splitlines() if len(line.strip()) >= 16]
    return out


def secrets_in(variables: Any, path: str = "") -> list[tuple[str, str]]:
    """(field, value) of every secret in inventory variables, nested dicts and lists included: values
    under a secret-looking key (password, token, ...) and values that look like secrets themselves."""
    found: list[tuple[str, str]] = []
    if isinstance(variables, dict):
        for k, v in variables.items():
            name = f"{path}.{k}" if path else str(k)
            if is_secret_key(str(k)) and isinstance(v, (str, int)) and not isinstance(v, bool) and str(v):
                found += [(name, s) for s in secret_strings(str(v))]
            else:
                found += secrets_in(v, name)
    elif isinstance(variables, list):
        for i, v in enumerate(variables):
            found += secrets_in(v, f"{path}[{i}]")
    elif isinstance(variables, str) and looks_secret(variables):
        found += [(path, s) for s in secret_strings(variables)]
    return found


def valid_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
        return True
    except ValueError:
        return bool(HOSTNAME.match(value))


class HostQuiet:
    """Between this run's commands on one host (shared: any number at once) and a measurement that
    needs the host to itself (exclusive: the port probe, whose listener would report the UDP port of
    our own DNS lookup as a port in use).  Threads of this process, and with pytest-xdist the
    processes of the run (flock on a file in the run directory).  A waiting exclusive holder goes
    before new shared ones in this process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._owner: int | None = None

    def _path(self) -> str | None:
        from .transport import shared_dir
        store = shared_dir()
        if store is None:
            return None
        return os.path.join(store, "quiet-" + re.sub(r"[^A-Za-z0-9_.-]", "_", self.name)[:80] + ".lock")

    @contextlib.contextmanager
    def shared(self):
        me = threading.get_ident()
        if self._owner == me:        # the exclusive holder's own commands
            yield
            return
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        fd = self._flock(fcntl.LOCK_SH)
        try:
            yield
        finally:
            if fd is not None:
                os.close(fd)
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self):
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
            self._owner = threading.get_ident()
        fd = self._flock(fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fd is not None:
                os.close(fd)
            with self._cond:
                self._writer = False
                self._owner = None
                self._cond.notify_all()

    def _flock(self, how: int) -> int | None:
        path = self._path()
        if path is None:
            return None
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, how)
        return fd


@dataclass
class Target:
    name: str
    address: str
    roles: list[str]
    # not in repr(): report tools (Allure's parameters, pytest's --showlocals) print a target with it,
    # and the inventory variables hold passwords
    transport: Transport = field(repr=False)
    vars: dict[str, Any] = field(default_factory=dict, repr=False)
    local: bool = False
    #: time limit of a command that does not set its own (--command-timeout)
    command_timeout: float = field(default=DEFAULT_TIMEOUT, repr=False)

    def __post_init__(self) -> None:
        self.facts = Facts(self)
        self._host = None
        self._prefetched: dict[tuple[str, bool], CommandResult] = {}
        self._prefetching: dict[tuple[str, bool], threading.Event] = {}
        self._prefetch_lock = threading.Lock()

    def run(self, command: str, timeout: float | None = None, sudo: bool = False,
            stdin: bytes | None = None) -> CommandResult:
        if stdin is None and self._prefetching:
            got = self._take_prefetched(command, sudo)
            if got is not None:
                return got
        with self.quiet.shared():
            return self.transport.run(command, timeout=self.command_timeout if timeout is None else timeout,
                                      sudo=sudo, stdin=stdin)

    @property
    def quiet(self) -> HostQuiet:
        """Commands share the host; a measurement that must not see our own commands' sockets (the
        port probe) has it to itself (HostQuiet)."""
        q = self.__dict__.get("_quiet")
        if q is None:
            q = self.__dict__.setdefault("_quiet", HostQuiet(self.name))
        return q

    def prefetch(self, commands: list[tuple[str, bool, float | None]], batch=None) -> int:
        """Run (command, sudo, timeout) that checks will ask for, all in one round trip (see
        Transport.run_batch), before they ask: the first run() of each then returns its result (once;
        a second run() of the same command runs it again).  A check that asks while the batch runs
        waits for it; a command the batch could not answer for runs on its own when asked.  Returns
        how many results are kept.  ``batch(todo)`` runs them (default: Transport.run_batch; a run
        under pytest-xdist shares one batch per host between its processes)."""
        todo: list[tuple[str, bool, float]] = []
        with self._prefetch_lock:
            for command, sudo, timeout in commands:
                key = (command, sudo)
                if key in self._prefetching or any(key == (c, s) for c, s, _t in todo):
                    continue
                self._prefetching[key] = threading.Event()
                todo.append((command, sudo, self.command_timeout if timeout is None else timeout))
        if not todo:
            return 0
        got: dict[tuple[str, bool], CommandResult] = {}
        try:
            with self.quiet.shared():
                got = (batch or self.transport.run_batch)(todo)
        except Exception:  # noqa: BLE001 - unreachable and the like: each check meets it when it asks
            got = {}
        finally:
            with self._prefetch_lock:
                for command, sudo, _t in todo:
                    key = (command, sudo)
                    if key in got:
                        self._prefetched[key] = got[key]
                    self._prefetching[key].set()
        return len(got)

    def wait_prefetched(self) -> None:
        """Until no batch of prefetched commands runs on this target."""
        with self._prefetch_lock:
            events = list(self._prefetching.values())
        for event in events:
            event.wait()

    def prefetched(self, command: str, sudo: bool = False) -> CommandResult | None:
        """A prefetched command's result (waiting for its batch), taken once; None when it was not
        prefetched or its batch could not answer for it (the caller then decides what to run)."""
        if not self._prefetching:
            return None
        return self._take_prefetched(command, sudo)

    def _take_prefetched(self, command: str, sudo: bool) -> CommandResult | None:
        key = (command, sudo)
        with self._prefetch_lock:
            event = self._prefetching.get(key)
        if event is None:
            return None
        event.wait()      # the batch has time limits of its own (the longest command's, plus 5 s)
        with self._prefetch_lock:
            self._prefetching.pop(key, None)
            return self._prefetched.pop(key, None)

    END_MARK = "@@wirecheck-end"

    def run_marked(self, command: str, what: str, timeout: float | None = None, sudo: bool = False) -> CommandResult:
        """command, whose output is trusted only when the shell got to its end: a marker line with the
        command's exit status closes the output. Returns the result with that inner exit status and
        the output without the marker. No marker (nothing ran, the shell or sudo failed, the output
        is something else) raises CannotMeasure: for commands whose empty output means "none found",
        an empty answer is not taken for "none"."""
        from .outcome import CannotMeasure
        res = self.run(f"{{ {command}\n}}; printf '\\n%s %s\\n' {self.END_MARK} \"$?\"", timeout=timeout, sudo=sudo)
        m = re.search(rf"\n{self.END_MARK} (\d+)\n?$", res.stdout)
        if res.rc != 0 or not m:
            why = (res.stderr.strip().splitlines() or [repr(res.stdout.strip()[:80]) if res.stdout.strip()
                                                        else "no output"])[-1]
            raise CannotMeasure(f"{what}: the command did not run to its end on {self.name}"
                                f"{' with sudo' if sudo else ''} (exit {res.rc}): {why[:200]}")
        out = res.stdout[:m.start()]
        return CommandResult(command, int(m.group(1)), out, res.stderr, res.duration)

    def popen(self, argv: list[str], sudo: bool = False):
        return self.transport.popen(argv, sudo=sudo)

    def read_file(self, path: str, timeout: float | None = None, sudo: bool = False) -> str | None:
        """The file's text; None only when the file does not exist. Any other failure to read it
        (permission denied, no cat, sudo refused, ...) raises CannotMeasure with cat's own words:
        an unreadable file is never taken for a missing or an empty one."""
        import shlex

        from .outcome import CannotMeasure
        res = self.run(f"cat -- {shlex.quote(path)}", timeout=timeout, sudo=sudo)
        if res.rc == 0:
            return res.stdout
        err = res.stderr.strip().splitlines()
        if res.rc == 1 and err and err[-1].endswith("No such file or directory") and len(err) == 1:
            return None
        raise CannotMeasure(f"cannot read {path} on {self.name}{' with sudo' if sudo else ''}: "
                            f"{err[-1] if err else f'cat exited {res.rc}'}")

    @property
    def user(self) -> str | None:
        return self.vars.get("ansible_user") or self.transport.user

    @property
    def host(self):
        """The testinfra Host for this target (for checks that want testinfra's modules)."""
        if self._host is None:
            import testinfra
            t = self.transport
            if isinstance(t, SshTransport):
                spec = f"ssh://{t.user + '@' if t.user else ''}{t.host}{':' + str(t.port) if t.port else ''}"
                t.connect()
                extra = " ".join(["-o ControlMaster=no", f"-o ControlPath={t.control_path}"] + t.extra_args)
                self._host = testinfra.get_host(spec, ssh_identity_file=t.identity_file,
                                                ssh_config=t.ssh_config, ssh_extra_args=extra, controlpersist=0)
            else:
                self._host = testinfra.get_host("local://")
        return self._host

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "roles": list(self.roles)}

    def close(self) -> None:
        self.transport.close()


def local_target(roles: list[str]) -> Target:
    import socket
    return Target(name="localhost", address=socket.gethostname(), roles=roles, transport=LocalTransport(),
                  local=True)


def target_from_spec(spec: str, roles: list[str], identity_file: str | None = None,
                     ssh_config: str | None = None, extra_args: list[str] | None = None,
                     connect_timeout: int = 8) -> Target:
    """A testinfra-style host spec: ``ssh://user@host:port``, ``paramiko://…``, ``local://`` or ``host``."""
    spec = spec.strip()
    if not spec:
        raise TargetError("empty host in --hosts")
    if spec in ("local://", "local", "localhost", "local://localhost"):
        return local_target(roles)
    if "://" not in spec:
        spec = "ssh://" + spec
    try:
        parts = urlsplit(spec)
    except ValueError as exc:           # "Invalid IPv6 URL" and friends: a user error, in one line
        raise TargetError(f"--hosts {spec}: {exc}") from None
    if parts.scheme not in ("ssh", "paramiko", "safe-ssh"):
        raise TargetError(f"--hosts {spec}: unsupported connection {parts.scheme!r} (use ssh:// or local://)")
    try:
        port = parts.port
    except ValueError:
        raise TargetError(f"--hosts {spec}: bad port") from None
    host = parts.hostname or ""
    if not host or not valid_address(host):
        raise TargetError(f"--hosts {spec}: {host!r} is not a host name or IP address")
    user = unquote(parts.username) if parts.username else None
    if user is not None and not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", user):
        raise TargetError(f"--hosts {spec}: {user!r} is not a valid user name")
    password = unquote(parts.password) if parts.password else None
    transport = SshTransport(host, user=user, port=port, identity_file=identity_file, ssh_config=ssh_config,
                             extra_args=extra_args, password=password, connect_timeout=connect_timeout)
    return Target(name=host, address=host, roles=roles, transport=transport,
                  vars={"ansible_user": user} if user else {})
