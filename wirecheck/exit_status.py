"""How verdicts become exit statuses: the pytest run's (each result's pytest outcome) and the CI
gate's (`wirecheck gate`). Pure functions, so the mapping is tested on its own: a run whose only
bad results are `error` must not exit 0."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .outcome import ERROR, FAIL, NOT_APPLICABLE, NOT_EVALUATED, PASS, WARN

PASSED, SKIPPED, FAILED = "passed", "skipped", "failed"


def report_outcome(status: str) -> str:
    """The pytest outcome of one result: pass and warn (a SHOULD broken) pass; not applicable and not
    evaluated are skipped (with the reason); fail, error and anything unknown fail the run."""
    if status in (PASS, WARN):
        return PASSED
    if status in (NOT_APPLICABLE, NOT_EVALUATED):
        return SKIPPED
    return FAILED


def gate_statuses(allow_errors: bool) -> set[str]:
    """Requirement statuses that fail the gate: fail and warn, and error unless errors are allowed."""
    return {FAIL, WARN} | (set() if allow_errors else {ERROR})


def gate_blocking(requirements: Iterable[dict[str, Any]], levels: Iterable[str],
                  allow_errors: bool = False) -> list[dict[str, Any]]:
    """The requirements of the gating levels whose status blocks the gate (waived and attested ones
    do not)."""
    wanted = {str(lv).strip().lower() for lv in levels if str(lv).strip()}
    bad = gate_statuses(allow_errors)
    return [r for r in requirements if str(r.get("level", "")).lower() in wanted and r.get("status") in bad]


def gate_exit_code(blocking: list[dict[str, Any]]) -> int:
    return 1 if blocking else 0
