from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from wirecheck.report import apply_exceptions, waivers
from wirecheck.report.model import ReportError

from .helpers import TODAY, requirement_of, result_of


def test_example_file_loads(waivers_file):
    ws = waivers.load(waivers_file)
    assert [w.id for w in ws] == ["W-2026-014", "W-2026-009", "W-2026-020", "W-2026-021"]
    w = ws[0]
    assert (w.requirement, w.hosts, w.approver, w.expires, w.reference) == (
        "DEMO-SYS-DISK", ("wiab-1",), "Jane Doe (CISO)", dt.date(2026, 12, 15), "CHG-1234")
    assert ws[1].hosts is None and ws[2].hosts is None  # omitted and "*" both mean every host


def test_matching_fail_becomes_waived_and_is_counted_separately(demo_new, waivers_file):
    out = apply_exceptions(demo_new, waivers=waivers.load(waivers_file), today=TODAY)
    res = result_of(out, "DEMO-SYS-DISK", "wiab-1")
    assert res["status"] == "waived" and res["original_status"] == "fail"
    assert res["waiver"]["id"] == "W-2026-014" and res["waiver"]["approver"] == "Jane Doe (CISO)"
    assert requirement_of(out, "DEMO-SYS-DISK")["status"] == "waived"
    assert out["summary"]["waived"] == 1
    # the other failure in this run is untouched and still counted as a failure
    assert result_of(out, "DEMO-NET-IP-FORWARD", "wiab-1")["status"] == "fail"
    assert out["summary"]["fail"] == 1
    assert demo_new["summary"]["fail"] == 2  # the input is not modified
    reg = {w["id"]: w for w in out["waivers"]}
    assert reg["W-2026-014"]["state"] == "active" and reg["W-2026-014"]["applied_to"] == ["wiab-1"]
    assert reg["W-2026-021"]["state"] == "unused"  # DEMO-SYS-MEM passed: nothing to waive


@pytest.mark.parametrize(("today", "state", "status"), [
    (dt.date(2026, 12, 15), "active", "waived"),    # the last day still counts
    (dt.date(2026, 12, 16), "expired", "fail"),     # the day after, the failure is back
])
def test_expiry_with_fixed_dates(demo_new, waivers_file, today, state, status):
    out = apply_exceptions(demo_new, waivers=waivers.load(waivers_file), today=today)
    res = result_of(out, "DEMO-SYS-DISK", "wiab-1")
    assert res["status"] == status
    reg = {w["id"]: w for w in out["waivers"]}
    assert reg["W-2026-014"]["state"] == state
    if state == "expired":
        assert res["waiver_expired"]["id"] == "W-2026-014"
        assert "original_status" not in res
        assert reg["W-2026-014"]["would_apply_to"] == ["wiab-1"]
        assert out["summary"]["waived"] == 0 and out["summary"]["fail"] == 2


def test_expired_waiver_is_flagged_not_applied(demo_new, waivers_file):
    out = apply_exceptions(demo_new, waivers=waivers.load(waivers_file), today=TODAY)
    res = result_of(out, "IMP-INOTIFY", "wiab-1")
    assert res["status"] == "warn"
    assert res["waiver_expired"]["expires"] == "2026-11-01"
    assert {w["id"]: w["state"] for w in out["waivers"]}["W-2026-009"] == "expired"


def test_waiver_only_covers_named_hosts_and_failures(prod):
    ws = waivers.parse([
        {"requirement": "TIME-NTP-SYNC", "hosts": ["minio1"], "justification": "j", "approver": "a",
         "expires": "2027-01-01"},
        {"requirement": "HOST-SUDO", "justification": "cannot waive an unmeasured host", "approver": "a",
         "expires": "2027-01-01"},
    ])
    out = apply_exceptions(prod, waivers=ws, today=TODAY)
    assert result_of(out, "TIME-NTP-SYNC", "minio2")["status"] == "fail"   # minio1 named, minio2 failed
    assert result_of(out, "HOST-SUDO", "es1")["status"] == "error"          # error is not waivable
    assert result_of(out, "HOST-SUDO", "kube1")["status"] == "pass"
    assert [w["state"] for w in out["waivers"]] == ["unused", "unused"]


def test_partial_waiver_keeps_requirement_failing(prod):
    ws = waivers.parse([{"requirement": "PROD-VM-CASSANDRA", "hosts": ["cassandra1"], "justification": "j",
                         "approver": "a", "expires": dt.date(2027, 1, 1)}])
    prod = apply_exceptions(prod, today=TODAY)  # no waivers: nothing changes
    assert requirement_of(prod, "PROD-VM-CASSANDRA")["status"] == "fail"
    # waive the one failing host: the requirement is waived; a second failing host would keep it failing
    ws = waivers.parse([{"requirement": "PROD-VM-CASSANDRA", "hosts": ["cassandra3"], "justification": "j",
                         "approver": "a", "expires": dt.date(2027, 1, 1)}])
    out = apply_exceptions(prod, waivers=ws, today=TODAY)
    assert requirement_of(out, "PROD-VM-CASSANDRA")["status"] == "waived"
    result_of(prod, "PROD-VM-CASSANDRA", "cassandra1")["status"] = "fail"
    out = apply_exceptions(prod, waivers=ws, today=TODAY)
    assert requirement_of(out, "PROD-VM-CASSANDRA")["status"] == "fail"


@pytest.mark.parametrize(("text", "needle"), [
    ("waivers:\n  - requirement: X\n    justification: j\n    expires: 2026-01-01\n", "waiver #1 (X): 'approver' is required"),
    ("waivers:\n  - requirement: X\n    justification: j\n    approver: a\n    expires: next week\n",
     "'expires' must be a date like 2026-12-31, got 'next week'"),
    ("waivers:\n  - requirement: X\n    justification: j\n    approver: a\n    expires: 2026-01-01\n    expiry: 1\n",
     "unknown field(s) ['expiry']"),
    ("waivers:\n  - requirement: X\n    hosts: []\n    justification: j\n    approver: a\n    expires: 2026-01-01\n",
     "'hosts' must be a host name or a non-empty list"),
    ("waivers: [\n", "not valid YAML at line"),
    ("waiver:\n  - requirement: X\n", "expected a top-level 'waivers:' list"),
    ("waivers:\n  - just a string\n", "waivers entry #1 must be a mapping"),
    ("waivers:\n  - {id: A, requirement: X, justification: j, approver: a, expires: 2026-01-01}\n"
     "  - {id: A, requirement: Y, justification: j, approver: a, expires: 2026-01-01}\n", "duplicate id 'A'"),
])
def test_bad_files_give_one_clear_line(tmp_path, text, needle):
    path = tmp_path / "waivers.yaml"
    path.write_text(text)
    with pytest.raises(ReportError) as exc:
        waivers.load(path)
    msg = str(exc.value)
    assert needle in msg and str(path) in msg and "\n" not in msg


def test_missing_file(tmp_path):
    with pytest.raises(ReportError, match="cannot read waivers file"):
        waivers.load(Path(tmp_path / "nope.yaml"))


def test_empty_file_means_no_waivers(tmp_path):
    (tmp_path / "w.yaml").write_text("# nothing yet\n")
    assert waivers.load(tmp_path / "w.yaml") == []


# --- the decision itself, on hand-made results (fast; also what the mutation run leans on) -------------

def _w(hosts, rid="DEMO-SYS-DISK", expires=dt.date(2026, 12, 31), wid="W1"):
    return waivers.Waiver(id=wid, requirement=rid, hosts=hosts, justification="j", approver="a", expires=expires)


def _run(*results, rid="DEMO-SYS-DISK"):
    return {"requirements": [{"id": rid, "status": "fail", "results": [dict(r) for r in results]}]}


def test_waiver_for_one_host_does_not_waive_a_host_whose_name_starts_alike():
    """Issue 12 mutant: a waiver for wiab-1 also waived wiab-10."""
    run = _run({"target": "wiab-1", "status": "fail"}, {"target": "wiab-10", "status": "fail"},
               {"target": "wiab", "status": "fail"}, {"target": "xwiab-1", "status": "fail"})
    reg = waivers.apply(run, [_w(("wiab-1",))], dt.date(2026, 12, 1))
    got = {r["target"]: r["status"] for r in run["requirements"][0]["results"]}
    assert got == {"wiab-1": "waived", "wiab-10": "fail", "wiab": "fail", "xwiab-1": "fail"}
    assert run["requirements"][0]["status"] == "fail" and run["requirements"][0]["original_status"] == "fail"
    assert reg[0]["applied_to"] == ["wiab-1"] and reg[0]["state"] == "active"


def test_waiver_from_a_single_host_string_matches_that_host_only(tmp_path):
    from wirecheck.report.model import as_hosts
    assert as_hosts("wiab-1") == ("wiab-1",)
    ws = waivers.parse([{"requirement": "DEMO-SYS-DISK", "hosts": "wiab-1", "justification": "j", "approver": "a",
                         "expires": "2026-12-31"}])
    assert ws[0].covers("DEMO-SYS-DISK", "wiab-1") and not ws[0].covers("DEMO-SYS-DISK", "wiab-10")
    assert not ws[0].covers("DEMO-SYS-DISK", "wiab-") and not ws[0].covers("DEMO-SYS-DIS", "wiab-1")
    assert not ws[0].covers("DEMO-SYS-DISK-X", "wiab-1")


def test_waiver_for_every_host_and_statuses_it_never_touches():
    run = {"requirements": [{"id": "DEMO-SYS-DISK", "status": "error", "results": [
        {"target": "a", "status": "fail"}, {"target": "b", "status": "warn"}, {"target": "c", "status": "error"},
        {"target": "d", "status": "pass"}, {"target": "e", "status": "not_evaluated"},
        {"target": "f", "status": "not_applicable"}]}]}
    waivers.apply(run, [_w(None)], dt.date(2026, 12, 1))
    got = {r["target"]: r["status"] for r in run["requirements"][0]["results"]}
    assert got == {"a": "waived", "b": "waived", "c": "error", "d": "pass", "e": "not_evaluated",
                   "f": "not_applicable"}
    assert run["requirements"][0]["status"] == "error"      # the worst left: an error is never waived


def test_all_results_waived_makes_the_requirement_waived():
    run = _run({"target": "a", "status": "fail"}, {"target": "b", "status": "warn"}, {"target": "c", "status": "pass"})
    waivers.apply(run, [_w(("a", "b"))], dt.date(2026, 12, 1))
    req = run["requirements"][0]
    assert req["status"] == "waived" and req["original_status"] == "fail"
    assert req["results"][1]["original_status"] == "warn" and req["results"][1]["waiver"]["id"] == "W1"


def test_expired_and_unused_states_and_the_latest_expired_is_named():
    run = _run({"target": "a", "status": "fail"})
    old, older = _w(("a",), expires=dt.date(2026, 11, 30), wid="old"), _w(("a",), expires=dt.date(2026, 1, 1), wid="older")
    unused = _w(("zz",), wid="unused")
    reg = {r["id"]: r for r in waivers.apply(run, [older, old, unused], dt.date(2026, 12, 1))}
    res = run["requirements"][0]["results"][0]
    assert res["status"] == "fail" and res["waiver_expired"]["id"] == "old" and "waiver" not in res
    assert "original_status" not in run["requirements"][0]
    assert reg["old"]["state"] == "expired" and reg["old"]["would_apply_to"] == ["a"]
    assert reg["older"]["would_apply_to"] == [] and reg["unused"]["state"] == "unused"
    assert reg["unused"]["applied_to"] == [] and reg["unused"]["hosts"] == ["zz"]
    # on its last day a waiver still applies; the first active one of several wins
    run = _run({"target": "a", "status": "fail"})
    reg = {r["id"]: r for r in waivers.apply(run, [old, _w(("a",), wid="new")], dt.date(2026, 11, 30))}
    assert run["requirements"][0]["results"][0]["waiver"]["id"] == "old" and reg["new"]["state"] == "unused"


def test_site_results_without_target_match_a_site_waiver():
    run = _run({"status": "fail"})
    waivers.apply(run, [_w(("site",))], dt.date(2026, 12, 1))
    assert run["requirements"][0]["results"][0]["status"] == "waived"


def test_waiver_as_recorded_in_the_report():
    w = waivers.Waiver(id="W9", requirement="DEMO-SYS-CPU", hosts=None, justification="pilot", approver="CISO",
                       expires=dt.date(2026, 12, 31), reference="CHG-1")
    assert w.as_dict() == {"id": "W9", "requirement": "DEMO-SYS-CPU", "hosts": ["*"], "justification": "pilot",
                           "approver": "CISO", "expires": "2026-12-31", "reference": "CHG-1"}
    assert _w(("a", "b")).as_dict()["hosts"] == ["a", "b"] and _w(("a",)).as_dict()["reference"] is None


def test_applying_again_keeps_the_first_original_status():
    run = {"requirements": [{"id": "DEMO-SYS-DISK", "status": "fail", "original_status": "error",
                             "results": [{"target": "a", "status": "fail"}]}]}
    waivers.apply(run, [_w(("a",))], dt.date(2026, 12, 1))
    assert run["requirements"][0]["original_status"] == "error" and run["requirements"][0]["status"] == "waived"


def test_parse_errors_name_the_file_the_entry_and_its_requirement():
    entry = {"requirement": "DEMO-SYS-DISK", "approver": "a", "expires": "2026-12-31"}
    with pytest.raises(ReportError) as exc:
        waivers.parse([entry])
    assert str(exc.value) == ("waivers: waiver #1 (DEMO-SYS-DISK): 'justification' is required and must be "
                              "non-empty text")
    with pytest.raises(ReportError) as exc:
        waivers.parse([{"justification": "j", "approver": "a", "expires": "2026-12-31"}], "w.yaml")
    assert str(exc.value) == "w.yaml: waiver #1: 'requirement' is required and must be non-empty text"
    w = waivers.parse([{**entry, "justification": " pilot "}])[0]
    assert w.justification == "pilot" and w.id == "W1"
