"""The requirement catalog: every requirement of Wire's docs, as data (catalog.yaml)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")
LEVELS = ("must", "should", "info")
SCOPES = ("host", "control", "site", "cluster", "external")
PROFILES = ("demo", "production")
PHASES = ("preflight", "acceptance")


class CatalogError(Exception):
    """The catalog file or a reference to it is wrong."""


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str
    area: str
    profiles: tuple[str, ...]
    phases: tuple[str, ...]
    level: str
    condition: str
    level_text: str
    scope: str
    roles: tuple[str, ...]
    params: dict[str, Any]
    requirement: str
    check: str
    remediation: str
    source_text: str
    source_doc: str
    source_section: str
    url: str | None
    origin: tuple[str, ...]
    implicit: bool = False
    rationale: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """One line naming where the requirement comes from."""
        if self.implicit:
            return "not stated in Wire's docs (implicit requirement)"
        where = self.source_doc
        if self.source_section:
            where += f' › "{self.source_section}"'
        return where or self.source_text

    def applies_to_roles(self, roles: list[str] | tuple[str, ...]) -> bool:
        return "all" in self.roles or bool(set(self.roles) & set(roles))


@dataclass
class Catalog:
    version: str
    requirements: dict[str, Requirement]

    def __getitem__(self, rid: str) -> Requirement:
        try:
            return self.requirements[rid]
        except KeyError:
            raise CatalogError(f"unknown requirement ID {rid!r} (not in {CATALOG_PATH.name})") from None

    def __contains__(self, rid: object) -> bool:
        return rid in self.requirements

    def __iter__(self):
        return iter(self.requirements.values())

    def __len__(self) -> int:
        return len(self.requirements)


SCHEMA_PATH = Path(__file__).with_name("catalog.schema.json")


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_entries(entries: dict[str, Any], where: str, pack: bool = False) -> None:
    """Check catalog entries against catalog.schema.json (jsonschema); one line naming the first problem."""
    import jsonschema

    doc = {"requirements": entries}
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = "/".join(str(p) for p in err.absolute_path) or "(top)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CatalogError(f"{where}: {path}: {err.message}{more}")


def build_requirement(rid: str, raw: dict[str, Any]) -> Requirement:
    try:
        src = raw.get("source") or {}
        req = Requirement(
            id=rid,
            title=raw["title"],
            area=raw.get("area", ""),
            profiles=tuple(raw["profiles"]),
            phases=tuple(raw["phases"]),
            level=raw["level"],
            condition=raw.get("condition", ""),
            level_text=raw.get("level_text", raw["level"].upper()),
            scope=raw["scope"],
            roles=tuple(raw.get("roles") or ["all"]),
            params=dict(raw.get("params") or {}),
            requirement=raw.get("requirement", ""),
            check=raw.get("check", ""),
            remediation=raw.get("remediation", ""),
            source_text=src.get("text", ""),
            source_doc=src.get("doc", ""),
            source_section=src.get("section", ""),
            url=src.get("url"),
            origin=tuple(raw.get("origin") or ()),
            implicit=bool(raw.get("implicit", False)),
            rationale=raw.get("rationale", ""),
        )
    except (KeyError, TypeError) as exc:
        raise CatalogError(f"catalog entry {rid}: missing or malformed field {exc}") from None
    if req.level not in LEVELS:
        raise CatalogError(f"catalog entry {rid}: level {req.level!r} not one of {LEVELS}")
    if req.scope not in SCOPES:
        raise CatalogError(f"catalog entry {rid}: scope {req.scope!r} not one of {SCOPES}")
    bad = set(req.profiles) - set(PROFILES) or set(req.phases) - set(PHASES)
    if bad:
        raise CatalogError(f"catalog entry {rid}: unknown profile/phase {sorted(bad)}")
    return req


def load_catalog(path: Path | str | None = None) -> Catalog:
    path = Path(path) if path else CATALOG_PATH
    try:
        # libyaml's loader when PyYAML has it: the pure-Python one takes most of a second for 142 entries
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc}") from None
    reqs = {rid: build_requirement(rid, raw) for rid, raw in (data.get("requirements") or {}).items()}
    return Catalog(version=str(data.get("catalog_version", "unknown")), requirements=reqs)


@functools.lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    return load_catalog()


def requirement_of(item: Any) -> Requirement | None:
    mark = item.get_closest_marker("requirement") if hasattr(item, "get_closest_marker") else None
    if mark is None:
        return None
    return default_catalog()[mark.args[0]]


class Spec:
    """A requirement's parameters by attribute (spec.min_cores), with --param overrides applied."""

    def __init__(self, req: Requirement, overrides: dict[str, Any]):
        self.req = req
        self._params = {**req.params, **overrides}
        self.overridden = dict(overrides)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._params[name]
        except KeyError:
            raise AttributeError(f"{self.req.id} has no parameter {name!r} in the catalog") from None

    def get(self, name: str, default: Any = None) -> Any:
        return self._params.get(name, default)
