"""Compare two runs: new failures, fixed requirements, changed evidence.

Results are matched by (requirement ID, target).  "Failing" means fail, warn or error
(could not measure); waived and attested count as not failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import ERROR, FAIL, LABELS, PASS, WARN, load_compliance

FAILING = (FAIL, WARN, ERROR)
EVIDENCE_KEYS = ("observed", "expected", "method", "evidence")


@dataclass
class Change:
    requirement: str
    target: str
    old: str | None
    new: str | None
    level: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"requirement": self.requirement, "target": self.target, "old": self.old, "new": self.new,
                "level": self.level, "detail": self.detail}


@dataclass
class Diff:
    new_failures: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)
    changed_evidence: list[Change] = field(default_factory=list)
    other_changes: list[Change] = field(default_factory=list)
    requirements_added: list[str] = field(default_factory=list)
    requirements_removed: list[str] = field(default_factory=list)
    summary_old: dict[str, int] = field(default_factory=dict)
    summary_new: dict[str, int] = field(default_factory=dict)

    @property
    def new_must_failures(self) -> list[Change]:
        return [c for c in self.new_failures if c.new == FAIL]

    def as_dict(self) -> dict[str, Any]:
        return {"new_failures": [c.as_dict() for c in self.new_failures],
                "fixed": [c.as_dict() for c in self.fixed],
                "changed_evidence": [c.as_dict() for c in self.changed_evidence],
                "other_changes": [c.as_dict() for c in self.other_changes],
                "requirements_added": self.requirements_added,
                "requirements_removed": self.requirements_removed,
                "summary_old": self.summary_old, "summary_new": self.summary_new}


def _index(compliance: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    reqs: dict[str, dict[str, Any]] = {}
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for req in compliance.get("requirements") or []:
        rid = str(req.get("id"))
        reqs[rid] = req
        for res in req.get("results") or []:
            results[(rid, str(res.get("target") or "site"))] = res
    return reqs, results


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compare(old: dict[str, Any], new: dict[str, Any]) -> Diff:
    d = Diff(summary_old=dict(old.get("summary") or {}), summary_new=dict(new.get("summary") or {}))
    old_reqs, old_res = _index(old)
    new_reqs, new_res = _index(new)
    d.requirements_added = sorted(set(new_reqs) - set(old_reqs))
    d.requirements_removed = sorted(set(old_reqs) - set(new_reqs))
    for key in sorted(set(old_res) | set(new_res)):
        rid, target = key
        o, n = old_res.get(key), new_res.get(key)
        level = (new_reqs.get(rid) or old_reqs.get(rid) or {}).get("level")
        os_, ns = (o or {}).get("status"), (n or {}).get("status")
        change = Change(rid, target, os_, ns, level)
        if n is not None and ns in FAILING and os_ not in FAILING:
            change.detail = _short(n.get("message") or n.get("observed") or "")
            d.new_failures.append(change)
        elif o is not None and os_ in FAILING and ns not in FAILING:
            change.detail = "now " + (LABELS.get(ns, ns) if ns else "not reported")
            d.fixed.append(change)
        elif o is not None and n is not None and os_ == ns:
            diffs = [f"{k}: {_short(o.get(k))} → {_short(n.get(k))}" for k in EVIDENCE_KEYS if o.get(k) != n.get(k)]
            if diffs:
                change.detail = "; ".join(diffs)
                d.changed_evidence.append(change)
        elif os_ != ns:
            d.other_changes.append(change)
    # requirements with no results at all (not implemented / attested) still count at requirement level
    for rid in sorted(set(old_reqs) & set(new_reqs)):
        o, n = old_reqs[rid], new_reqs[rid]
        if not (o.get("results") or n.get("results")) and o.get("status") != n.get("status"):
            d.other_changes.append(Change(rid, "-", o.get("status"), n.get("status"), n.get("level")))
    return d


def compare_paths(old: Path, new: Path) -> Diff:
    return compare(load_compliance(Path(old)), load_compliance(Path(new)))


def format_text(d: Diff) -> str:
    def line(c: Change) -> str:
        lvl = f" [{c.level}]" if c.level else ""
        old = LABELS.get(c.old, c.old) if c.old else "absent"
        new = LABELS.get(c.new, c.new) if c.new else "absent"
        tail = f" — {c.detail}" if c.detail else ""
        return f"  {c.requirement} on {c.target}{lvl}: {old} → {new}{tail}"

    out = []
    for title, items in (("New failures", d.new_failures), ("Fixed", d.fixed),
                         ("Changed evidence (same status)", d.changed_evidence),
                         ("Other status changes", d.other_changes)):
        out.append(f"{title}: {len(items)}")
        out.extend(line(c) for c in items)
    if d.requirements_added:
        out.append(f"Requirements added: {', '.join(d.requirements_added)}")
    if d.requirements_removed:
        out.append(f"Requirements removed: {', '.join(d.requirements_removed)}")
    keys = [k for k in dict.fromkeys([*d.summary_old, *d.summary_new])
            if d.summary_old.get(k, 0) or d.summary_new.get(k, 0)]
    if keys:
        out.append("Summary: " + ", ".join(
            f"{LABELS.get(k, k)} {d.summary_old.get(k, 0)}→{d.summary_new.get(k, 0)}" for k in keys))
    return "\n".join(out) + "\n"


__all__ = ["compare", "compare_paths", "format_text", "Diff", "Change", "PASS"]
