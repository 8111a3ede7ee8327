"""Example values left in an operator's inventories and Helm values: the vocabulary of Wire's own templates.

The shapes below are those wire-server-deploy's templates use where the operator must put a value of
their own (read at commit 682349dc9df15ca1db6dd1e93d3c4a02d9152502):

* ``<some password>``, ``<some_user>`` (``ansible/inventory/offline/99-static``), ``"<public key>"``,
  ``"<private key>"``, ``"<username>:<htpasswd-hashed-password>"`` (``values/*/prod-secrets.example.yaml``):
  a word or words in angle brackets -- not a regular expression's named group such as ``(?<time>...)``
  (fluent-bit's parsers), which is excluded;
* ``CHANGEME-PROD``, ``CHANGEME-DEMO``, ``CHANGEMEE6KHMJ...`` (a secret that starts with it), ``changeme``,
  and the docs' ``CHANGE-ME``;
* ``assethost_ip``, ``kubenode1_ip`` ... as ``ansible_host`` (``offline/staging.yml``);
* ``example.com`` as a domain or an ``ansible_host`` (``demo/host.yml``, every values example),
  ``X.X.X.X`` / ``Y.Y.Y.Y`` and ``ADD-VALID-ADDRESS-HERE`` (the docs' host and e-mail placeholders);
* and, given the checkout (``--wire-server-deploy``), every secret of a chart's
  ``{demo,prod}-secrets.example.yaml`` that an operator's ``secrets.yaml`` still holds verbatim
  (``verysecurepassword``, ``dummysecret`` ...): derived from the templates themselves at run time.

Comments are not read (Wire's templates explain themselves with ``# CHANGEME-PROD: ...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("a value in angle brackets (<...>)", re.compile(r"(?<![?\w(<])<[A-Za-z][A-Za-z0-9 _.-]*>(?![\w>])")),
    ("CHANGEME", re.compile(r"(?<![A-Za-z0-9])CHANGE[-_]?ME[A-Za-z0-9_-]*", re.I)),
    ("a host placeholder as ansible_host", re.compile(
        r"\bansible_(?:ssh_)?host\s*[:=]\s*[\"']?([A-Za-z][A-Za-z0-9-]*_ip)[\"']?\s*(?:$|\s)")),
    ("example.com", re.compile(r"(?<![\w.-])(?:[\w-]+\.)*example\.com(?![\w-])", re.I)),
    ("X.X.X.X", re.compile(r"(?<![\w.])[XY]\.[XY]\.[XY]\.[XY](?![\w.])")),
    ("ADD-VALID-ADDRESS-HERE", re.compile(r"ADD-VALID-ADDRESS-HERE", re.I)),
]


@dataclass
class Hit:
    path: str
    line: int
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text} ({self.kind})"


def _code(line: str) -> str:
    """The line without its comment (a # that starts the line or follows a blank, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def scan_text(path: str, text: str, literals: list[str] = ()) -> list[Hit]:
    hits: list[Hit] = []
    for n, line in enumerate(text.splitlines(), 1):
        code = _code(line)
        for kind, rx in PATTERNS:
            for m in rx.finditer(code):
                hits.append(Hit(path, n, kind, m.group(1) if m.groups() else m.group(0)))
        for word in literals:
            if not any(h.line == n and word.lower() in h.text.lower() for h in hits) and re.search(
                    r"(?<![\w.-])" + re.escape(word) + r"(?![\w-])", code, re.I):
                hits.append(Hit(path, n, "a catalog placeholder", word))
    return hits


SECRET_LEAF = re.compile(r"(pass|secret|token|key|cert)", re.I)


def _scalars(node: Any, prefix: str = "") -> dict[str, tuple[str, int]]:
    """key path -> (scalar value, line) of a composed YAML document."""
    import yaml

    out: dict[str, tuple[str, int]] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out.update(_scalars(value, f"{prefix}.{key.value}" if prefix else str(key.value)))
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            out.update(_scalars(value, f"{prefix}[{i}]"))
    elif isinstance(node, yaml.ScalarNode):
        out[prefix] = (str(node.value), node.start_mark.line + 1)
    return out


def example_secrets_kept(secrets_file: Path) -> list[Hit]:
    """Secrets of the chart's shipped example (``*-secrets.example.yaml`` beside it) still in ``secrets.yaml``:
    a value under a key such as password, secretKey, privateKeys, tlsWildcardCert equal to the example's."""
    import yaml

    examples = sorted(secrets_file.parent.glob("*-secrets.example.yaml"))
    if not examples:
        return []
    try:
        ours = _scalars(yaml.compose(secrets_file.read_text(encoding="utf-8", errors="replace")))
    except (OSError, yaml.YAMLError):
        return []
    shipped: dict[tuple[str, str], str] = {}
    for example in examples:
        try:
            for key, (value, _line) in _scalars(yaml.compose(example.read_text(encoding="utf-8"))).items():
                if len(value) >= 4:
                    shipped.setdefault((key, value), example.name)
        except (OSError, yaml.YAMLError):
            continue
    hits = []
    for key, (value, line) in ours.items():
        leaf = re.split(r"[.\[]", key)[-1]
        if SECRET_LEAF.search(leaf) and (key, value) in shipped:
            hits.append(Hit(str(secrets_file), line, f"the example secret of {shipped[(key, value)]}",
                            f"{key} = {value[:4]}..."))
    return hits


def inventory_files(inventory: Path) -> list[Path]:
    """The inventory and what Ansible reads beside it: group_vars/ and host_vars/."""
    if inventory.is_dir():
        return sorted(p for p in inventory.rglob("*") if p.is_file())
    files = [inventory]
    for sub in ("group_vars", "host_vars"):
        d = inventory.parent / sub
        if d.is_dir():
            files += sorted(p for p in d.rglob("*") if p.is_file() and p.suffix in ("", ".yml", ".yaml", ".json"))
    return files


def values_files(values_dir: Path) -> list[Path]:
    return sorted(list(values_dir.glob("*/values.yaml")) + list(values_dir.glob("*/secrets.yaml")))


def scan(files: list[Path], literals: list[str] = ()) -> tuple[list[Hit], list[str]]:
    """(hits, files that could not be read)."""
    hits: list[Hit] = []
    unreadable: list[str] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            unreadable.append(f"{path}: {exc.strerror or exc}")
            continue
        hits += scan_text(str(path), text, literals)
        if path.name == "secrets.yaml":
            seen = {h.line for h in hits if h.path == str(path)}
            hits += [h for h in example_secrets_kept(path) if h.line not in seen]
    return hits, unreadable
