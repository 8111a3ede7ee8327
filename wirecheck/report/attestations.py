"""Attestations: a named person vouches for a requirement no machine can measure.

An attestations file is YAML::

    # attestations.yaml
    attestations:
      - requirement: PROD-PHYS-SERVERS     # catalog ID, verbatim (required)
        statement: >-                      # what is attested (required)
          The nine VMs run on three physical servers hv1, hv2, hv3, one VM per component each.
        attested_by: Max Mustermann (datacentre operations)   # who (required)
        date: 2026-11-20                   # when it was attested (required, not in the future)
        hosts: [site]                      # result rows it covers; omit for every row (optional)
        expires: 2027-11-20                # re-attest after this day (optional)
        reference: rack diagram DC1-R12 rev 4   # supporting document (optional)
        id: A-7                            # your reference (optional; default A1, A2, ...)

An attestation only fills gaps a machine left: results that are ``not_evaluated`` or
``not_implemented`` (and requirements with no result at all) become ``attested``, keeping
``original_status``.  A measured verdict (pass, fail, warn, error, not-applicable) always wins;
the attestation is then listed with state ``superseded``.  Expired or future-dated attestations do
not apply and are listed as such.  Attested is reported as attested, never as passed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import (
    ATTESTED,
    NOT_EVALUATED,
    NOT_IMPLEMENTED,
    ReportError,
    as_date,
    as_hosts,
    load_yaml_entries,
    required_text,
    worst,
)

FIELDS = {"requirement", "statement", "attested_by", "date", "hosts", "expires", "reference", "id"}
ATTESTABLE = (NOT_EVALUATED, NOT_IMPLEMENTED)


@dataclass(frozen=True)
class Attestation:
    id: str
    requirement: str
    statement: str
    attested_by: str
    date: dt.date
    hosts: tuple[str, ...] | None = None
    expires: dt.date | None = None
    reference: str | None = None

    def covers(self, requirement_id: str, host: str) -> bool:
        return requirement_id == self.requirement and (self.hosts is None or host in self.hosts)

    def state_on(self, today: dt.date) -> str:
        if self.date > today:
            return "future"
        if self.expires is not None and today > self.expires:
            return "expired"
        return "valid"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "requirement": self.requirement, "statement": self.statement,
                "attested_by": self.attested_by, "date": self.date.isoformat(),
                "hosts": list(self.hosts) if self.hosts is not None else ["*"],
                "expires": self.expires.isoformat() if self.expires else None,
                "reference": self.reference}


def parse(entries: list[dict[str, Any]], source: str = "attestations") -> list[Attestation]:
    out: list[Attestation] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries, 1):
        label = f"{source}: attestation #{i}" + (f" ({entry['requirement']})" if entry.get("requirement") else "")
        try:
            unknown = sorted(set(map(str, entry)) - FIELDS)
            if unknown:
                raise ValueError(f"unknown field(s) {unknown}; allowed: {sorted(FIELDS)}")
            aid = str(entry.get("id") or f"A{i}")
            if aid in seen:
                raise ValueError(f"duplicate id {aid!r}")
            seen.add(aid)
            out.append(Attestation(
                id=aid,
                requirement=required_text(entry, "requirement"),
                statement=required_text(entry, "statement"),
                attested_by=required_text(entry, "attested_by"),
                date=as_date(entry.get("date"), "date"),
                hosts=as_hosts(entry.get("hosts")),
                expires=as_date(entry["expires"], "expires") if entry.get("expires") is not None else None,
                reference=str(entry["reference"]) if entry.get("reference") else None,
            ))
        except ValueError as exc:
            raise ReportError(f"{label}: {exc}") from None
    return out


def load(path: Path) -> list[Attestation]:
    """Read and validate an attestations file; raises ReportError with one clear line."""
    return parse(load_yaml_entries(Path(path), "attestations"), str(path))


def apply(compliance: dict[str, Any], attestations: list[Attestation],
          today: dt.date) -> list[dict[str, Any]]:
    """Mark attested results in place; return the attestation register."""
    applied: dict[str, list[str]] = {a.id: [] for a in attestations}
    superseded: dict[str, list[str]] = {a.id: [] for a in attestations}
    by_req: dict[str, list[Attestation]] = {}
    for a in attestations:
        by_req.setdefault(a.requirement, []).append(a)
    for req in compliance.get("requirements") or []:
        rid = req.get("id", "")
        usable = [a for a in by_req.get(rid, []) if a.state_on(today) == "valid"]
        if not usable:
            continue
        results = req.setdefault("results", [])
        if not results and req.get("status", NOT_IMPLEMENTED) in ATTESTABLE:
            # No check ran: the attestation is the only evidence.  One row per named host, or "site".
            a = usable[0]
            for host in a.hosts or ("site",):
                results.append({"target": host, "status": ATTESTED, "original_status": req.get(
                    "status", NOT_IMPLEMENTED), "observed": None, "expected": None,
                    "method": "operator attestation", "message": a.statement,
                    "attestation": a.as_dict(), "evidence": {}})
                applied[a.id].append(host)
        else:
            for res in results:
                host = str(res.get("target") or "site")
                matching = [a for a in usable if a.covers(rid, host)]
                if not matching:
                    continue
                if res.get("status") in ATTESTABLE:
                    a = matching[0]
                    res["original_status"] = res["status"]
                    res["status"] = ATTESTED
                    res["attestation"] = a.as_dict()
                    applied[a.id].append(host)
                else:
                    for a in matching:
                        superseded[a.id].append(host)
        if results and any(r.get("status") == ATTESTED for r in results):
            req.setdefault("original_status", req.get("status"))
            req["status"] = worst(r.get("status", "") for r in results)
    register = []
    for a in attestations:
        state = a.state_on(today)
        if state == "valid":
            state = "applied" if applied[a.id] else ("superseded" if superseded[a.id] else "unused")
        register.append({**a.as_dict(), "state": state, "applied_to": applied[a.id],
                         "superseded_on": superseded[a.id]})
    return register
