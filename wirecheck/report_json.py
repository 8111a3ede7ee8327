"""compliance.json: every catalog requirement with a status and the evidence behind it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .outcome import NOT_APPLICABLE, NOT_EVALUATED, NOT_IMPLEMENTED, STATUSES, worst

SCHEMA = "wirecheck/compliance/v1"


def _plain_str(value: str) -> str:
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")


def jsonable(value: Any) -> Any:
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, str):      # str subclasses (Ansible's tagged strings) to plain str
        return _plain_str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "value") and hasattr(value, "method"):   # facts.Measured
        return jsonable(value.value)
    return str(value)


def build_compliance(catalog: Catalog, site, results: list[dict[str, Any]], registry: dict[str, set[str]],
                     started: str, version: str) -> dict[str, Any]:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for item in results:
        by_id.setdefault(item["id"], []).append(item["result"])
    requirements = []
    for req in catalog:
        res = by_id.get(req.id, [])
        entry: dict[str, Any] = {
            "id": req.id, "title": req.title, "level": req.level, "level_text": req.level_text,
            "condition": req.condition or None, "area": req.area, "source": req.source, "url": req.url,
            "profiles": list(req.profiles), "phases": list(req.phases), "scope": req.scope,
            "roles": list(req.roles), "implicit": req.implicit, "remediation": req.remediation,
        }
        if res:
            entry["status"] = worst(r["status"] for r in res)
            entry["results"] = sorted(res, key=lambda r: (r["target"], r["check"]))
        elif site.profile not in req.profiles:
            entry["status"] = NOT_APPLICABLE
            entry["reason"] = f"for the {' and '.join(req.profiles)} profile; this run is {site.profile}"
        elif site.phase not in req.phases:
            entry["status"] = NOT_APPLICABLE
            entry["reason"] = f"checked in the {' and '.join(req.phases)} phase; this run is {site.phase}"
        elif req.id in registry.get(site.phase, set()):
            entry["status"] = NOT_EVALUATED
            entry["reason"] = "has a check, but it was not selected in this run (-k, -m or a narrower path)"
        else:
            entry["status"] = NOT_IMPLEMENTED
            entry["reason"] = "wirecheck has no check for this requirement yet"
        if req.id in site.overrides:
            entry["overridden_params"] = site.overrides[req.id]
            entry["catalog_params"] = {k: req.params.get(k) for k in site.overrides[req.id]}
        entry.setdefault("results", [])
        requirements.append(entry)
    summary = {s: 0 for s in STATUSES}
    for entry in requirements:
        summary[entry["status"]] = summary.get(entry["status"], 0) + 1
    return {
        "schema": SCHEMA, "profile": site.profile, "phase": site.phase, "started": started,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wirecheck_version": version, "catalog_version": catalog.version,
        "site": {"domain": site.domain, "wire_ip": site.wire_ip, "inventory": site.inventory_path,
                 "nameservers": [f"{h}:{p}" for h, p in site.nameservers],
                 **({"ssh_overrides": site.ssh_overrides} if getattr(site, "ssh_overrides", None) else {}),
                 **({"inventory_kind": site.inventory_kind} if getattr(site, "inventory_kind", None) else {})},
        "targets": [t.describe() for t in site.targets],
        "redacted_fields": site.redacted_fields,
        "site_packs": [{"name": p.name, "path": str(p.path), "ids": list(p.ids), "origin": p.origin}
                       for p in getattr(site, "site_packs", [])],
        "overrides": site.overrides,
        "summary": summary, "requirements": requirements,
    }


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_compliance(report_dir: Path, compliance: dict[str, Any], indent: int | None = 2) -> Path:
    path = Path(report_dir) / "compliance.json"
    write_atomic(path, json.dumps(compliance, indent=indent, ensure_ascii=False) + "\n")
    return path


#: what the console lists by default: what a reader must act on
ATTENTION = ("fail", "error", "warn")


def summary_lines(compliance: dict[str, Any], width: int = 100, verbose: bool = False) -> list[str]:
    """The table printed at the end of a run: requirement, title, status, host.

    By default only failures, errors and warnings are listed (worst first), then one line counting
    the rest; ``verbose`` lists every row.  compliance.json and the HTML keep every row either way."""
    rows = []
    for req in compliance["requirements"]:
        if req.get("results"):
            for r in req["results"]:
                rows.append((req["id"], req["title"], r["status"], r["target"]))
        else:
            rows.append((req["id"], req["title"], req["status"], "-"))
    order = {"fail": 0, "error": 1, "warn": 2, "not_evaluated": 3, "not_implemented": 4, "pass": 5,
             "not_applicable": 6}
    rows.sort(key=lambda r: (order.get(r[2], 9), r[0], r[3]))
    shown = rows if verbose else [r for r in rows if r[2] in ATTENTION or r[2] not in order]
    rest = [r for r in rows if r not in shown]
    w_id = max([len(r[0]) for r in shown] + [14])
    w_host = max([len(r[3]) for r in shown] + [4])
    w_title = max(20, width - w_id - w_host - 20)
    out = ["", f"{'=' * 30} wirecheck {compliance['profile']} {compliance['phase']} {'=' * 30}"]
    if shown:
        out.append(f"{'requirement':<{w_id}}  {'title':<{w_title}}  {'status':<15}  host")
    else:
        out.append("nothing failed, no errors, no warnings")
    for rid, title, status, host in shown:
        t = title if len(title) <= w_title else title[: w_title - 1] + "…"
        out.append(f"{rid:<{w_id}}  {t:<{w_title}}  {status:<15}  {host}")
    if rest:
        counts: dict[str, int] = {}
        for r in rest:
            counts[r[2]] = counts.get(r[2], 0) + 1
        listed = ", ".join(f"{counts[k]} {k}" for k in sorted(counts, key=lambda k: order.get(k, 9)))
        out.append(f"not listed: {listed} (results per host; -v lists every row)")
    s = compliance["summary"]
    out.append("requirements: " + ", ".join(f"{v} {k}" for k, v in s.items() if v))
    return out
