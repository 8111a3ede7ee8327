"""Waivers: an accepted, time-limited exception to a requirement.

A waivers file is YAML::

    # waivers.yaml
    waivers:
      - requirement: DEMO-SYS-CPU          # catalog ID, verbatim (required)
        hosts: [wiab-1]                    # target names; omit or "*" for every host (optional)
        justification: >-                  # why the failure is acceptable (required)
          Lab machine for the pilot; 8 cores are enough for 20 users.
        approver: Jane Doe (CISO)          # who accepted the risk (required)
        expires: 2026-12-31                # last day the waiver applies, inclusive (required)
        id: W-2026-014                     # your reference (optional; default W1, W2, ...)
        reference: CHG-1234                # ticket or change record (optional)

A waiver turns a matching ``fail`` or ``warn`` result into ``waived`` (the original status stays in
``original_status``).  It never touches pass, error, not-evaluated or not-applicable results.
From the day after ``expires`` it no longer applies: the result keeps its failure and carries
``waiver_expired``, and the waiver is listed with state ``expired``.  A valid waiver that matched
nothing is listed with state ``unused`` so stale entries get noticed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import FAIL, WAIVED, WARN, ReportError, as_date, as_hosts, load_yaml_entries, required_text, worst

FIELDS = {"requirement", "hosts", "justification", "approver", "expires", "id", "reference"}
WAIVABLE = (FAIL, WARN)


@dataclass(frozen=True)
class Waiver:
    id: str
    requirement: str
    hosts: tuple[str, ...] | None
    justification: str
    approver: str
    expires: dt.date
    reference: str | None = None

    def covers(self, requirement_id: str, host: str) -> bool:
        return requirement_id == self.requirement and (self.hosts is None or host in self.hosts)

    def active_on(self, today: dt.date) -> bool:
        return today <= self.expires

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "requirement": self.requirement,
                "hosts": list(self.hosts) if self.hosts is not None else ["*"],
                "justification": self.justification, "approver": self.approver,
                "expires": self.expires.isoformat(), "reference": self.reference}


def parse(entries: list[dict[str, Any]], source: str = "waivers") -> list[Waiver]:
    waivers: list[Waiver] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries, 1):
        label = f"{source}: waiver #{i}" + (f" ({entry['requirement']})" if entry.get("requirement") else "")
        try:
            unknown = sorted(set(map(str, entry)) - FIELDS)
            if unknown:
                raise ValueError(f"unknown field(s) {unknown}; allowed: {sorted(FIELDS)}")
            wid = str(entry.get("id") or f"W{i}")
            if wid in seen:
                raise ValueError(f"duplicate id {wid!r}")
            seen.add(wid)
            waivers.append(Waiver(
                id=wid,
                requirement=required_text(entry, "requirement"),
                hosts=as_hosts(entry.get("hosts")),
                justification=required_text(entry, "justification"),
                approver=required_text(entry, "approver"),
                expires=as_date(entry.get("expires"), "expires"),
                reference=str(entry["reference"]) if entry.get("reference") else None,
            ))
        except ValueError as exc:
            raise ReportError(f"{label}: {exc}") from None
    return waivers


def load(path: Path) -> list[Waiver]:
    """Read and validate a waivers file; raises ReportError with one clear line."""
    return parse(load_yaml_entries(Path(path), "waivers"), str(path))


def apply(compliance: dict[str, Any], waivers: list[Waiver], today: dt.date) -> list[dict[str, Any]]:
    """Mark waived results in place; return the waiver register (with state and where applied)."""
    applied: dict[str, list[str]] = {w.id: [] for w in waivers}
    expired_hits: dict[str, list[str]] = {w.id: [] for w in waivers}
    for req in compliance.get("requirements") or []:
        rid = req.get("id", "")
        changed = False
        for res in req.get("results") or []:
            if res.get("status") not in WAIVABLE:
                continue
            host = str(res.get("target") or "site")
            matching = [w for w in waivers if w.covers(rid, host)]
            active = [w for w in matching if w.active_on(today)]
            if active:
                w = active[0]
                res["original_status"] = res["status"]
                res["status"] = WAIVED
                res["waiver"] = w.as_dict()
                applied[w.id].append(host)
                changed = True
            elif matching:
                w = max(matching, key=lambda x: x.expires)
                res["waiver_expired"] = w.as_dict()
                expired_hits[w.id].append(host)
        if changed and req.get("results"):
            if "original_status" not in req:
                req["original_status"] = req.get("status")
            req["status"] = worst(r.get("status", "") for r in req["results"])
    register = []
    for w in waivers:
        if not w.active_on(today):
            state = "expired"
        elif applied[w.id]:
            state = "active"
        else:
            state = "unused"
        register.append({**w.as_dict(), "state": state, "applied_to": applied[w.id],
                         "would_apply_to": expired_hits[w.id]})
    return register
