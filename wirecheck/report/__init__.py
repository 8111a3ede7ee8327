"""Report writers: compliance.json, compliance.html, integrity manifest, waivers, attestations.

``write_all`` is what the pytest plugin calls at the end of a run.  Everything it adds to
compliance.json is additive (schema stays ``wirecheck/compliance/v1``):

* statuses ``waived`` and ``attested`` in results and requirements, with ``original_status``;
* ``summary`` counts requirements by status (now including ``waived`` and ``attested``);
  ``summary_results`` counts requirement × host results;
* ``waivers`` and ``attestations``: the registers, each entry with its ``state``
  (waivers: active / expired / unused; attestations: applied / superseded / unused / expired / future);
* ``report_date``: the day waiver and attestation dates were evaluated against.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

from . import attestations as attestations_mod
from . import integrity
from . import waivers as waivers_mod
from .html import render_html
from .model import (
    COMPLIANCE_FILE,
    STATUSES,
    ReportError,
    atomic_write,
    dump_json,
    load_compliance,
    summarize,
    summarize_results,
)

__all__ = ["write_all", "apply_exceptions", "render_html", "write_html", "load_compliance", "ReportError",
           "STATUSES"]

HTML_FILE = integrity.HTML_FILE


def _as_waivers(items: list[Any] | None) -> list[waivers_mod.Waiver]:
    if not items:
        return []
    if all(isinstance(i, waivers_mod.Waiver) for i in items):
        return list(items)
    return waivers_mod.parse([i.as_dict() if isinstance(i, waivers_mod.Waiver) else i for i in items])


def _as_attestations(items: list[Any] | None) -> list[attestations_mod.Attestation]:
    if not items:
        return []
    if all(isinstance(i, attestations_mod.Attestation) for i in items):
        return list(items)
    return attestations_mod.parse([i.as_dict() if isinstance(i, attestations_mod.Attestation) else i
                                   for i in items])


def apply_exceptions(compliance: dict[str, Any], *, waivers: list[Any] | None = None,
                     attestations: list[Any] | None = None, today: dt.date) -> dict[str, Any]:
    """A copy of ``compliance`` with waivers and attestations applied and the summary recounted."""
    out = copy.deepcopy(compliance)
    out["waivers"] = waivers_mod.apply(out, _as_waivers(waivers), today)
    out["attestations"] = attestations_mod.apply(out, _as_attestations(attestations), today)
    reqs = out.get("requirements") or []
    out["summary"] = summarize(reqs)
    out["summary_results"] = summarize_results(reqs)
    out["report_date"] = today.isoformat()
    return out


def write_html(report_dir: Path, compliance: dict[str, Any]) -> Path:
    path = Path(report_dir) / HTML_FILE
    atomic_write(path, render_html(compliance).encode())
    return path


def write_all(report_dir: Path, compliance: dict[str, Any], *, waivers: list[Any] | None = None,
              attestations: list[Any] | None = None, today: dt.date | None = None,
              signing_key: Path | None = None) -> dict[str, Any]:
    """Write compliance.json (atomically), compliance.html, integrity.json and, given a key, integrity.sig.

    Evidence files the run produced must already be under ``<report_dir>/evidence/``: they are sealed
    with the rest.  Returns the compliance dict as written.
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    final = apply_exceptions(compliance, waivers=waivers, attestations=attestations,
                             today=today or dt.date.today())
    atomic_write(report_dir / COMPLIANCE_FILE, dump_json(final))
    write_html(report_dir, final)
    (report_dir / integrity.SIGNATURE).unlink(missing_ok=True)  # a stale signature would mislead
    integrity.write_manifest(report_dir)
    if signing_key is not None:
        integrity.sign(report_dir, Path(signing_key))
    return final
