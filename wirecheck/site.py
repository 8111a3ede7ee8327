"""Site settings: what the run is about (profile, phase, domain, addresses, inputs)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .targets import Target

DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$", re.I)


class SiteError(Exception):
    """A site setting given by the user is wrong (reported in one line)."""


def check_domain(value: str, where: str = "--domain") -> str:
    value = value.strip().rstrip(".").lower() if isinstance(value, str) else value
    if not isinstance(value, str) or not DOMAIN.match(value):
        raise SiteError(f"{where} {value!r} is not a valid domain name (expected e.g. wire.example.org)")
    return value


def check_ipv4(value: str, where: str = "--wire-ip") -> str:
    try:
        return str(ipaddress.IPv4Address(str(value).strip()))
    except ValueError:
        raise SiteError(f"{where} {value!r} is not an IPv4 address") from None


def parse_nameserver(value: str) -> tuple[str, int]:
    value = value.strip()
    host, port = value, 53
    m = re.match(r"^\[([0-9a-fA-F:]+)\](?::(\d+))?$", value)
    if m:
        host, port = m.group(1), int(m.group(2) or 53)
    elif value.count(":") == 1:
        host, _, p = value.partition(":")
        if not p.isdigit():
            raise SiteError(f"--nameserver {value!r}: port must be a number")
        port = int(p)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise SiteError(f"--nameserver {value!r} is not an IP address (IP or IP:port)") from None
    if not 0 < port < 65536:
        raise SiteError(f"--nameserver {value!r}: port out of range")
    return host, port


def file_secrets(kubeconfig: str | None = None, tls_key: str | None = None) -> list[tuple[str, str]]:
    """(field, value) of the secrets in the files the user hands over: a kubeconfig's tokens,
    passwords and client keys, and the --tls-key private key.  None of them may reach a report."""
    from .targets import secret_strings, secrets_in
    found: list[tuple[str, str]] = []
    if kubeconfig:
        try:
            import base64

            import yaml
            doc = yaml.safe_load(Path(kubeconfig).read_text(encoding="utf-8", errors="replace"))
        except (OSError, ValueError, yaml.YAMLError):
            doc = None
        found += secrets_in(doc if isinstance(doc, dict) else {}, "kubeconfig")
        for user in (doc or {}).get("users") or [] if isinstance(doc, dict) else []:
            data = (user.get("user") or {}).get("client-key-data") if isinstance(user, dict) else None
            if isinstance(data, str) and data:   # base64 of a PEM private key
                name = f"kubeconfig.users.{user.get('name')}.client-key-data"
                found.append((name, data))
                try:
                    found += [(name, s) for s in secret_strings(base64.b64decode(data).decode("ascii"))]
                except (ValueError, UnicodeDecodeError):
                    pass
    if tls_key:
        try:
            text = Path(tls_key).read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        if text:
            found += [("--tls-key", s) for s in secret_strings(text)]
    return [(n, v) for n, v in found if len(v) >= 4]


@dataclass
class Site:
    profile: str
    phase: str
    targets: list[Target]
    vars: dict[str, Any] = field(default_factory=dict)
    domain: str | None = None
    wire_ip: str | None = None
    nameservers: list[tuple[str, int]] = field(default_factory=list)
    ca_bundle: str | None = None
    kubeconfig: str | None = None
    report_dir: Path = Path("reports/latest")
    inventory_path: str | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    redacted_fields: list[str] = field(default_factory=list)
    site_packs: list[Any] = field(default_factory=list)     # sitepacks.SitePack: the site's own checks
    #: --ssh-config / --ssh-identity-file / --ssh-extra-args that override the inventory's settings
    ssh_overrides: dict[str, Any] = field(default_factory=dict)
    #: which wire-server-deploy inventory this is (demo, production, unknown; see inventory.inventory_kind)
    inventory_kind: str | None = None

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def targets_with_role(self, *roles: str) -> list[Target]:
        return [t for t in self.targets if set(roles) & set(t.roles)]

    @property
    def use_cert_manager(self) -> bool:
        value = self.vars.get("use_cert_manager", self.profile == "demo")
        return value if isinstance(value, bool) else str(value).lower() in ("true", "yes", "1")
