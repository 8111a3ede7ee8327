from __future__ import annotations

import datetime as dt

import pytest

from wirecheck.report import apply_exceptions, attestations
from wirecheck.report.model import ReportError

from .helpers import TODAY, requirement_of, result_of


def test_example_file_loads(attestations_file):
    atts = attestations.load(attestations_file)
    assert [a.id for a in atts] == ["A-7", "A-8"]
    assert atts[0].date == dt.date(2026, 11, 20) and atts[0].expires == dt.date(2027, 11, 20)
    assert atts[1].expires is None


def test_unmeasurable_requirement_is_attested_not_passed(prod, attestations_file):
    out = apply_exceptions(prod, attestations=attestations.load(attestations_file), today=TODAY)
    res = result_of(out, "PROD-PHYS-SERVERS", "site")
    assert res["status"] == "attested" and res["original_status"] == "not_evaluated"
    assert res["attestation"]["attested_by"] == "Max Mustermann (datacentre operations)"
    assert res["attestation"]["date"] == "2026-11-20"
    assert requirement_of(out, "PROD-PHYS-SERVERS")["status"] == "attested"
    assert out["summary"]["attested"] == 2 and out["summary"]["pass"] == 0


def test_requirement_without_check_gets_an_attested_row(prod, attestations_file):
    out = apply_exceptions(prod, attestations=attestations.load(attestations_file), today=TODAY)
    req = requirement_of(out, "FED-DOMAIN")
    assert req["status"] == "attested" and req["original_status"] == "not_implemented"
    [row] = req["results"]
    assert row["status"] == "attested" and row["method"] == "operator attestation"
    assert row["message"].startswith("Backend domain wire.example.com")


def test_measured_verdict_wins_over_attestation(prod):
    atts = attestations.parse([{"requirement": "TIME-NTP-SYNC", "statement": "clocks are fine",
                                "attested_by": "someone", "date": "2026-11-01"}])
    out = apply_exceptions(prod, attestations=atts, today=TODAY)
    assert result_of(out, "TIME-NTP-SYNC", "minio2")["status"] == "fail"
    assert result_of(out, "TIME-NTP-SYNC", "minio1")["status"] == "pass"
    [reg] = out["attestations"]
    assert reg["state"] == "superseded" and "minio2" in reg["superseded_on"]


@pytest.mark.parametrize(("entry", "state"), [
    ({"date": "2026-11-28"}, "future"),
    ({"date": "2025-11-01", "expires": "2026-11-26"}, "expired"),
    ({"date": "2025-11-01", "expires": "2026-11-27"}, "applied"),
])
def test_dates(prod, entry, state):
    atts = attestations.parse([{"requirement": "PROD-PHYS-SERVERS", "statement": "s", "attested_by": "b", **entry}])
    out = apply_exceptions(prod, attestations=atts, today=TODAY)
    assert out["attestations"][0]["state"] == state
    expected = "attested" if state == "applied" else "not_evaluated"
    assert result_of(out, "PROD-PHYS-SERVERS", "site")["status"] == expected


@pytest.mark.parametrize(("text", "needle"), [
    ("attestations:\n  - requirement: X\n    attested_by: b\n    date: 2026-01-01\n", "'statement' is required"),
    ("attestations:\n  - requirement: X\n    statement: s\n    attested_by: b\n", "'date' must be a date"),
    ("attestations:\n  - requirement: X\n    statement: s\n    attested_by: b\n    date: 2026-01-01\n    who: me\n",
     "unknown field(s) ['who']"),
    ("- 1\n", "attestations entry #1 must be a mapping"),
])
def test_bad_files(tmp_path, text, needle):
    path = tmp_path / "att.yaml"
    path.write_text(text)
    with pytest.raises(ReportError) as exc:
        attestations.load(path)
    assert needle in str(exc.value) and str(path) in str(exc.value)
