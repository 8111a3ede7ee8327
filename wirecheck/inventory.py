"""Ansible inventories: what Ansible itself reads of them (its inventory and variable managers), which of
Wire's layouts one is, and the targets its hosts become (connection settings with Ansible's names)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from .targets import Target, TargetError, local_target, safe_ssh_args, valid_address
from .transport import SshTransport, Transport


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
