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


def _plain(value: Any) -> Any:
    """Ansible's own types (vault strings, unsafe text) to plain Python."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if type(value).__name__ == "AnsibleVaultEncryptedUnicode":
        return "<vault-encrypted>"
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


@dataclass
class Inventory:
    hosts: dict[str, dict[str, Any]]         # name -> vars, as `ansible-inventory --host NAME` shows them
    groups: dict[str, list[str]]             # group -> host names
    all_vars: dict[str, Any]
    #: name -> the connection settings Ansible's ssh connection and sudo become plugins would use (their
    #: own variable names and aliases, the last one set winning as in Ansible; Jinja templates rendered)
    connection: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str = ""

    def groups_of(self, host: str) -> list[str]:
        return sorted(g for g, members in self.groups.items() if host in members and g not in ("all", "ungrouped"))


#: what `ansible-inventory --host` leaves out of a host's variables (ansible/cli/inventory.py INTERNAL_VARS)
INTERNAL_VARS = frozenset(["ansible_diff_mode", "ansible_config_file", "ansible_facts", "ansible_forks",
                           "ansible_inventory_sources", "ansible_limit", "ansible_playbook_python",
                           "ansible_run_tags", "ansible_skip_tags", "ansible_verbosity", "ansible_version",
                           "inventory_dir", "inventory_file", "inventory_hostname", "inventory_hostname_short",
                           "groups", "group_names", "omit", "playbook_dir"])
#: connection settings wirecheck uses: (plugin type, plugin, option) -> our key
CONNECTION_OPTIONS = {("connection", "ssh", "host"): "host", ("connection", "ssh", "remote_user"): "user",
                      ("connection", "ssh", "port"): "port", ("connection", "ssh", "password"): "password",
                      ("connection", "ssh", "private_key_file"): "key",
                      ("connection", "ssh", "ssh_common_args"): "common_args",
                      ("connection", "ssh", "ssh_extra_args"): "extra_args",
                      ("become", "sudo", "become_user"): "become_user", ("become", "sudo", "become_pass"): "become_pass"}
_OPTION_VARS: dict[tuple[str, str, str], list[str]] = {}


def option_vars() -> dict[tuple[str, str, str], list[str]]:
    """Each connection option's variable names, in Ansible's order (the last one set wins), from the
    plugins' own documentation: ansible_user then ansible_ssh_user, ansible_password then ansible_ssh_pass..."""
    if not _OPTION_VARS:
        from ansible import constants as C
        from ansible.plugins.loader import become_loader, connection_loader
        connection_loader.get("ssh", class_only=True)
        become_loader.get("sudo", class_only=True)
        for (kind, plugin, option) in CONNECTION_OPTIONS:
            defs = C.config.get_configuration_definitions(kind, plugin)
            _OPTION_VARS[(kind, plugin, option)] = [v["name"] for v in defs[option].get("vars", [])
                                                    if v["name"].isidentifier()]
    return _OPTION_VARS


def _connection_settings(name: str, hv: dict[str, Any], template) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, names in option_vars().items():
        value, source = None, None
        for var in names:                                   # Ansible's ConfigManager: the last one set wins
            if var == "inventory_hostname":
                value, source = name, var
            elif hv.get(var) is not None:
                value, source = hv[var], var
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            value = template(source, value)
        out[CONNECTION_OPTIONS[key]] = value
        out[CONNECTION_OPTIONS[key] + "_var"] = source
    for var in ("ansible_connection", "ansible_become", "ansible_become_method"):
        value = hv.get(var)
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            value = template(var, value)
        out[var] = value
    return out


def load_inventory(path: str) -> Inventory:
    """Parse an inventory with Ansible's own code (any format Ansible reads), its variables through Ansible's
    VariableManager (group_vars/ and host_vars/ beside it included, with Ansible's precedence)."""
    if not os.path.exists(path):
        raise TargetError(f"--ansible-inventory {path}: no such file")
    os.environ.setdefault("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True")
    os.environ.setdefault("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "True")
    os.environ.setdefault("ANSIBLE_LOCALHOST_WARNING", "False")
    os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
    try:
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager
    except ImportError as exc:  # pragma: no cover - ansible-core is a dependency
        raise TargetError(f"ansible-core is needed to read inventories: {exc}") from None
    import contextlib
    import io
    loader = DataLoader()
    noise = io.StringIO()
    try:
        # Ansible prints a warning per inventory plugin it tried; keep them for the one-line error.
        with contextlib.redirect_stderr(noise), contextlib.redirect_stdout(noise):
            inv = InventoryManager(loader=loader, sources=[path])
            variables = VariableManager(loader=loader, inventory=inv)
    except Exception as exc:  # AnsibleError and assorted types on malformed sources
        raise TargetError(f"--ansible-inventory {path}: not a valid Ansible inventory: "
                          f"{_inventory_reason(path, noise.getvalue(), exc)}") from None
    hosts: dict[str, dict[str, Any]] = {}
    connection: dict[str, dict[str, Any]] = {}
    for host in inv.get_hosts():
        name = _plain(host.name)
        try:
            with contextlib.redirect_stderr(noise), contextlib.redirect_stdout(noise):
                full = variables.get_vars(host=host, include_hostvars=False, stage="all")
        except Exception as exc:  # a broken group_vars file: Ansible's own words
            raise TargetError(f"--ansible-inventory {path}: cannot read the variables of {name}: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
        hv = {k: v for k, v in full.items() if k not in INTERNAL_VARS}

        def template(var: str, value: str, host=host, name=name) -> Any:
            from ansible.template import Templar
            try:
                with contextlib.redirect_stderr(noise), contextlib.redirect_stdout(noise):
                    context = variables.get_vars(host=host, include_hostvars=True, stage="all")
                    return Templar(loader=loader, variables=context).template(value)
            except Exception as exc:  # undefined variable, syntax error: as Ansible would stop
                raise TargetError(f"host {name}: {var} cannot be rendered as Ansible would: "
                                  f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None

        hosts[name] = _plain(hv)
        connection[name] = _plain(_connection_settings(name, hv, template))
    groups = {_plain(name): [_plain(h.name) for h in group.get_hosts()] for name, group in inv.groups.items()}
    all_vars = _plain(inv.groups["all"].get_vars()) if "all" in inv.groups else {}
    if not hosts:
        raise TargetError(f"--ansible-inventory {path}: the inventory has no hosts")
    return Inventory(hosts=hosts, groups=groups, all_vars=all_vars, connection=connection, path=str(path))


def _inventory_reason(path: str, warnings: str, exc: Exception) -> str:
    """The one parser complaint that matters: the YAML one for .yml files, else the INI one."""
    found = dict(re.findall(r"Failed to parse inventory with '(\w+)' plugin: ([^\n]+)", warnings))   # 2.19
    for plugin, text in re.findall(r"Failed to parse\s.*?\swith\s+(\w+)\s+plugin:\s*(.*?)(?=\n\[WARNING\]|\Z)", warnings,
                                   re.S):                               # ansible-core 2.16: wrapped lines
        text = " ".join(text.split())
        found.setdefault(plugin, text.split("these are the errors we got from each: ")[-1])
    plugin = "yaml" if path.endswith((".yml", ".yaml")) else "ini"
    why = found.get(plugin) or found.get("auto") or next(iter(found.values()), None)
    if why:
        return why.strip()
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def inventory_kind(inv: Inventory) -> str:
    """Which of wire-server-deploy's inventories this is: "wiab-staging" (demo/wiab-staging.yml: one
    adminhost that runs the staging VMs), "demo" (demo/host.yml: Wire-in-a-Box on one deploy node),
    "production" (offline/99-static, offline/staging.yml, dmz-k8s/hosts.ini), or "unknown"."""
    groups = set(inv.groups)
    if "wiab-staging" in groups:
        return "wiab-staging"
    if "deploy_node" in inv.hosts and any("private_deployment" in hv and not hv.get("target_domain")
                                          for hv in inv.hosts.values()):
        return "wiab-staging"
    if infer_profile(inv) == "production":
        return "production"
    if "deploy_node" in inv.hosts or "deploy_node" in groups or "wiab" in groups:
        return "demo"
    return "unknown"


def infer_profile(inv: Inventory) -> str:
    production_groups = {"kube-node", "kube-master", "etcd", "cassandra", "elasticsearch", "minio",
                         "restund", "k8s-cluster", "postgresql", "assethost"}
    if production_groups & set(inv.groups):
        return "production"
    return "demo"


@dataclass
class SshOverrides:
    """testinfra's --ssh-config / --ssh-identity-file / --ssh-extra-args, given on the command line: they
    apply to inventory targets too and win over the inventory's own settings."""

    ssh_config: str | None = None
    identity_file: str | None = None
    extra_args: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in (("--ssh-config", self.ssh_config), ("--ssh-identity-file", self.identity_file),
                                  ("--ssh-extra-args", " ".join(self.extra_args) or None)) if v}


def targets_from_inventory(inv: Inventory, profile: str, connect_timeout: int = 8,
                           overrides: SshOverrides | None = None) -> list[Target]:
    import shlex
    overrides = overrides or SshOverrides()
    out = []
    for name, hv in inv.hosts.items():
        roles = inv.groups_of(name)
        if name not in roles:
            roles.append(name)     # the demo's host is itself the role: deploy_node
        if profile == "demo" and "deploy_node" not in roles and len(inv.hosts) == 1:
            roles.append("deploy_node")
        conn = inv.connection.get(name) or {}
        address = str(conn.get("host") or hv.get("ansible_host") or name)
        connection = conn.get("ansible_connection") or hv.get("ansible_connection", "ssh")
        if connection == "local":
            t = local_target(roles)
            t.name, t.vars = name, hv
            _become(t.transport, name, conn)
            out.append(t)
            continue
        if connection not in ("ssh", "smart", "paramiko", "paramiko_ssh"):
            raise TargetError(f"host {name}: ansible_connection {connection!r} is not supported (ssh or local)")
        if not valid_address(address):
            raise TargetError(f"host {name}: {conn.get('host_var') or 'ansible_host'} {address!r} is not a host "
                              "name or IP address")
        port = conn.get("port", hv.get("ansible_port"))
        try:
            port = int(port) if port not in (None, "") else None
        except (TypeError, ValueError):
            raise TargetError(f"host {name}: {conn.get('port_var') or 'ansible_port'} {port!r} is not a number") from None
        extra: list[str] = list(overrides.extra_args)     # ssh takes the first value of an option: ours first
        for key, var in (("common_args", "ansible_ssh_common_args"), ("extra_args", "ansible_ssh_extra_args")):
            value = conn.get(key, hv.get(var))
            if value:
                try:
                    extra += safe_ssh_args(shlex.split(str(value)), f"host {name}: {var}")
                except ValueError:
                    raise TargetError(f"host {name}: {var} cannot be parsed") from None
        password = conn.get("password") if conn else (hv.get("ansible_ssh_pass") or hv.get("ansible_password"))
        user = conn.get("user") if conn else hv.get("ansible_user")
        if user is not None and not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", str(user)):
            raise TargetError(f"host {name}: {conn.get('user_var') or 'ansible_user'} {user!r} is not a valid user name")
        become_method = conn.get("ansible_become_method")
        if become_method not in (None, "", "sudo"):
            raise TargetError(f"host {name}: ansible_become_method {become_method!r}: wirecheck gains root with "
                              "sudo only")
        become_user = conn.get("become_user")
        if become_user not in (None, "", "root"):
            raise TargetError(f"host {name}: {conn.get('become_user_var')} {become_user!r}: wirecheck's checks "
                              "need root (become_user root)")
        key = overrides.identity_file or (conn.get("key") if conn else (
            hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")))
        transport = SshTransport(address, user=str(user) if user else None, port=port,
                                 identity_file=str(key) if key else None, ssh_config=overrides.ssh_config,
                                 extra_args=extra, password=str(password) if password else None,
                                 connect_timeout=connect_timeout)
        _become(transport, name, conn)
        out.append(Target(name=name, address=address, roles=roles, transport=transport, vars=hv))
    return out


def _become(transport: Transport, name: str, conn: dict[str, Any]) -> None:
    """The inventory's become password (ansible_become_pass, ansible_become_password, ansible_sudo_pass:
    the last one set wins, as in Ansible) for sudo -S on this host."""
    password = conn.get("become_pass")
    if password in (None, ""):
        return
    var = conn.get("become_pass_var") or "ansible_become_pass"
    if password == "<vault-encrypted>":
        transport.refuse_become(f"host {name}: {var} is encrypted with Ansible Vault, which wirecheck does not "
                                "decrypt, so nothing that needs root could run: give the password in clear in a "
                                "copy of the inventory kept for the check, or let the login user sudo without one")
        return
    try:
        transport.use_become_password(str(password), var)
    except ValueError as exc:
        raise TargetError(f"host {name}: {exc}") from None
