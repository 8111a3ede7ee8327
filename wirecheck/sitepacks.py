"""Site packs: a site's own requirements and checks, judged and reported exactly like Wire's.

A pack is a directory with a ``catalog.yaml`` (entries under ``requirements:``) and ``test_*.py``
files whose checks are marked ``@requirement("<PREFIX>-...")``.  Packs come from ``--checks DIR``
(repeatable) and from installed packages that register a module in the ``wirecheck.checks``
entry-point group (the module's directory is the pack).

The pack's entries join the catalog before collection; its checks are collected through the
anchor modules ``suites/<phase>/test_site_packs.py``, so they run under the same plugin, fixtures,
verdicts, waivers, reports and signatures as Wire's own checks.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from .catalog import Catalog, CatalogError, build_requirement, validate_entries

ENTRY_POINT_GROUP = "wirecheck.checks"
#: a pack's IDs: its own prefix, then words (ACME-NTP-INTERNAL)
PACK_ID = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$")
#: prefixes that belong to Wire's catalog: a pack may not take them
_RESERVED_PREFIXES_OF = re.compile(r"^([A-Z0-9]+)-")


@dataclass
class SitePack:
    name: str
    path: Path
    prefix: str
    ids: tuple[str, ...]
    origin: str             # "--checks DIR" or "entry point NAME"


def _reserved_prefixes(catalog: Catalog) -> set[str]:
    out = set()
    for rid in catalog.requirements:
        m = _RESERVED_PREFIXES_OF.match(rid)
        if m:
            out.add(m.group(1))
    return out


def pack_dirs(options: list[str], use_entry_points: bool = True) -> list[tuple[Path, str]]:
    """The packs of this run: each --checks DIR, then each installed entry point's module directory."""
    found: list[tuple[Path, str]] = []
    for opt in options:
        path = Path(opt).expanduser()
        if not path.is_dir():
            raise CatalogError(f"--checks {opt}: no such directory")
        found.append((path.resolve(), f"--checks {opt}"))
    if use_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken installed pack is a user error: one line
                raise CatalogError(f"site pack entry point {ep.name!r} ({ep.value}) cannot be loaded: {exc}") from None
            if isinstance(obj, ModuleType):
                where = Path(obj.__file__ or "").parent
            elif callable(obj):
                where = Path(obj())
            else:
                where = Path(str(obj))
            found.append((where.resolve(), f"entry point {ep.name}"))
    seen: set[Path] = set()
    unique = []
    for path, origin in found:
        if path not in seen:
            seen.add(path)
            unique.append((path, origin))
    return unique


def load_pack(path: Path, origin: str, catalog: Catalog) -> SitePack:
    """Read and validate a pack's catalog.yaml and add its entries to ``catalog``."""
    cat_file = path / "catalog.yaml"
    try:
        data = yaml.safe_load(cat_file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise CatalogError(f"site pack {path} ({origin}): cannot read catalog.yaml: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"site pack {cat_file}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("requirements"), dict) or not data["requirements"]:
        raise CatalogError(f"site pack {cat_file}: needs a mapping `requirements:` with at least one entry")
    entries: dict[str, Any] = data["requirements"]
    validate_entries(entries, str(cat_file), pack=True)
    prefix = str(data.get("prefix") or "")
    reserved = _reserved_prefixes(catalog)
    for rid in entries:
        if not PACK_ID.match(rid):
            raise CatalogError(f"site pack {cat_file}: ID {rid!r} is not of the form PREFIX-NAME (capitals, digits, dashes)")
        if rid in catalog.requirements:
            raise CatalogError(f"site pack {cat_file}: ID {rid} is already in the catalog; a pack uses IDs of its own")
        head = rid.split("-", 1)[0]
        if prefix and head != prefix:
            raise CatalogError(f"site pack {cat_file}: ID {rid} does not start with the pack's prefix {prefix}-")
        if head in reserved:
            raise CatalogError(f"site pack {cat_file}: ID {rid} uses the prefix {head}-, which Wire's catalog uses; "
                               "choose a prefix of your own (e.g. your organisation's name)")
    for rid, raw in entries.items():
        req = build_requirement(rid, {**raw, "origin": ["site pack"], "implicit": False,
                                      "source": raw.get("source") or {"text": f"site pack {data.get('name') or path.name}"}})
        catalog.requirements[rid] = req
    return SitePack(name=str(data.get("name") or path.name), path=path, prefix=prefix or ids_prefix(entries),
                    ids=tuple(entries), origin=origin)


def ids_prefix(entries: dict[str, Any]) -> str:
    heads = sorted({rid.split("-", 1)[0] for rid in entries})
    return ",".join(heads)


_LOADED: dict[Path, SitePack] = {}


def load_packs(options: list[str], catalog: Catalog, use_entry_points: bool = True) -> list[SitePack]:
    """Every pack of this run, its entries added to ``catalog`` (once per process)."""
    packs = []
    for path, origin in pack_dirs(options, use_entry_points):
        pack = _LOADED.get(path)
        if pack is None or any(rid not in catalog.requirements for rid in pack.ids):
            pack = load_pack(path, origin, catalog)
            _LOADED[path] = pack
        packs.append(pack)
    return packs


def active_packs() -> list[SitePack]:
    return list(_LOADED.values())


def pack_modules(pack: SitePack) -> list[ModuleType]:
    """Import the pack's test_*.py files (as ``wirecheck_sitepack_<name>.<file>``)."""
    pkg = "wirecheck_sitepack_" + re.sub(r"\W", "_", pack.name)
    mods = []
    for file in sorted(pack.path.glob("test_*.py")):
        modname = f"{pkg}.{file.stem}"
        if modname in sys.modules:
            mods.append(sys.modules[modname])
            continue
        spec = importlib.util.spec_from_file_location(modname, file)
        if spec is None or spec.loader is None:
            raise CatalogError(f"site pack {pack.path}: cannot import {file.name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        try:
            spec.loader.exec_module(module)
        except CatalogError as exc:
            del sys.modules[modname]
            raise CatalogError(f"site pack {file}: {exc}") from None
        mods.append(module)
    return mods


def export_checks(namespace: dict[str, Any]) -> None:
    """Copy every pack's checks and fixtures into an anchor module's namespace (suites/*/test_site_packs.py).

    Names get the pack's name as a prefix, so two packs can both have a ``test_ntp``."""
    for pack in active_packs():
        tag = re.sub(r"\W", "_", pack.name)
        for module in pack_modules(pack):
            for name, obj in vars(module).items():
                if name.startswith("test") and callable(obj):
                    namespace[f"test_{tag}__{name[4:].lstrip('_')}"] = obj
                elif hasattr(obj, "_fixture_function_marker") or type(obj).__name__ == "FixtureFunctionDefinition":
                    namespace[name] = obj


def registry(packs: list[SitePack]) -> dict[str, set[str]]:
    """Pack requirement IDs that have checks, per phase (as the suites' own registry)."""
    pat = re.compile(r"""@requirement\(\s*["']([A-Z0-9-]+)["']""")
    ids: set[str] = set()
    for pack in packs:
        for file in pack.path.glob("test_*.py"):
            ids.update(pat.findall(file.read_text(encoding="utf-8", errors="replace")))
    return {"preflight": set(ids), "acceptance": set(ids)}
