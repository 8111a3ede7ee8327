"""expect() and the verdict helpers record the evidence an auditor reads."""

from __future__ import annotations

import pytest

from wirecheck.outcome import (
    Broken,
    CannotMeasure,
    NotEvaluated,
    begin,
    end,
    expect,
    not_evaluated,
    record,
    worst,
)


@pytest.fixture
def ev():
    ev, token = begin()
    yield ev
    end(token)


def test_at_least_passes_and_records(ev):
    expect(16, "CPU cores", method="nproc").at_least(16)
    assert ev.observed == 16 and ev.expected == ">= 16" and ev.method == "nproc"
    assert ev.held == ["CPU cores: 16 (need >= 16)"]


def test_at_least_breaks_with_observed_and_expected(ev):
    with pytest.raises(Broken) as exc:
        expect(2, "CPU cores", method="nproc").at_least(16)
    assert exc.value.message == "CPU cores: 2, need >= 16"
    assert ev.observed == 2 and ev.expected == ">= 16"


def test_greater_than_is_strict(ev):
    with pytest.raises(Broken):
        expect(16.0, "memory", unit="GiB").greater_than(16)
    expect(16.5, "memory", unit="GiB").greater_than(16)


@pytest.mark.parametrize("judge", [
    lambda e: e.at_least(0), lambda e: e.at_most(10), lambda e: e.greater_than(-1), lambda e: e.equals(None),
    lambda e: e.one_of([None]), lambda e: e.is_true("x"), lambda e: e.is_empty(),
    lambda e: e.satisfies(lambda v: True, "anything")])
def test_nothing_measured_is_an_error_never_pass_or_fail(ev, judge):
    """None is "nothing was read": every comparison on it ends the check as error, and says so."""
    with pytest.raises(CannotMeasure) as exc:
        judge(expect(None, "fs.nr_open", method="/proc/sys/fs/nr_open"))
    assert not isinstance(exc.value, Broken)
    assert exc.value.message.startswith("fs.nr_open: no value was measured")
    assert "(/proc/sys/fs/nr_open)" in exc.value.message
    assert ev.held == [] and ev.broken == []


def test_soft_expectation_on_nothing_measured_is_still_an_error(ev):
    with pytest.raises(CannotMeasure):
        expect(None, "a", soft=True).at_least(2)


def test_soft_expectations_collect(ev):
    expect(1, "a", soft=True).at_least(2)
    expect(5, "b", soft=True).at_least(2)
    expect(0, "c", soft=True).equals(1)
    assert ev.broken == ["a: 1, need >= 2", "c: 0, need 1"]


def test_not_evaluated_names_the_option():
    with pytest.raises(NotEvaluated) as exc:
        not_evaluated("no domain given", option="--domain")
    assert "--domain" in exc.value.message


def test_record(ev):
    record(filesystem="/dev/vda")
    assert ev.details == {"filesystem": "/dev/vda"}


@pytest.mark.parametrize("statuses,expected", [
    (["pass", "fail"], "fail"), (["pass", "error", "fail"], "fail"), (["pass", "error"], "error"), (["pass", "warn"], "warn"),
    (["not_applicable", "pass"], "pass"), (["not_evaluated", "pass"], "not_evaluated"), ([], "not_implemented"),
])
def test_worst(statuses, expected):
    assert worst(statuses) == expected


@pytest.mark.parametrize("observed,judge,held", [
    # an empty list of problems: the requirement met, never "UDP 32768-65535: none"
    ([], lambda e: e.is_empty("all of UDP 32768-65535 reach the target"),
     "blocked ports: all of UDP 32768-65535 reach the target"),
    (True, lambda e: e.is_true("sudo -n works for the login user"), "blocked ports: sudo -n works for the login user"),
    ({"a": 1}, lambda e: e.satisfies(lambda v: True, "every certificate valid for >= 30 days"),
     "blocked ports: every certificate valid for >= 30 days"),
    ([], lambda e: e.is_empty("x", passed="all 32,768 ports reached (blocked: none)"),
     "all 32,768 ports reached (blocked: none)"),
    (3, lambda e: e.at_least(1), "blocked ports: 3 (need >= 1)"),
])
def test_pass_messages_say_what_passed(ev, observed, judge, held):
    judge(expect(observed, "blocked ports"))
    assert ev.held == [held]
    assert "none (need" not in held


def test_fail_message_names_what_failed(ev):
    with pytest.raises(Broken) as exc:
        expect([40000, 40001], "blocked ports of UDP 32768-65535").is_empty(
            "all of UDP 32768-65535 reach the target", passed="all 32,768 ports reached")
    assert exc.value.message == "blocked ports of UDP 32768-65535: 40,000, 40,001, need all of UDP 32768-65535 " \
        "reach the target"
