"""Statuses, requirement aggregation and reading/writing ``compliance.json``.

The report layer adds two statuses to the engine's six outcomes (plus ``not_implemented``):

* ``waived``   -- a ``fail``/``warn`` result covered by a valid waiver (see ``waivers``);
* ``attested`` -- a requirement no machine can measure, vouched for by a named person
  (see ``attestations``).  Attested is never shown as passed.

Both keep the status the check produced in ``original_status``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PASS, FAIL, WARN, ERROR = "pass", "fail", "warn", "error"
NOT_APPLICABLE, NOT_EVALUATED, NOT_IMPLEMENTED = "not_applicable", "not_evaluated", "not_implemented"
WAIVED, ATTESTED = "waived", "attested"

#: Every status in the order reports list them.
STATUSES: tuple[str, ...] = (PASS, FAIL, WARN, ERROR, WAIVED, ATTESTED,
                             NOT_EVALUATED, NOT_APPLICABLE, NOT_IMPLEMENTED)

#: Worst first: a requirement's status is the worst of its results.  Same order as the engine's
#: (wirecheck.outcome.SEVERITY) with waived just below warn and attested just below pass-worthy
#: "not checked" states, so a waiver never hides another host's failure.
SEVERITY: dict[str, float] = {FAIL: 7, ERROR: 6, WARN: 5, WAIVED: 4.5, NOT_EVALUATED: 4,
                              NOT_IMPLEMENTED: 3, ATTESTED: 2.5, PASS: 2, NOT_APPLICABLE: 1}

LABELS: dict[str, str] = {PASS: "pass", FAIL: "fail", WARN: "warn", ERROR: "could not measure",
                          WAIVED: "waived", ATTESTED: "attested", NOT_EVALUATED: "not evaluated",
                          NOT_APPLICABLE: "not applicable", NOT_IMPLEMENTED: "not implemented"}

SCHEMA = "wirecheck/compliance/v1"
COMPLIANCE_FILE = "compliance.json"


class ReportError(Exception):
    """A user mistake (missing file, malformed YAML/JSON); the CLI prints it as one line."""


def worst(statuses: Iterable[str]) -> str:
    items = list(statuses)
    return max(items, key=lambda s: SEVERITY.get(s, 0)) if items else NOT_IMPLEMENTED


def summarize(requirements: list[dict[str, Any]]) -> dict[str, int]:
    """Counts of requirement statuses (each requirement counted once)."""
    counts = {s: 0 for s in STATUSES}
    for req in requirements:
        status = req.get("status", NOT_IMPLEMENTED)
        counts[status] = counts.get(status, 0) + 1
    return counts


def summarize_results(requirements: list[dict[str, Any]]) -> dict[str, int]:
    """Counts of per-target result statuses (one per requirement x host cell)."""
    counts = {s: 0 for s in STATUSES}
    for req in requirements:
        for res in req.get("results") or []:
            status = res.get("status", ERROR)
            counts[status] = counts.get(status, 0) + 1
    return counts


def hosts_of(compliance: dict[str, Any]) -> list[str]:
    """Column names of the matrix: declared targets first, then pseudo-targets seen in results."""
    names = [t.get("name", "?") for t in compliance.get("targets") or []]
    for req in compliance.get("requirements") or []:
        for res in req.get("results") or []:
            name = str(res.get("target") or "site")
            if name not in names:
                names.append(name)
    return names


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False, default=str) + "\n").encode()


def compliance_path(path: Path) -> Path:
    """Accept a report directory or a compliance.json file."""
    path = Path(path)
    if path.is_dir():
        path = path / COMPLIANCE_FILE
    if not path.is_file():
        raise ReportError(f"{path}: no such file (give a report directory or a compliance.json)")
    return path


def load_compliance(path: Path) -> dict[str, Any]:
    file = compliance_path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{file}: not a readable compliance.json ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("requirements"), list):
        raise ReportError(f"{file}: not a wirecheck compliance report (no 'requirements' list)")
    return data


def load_yaml_entries(path: Path, key: str) -> list[dict[str, Any]]:
    """Read a YAML file holding ``{key: [mapping, ...]}`` (or a bare list of mappings)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: cannot read {key} file ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ReportError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        return []
    if isinstance(data, dict):
        if set(data) != {key}:
            raise ReportError(f"{path}: expected a top-level '{key}:' list, found keys {sorted(map(str, data))}")
        data = data[key] or []
    if not isinstance(data, list):
        raise ReportError(f"{path}: '{key}' must be a list of entries")
    for i, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise ReportError(f"{path}: {key} entry #{i} must be a mapping (requirement: ..., ...)")
    return data


def as_date(value: Any, what: str) -> Any:
    """A ``datetime.date`` from a YAML date or an ISO string; ReportError-friendly ValueError otherwise."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"'{what}' must be a date like 2026-12-31, got {value!r}")


def as_hosts(value: Any) -> tuple[str, ...] | None:
    """None means every host; accepts a string, a list of strings, or '*'."""
    if value is None or value == "*" or value == ["*"]:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(h, str) and h for h in value):
        return None if "*" in value else tuple(value)
    raise ValueError(f"'hosts' must be a host name or a non-empty list of host names, got {value!r}")


def required_text(entry: dict[str, Any], name: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str | int | float) or not str(value).strip():
        raise ValueError(f"'{name}' is required and must be non-empty text")
    return str(value).strip()
