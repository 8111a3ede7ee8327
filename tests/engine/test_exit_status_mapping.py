"""Outcome -> exit status (wirecheck.exit_status): the pure mapping both the pytest run and the CI
gate use. Issue 12: a mutant that let a run whose only bad results are `error` exit 0 survived."""

from __future__ import annotations

import pytest

from wirecheck.exit_status import (
    FAILED,
    PASSED,
    SKIPPED,
    gate_blocking,
    gate_exit_code,
    gate_statuses,
    report_outcome,
)


@pytest.mark.parametrize("status, outcome", [
    ("pass", PASSED), ("warn", PASSED),
    ("not_applicable", SKIPPED), ("not_evaluated", SKIPPED),
    ("fail", FAILED), ("error", FAILED), ("not_implemented", FAILED), ("waived", FAILED), ("", FAILED),
    ("bogus", FAILED),
])
def test_each_status_to_its_report_outcome(status, outcome):
    assert report_outcome(status) == outcome


def test_a_run_of_only_errors_does_not_pass():
    assert {report_outcome(s) for s in ("pass", "error", "not_applicable")} >= {FAILED}
    assert FAILED == "failed" and PASSED == "passed" and SKIPPED == "skipped"   # pytest's own words


REQS = [
    {"id": "A", "level": "must", "status": "error"},
    {"id": "B", "level": "MUST", "status": "fail"},
    {"id": "C", "level": "should", "status": "warn"},
    {"id": "D", "level": "must", "status": "waived"},
    {"id": "E", "level": "must", "status": "pass"},
    {"id": "F", "level": "must", "status": "warn"},
    {"id": "G", "level": "must", "status": "not_evaluated"},
    {"id": "H", "status": "fail"},
]


def test_gate_blocks_on_fail_warn_and_error_of_the_gating_levels():
    assert gate_statuses(False) == {"fail", "warn", "error"} and gate_statuses(True) == {"fail", "warn"}
    assert [r["id"] for r in gate_blocking(REQS, ["must"])] == ["A", "B", "F"]
    assert [r["id"] for r in gate_blocking(REQS, ["must"], allow_errors=True)] == ["B", "F"]
    assert [r["id"] for r in gate_blocking(REQS, [" Must ", "should", ""])] == ["A", "B", "C", "F"]
    assert gate_blocking(REQS, ["info"]) == []
    # a requirement without a level is gated by no level name whatever it is called
    assert gate_blocking([{"id": "X", "status": "fail"}], ["none", "xxxx", "must"]) == []


def test_gate_with_only_errors_exits_1():
    only_errors = [{"id": "A", "level": "must", "status": "error"}, {"id": "E", "level": "must", "status": "pass"}]
    assert gate_exit_code(gate_blocking(only_errors, ["must"])) == 1
    assert gate_exit_code(gate_blocking(only_errors, ["must"], allow_errors=True)) == 0
    assert gate_exit_code([]) == 0
