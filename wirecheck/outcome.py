"""Verdicts and evidence.

A check measures, then states what it expected with ``expect(...)``.  The pytest plugin turns
what the check recorded (or raised) into one of the six outcomes and a result with evidence.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

PASS, FAIL, WARN = "pass", "fail", "warn"
NOT_APPLICABLE, NOT_EVALUATED, ERROR, NOT_IMPLEMENTED = (
    "not_applicable", "not_evaluated", "error", "not_implemented")
STATUSES = (PASS, FAIL, WARN, NOT_APPLICABLE, NOT_EVALUATED, ERROR, NOT_IMPLEMENTED)
# Worst first: a requirement's status is the worst of its results. A measured failure outranks "could
# not measure": one host that cannot be read does not hide another host's measured failure (issue 18).
SEVERITY = {FAIL: 7, ERROR: 6, WARN: 5, NOT_EVALUATED: 4, NOT_IMPLEMENTED: 3, PASS: 2, NOT_APPLICABLE: 1}


def worst(statuses: Iterable[str]) -> str:
    items = list(statuses)
    return max(items, key=lambda s: SEVERITY.get(s, 0)) if items else NOT_IMPLEMENTED


@dataclass
class Evidence:
    """What one check run observed; filled while the check runs."""

    observed: Any = None
    expected: Any = None
    method: str | None = None
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)   # messages of broken expectations (soft)
    held: list[str] = field(default_factory=list)     # what held, for the pass message


_current: contextvars.ContextVar[Evidence | None] = contextvars.ContextVar("wirecheck_evidence", default=None)


def current() -> Evidence:
    ev = _current.get()
    if ev is None:  # called outside a check (a probe's unit test, a REPL): collect into a throwaway
        ev = Evidence()
        _current.set(ev)
    return ev


def begin() -> tuple[Evidence, contextvars.Token]:
    ev = Evidence()
    return ev, _current.set(ev)


def end(token: contextvars.Token) -> None:
    _current.reset(token)


class Outcome(Exception):  # noqa: N818 - it is an outcome, not only an error
    """Raised inside a check to end it with a given status."""

    status = ERROR

    def __init__(self, message: str, **evidence: Any):
        super().__init__(message)
        self.message = message
        self.evidence = evidence


class Broken(Outcome, AssertionError):
    """An expectation did not hold: fail for MUST, warn for SHOULD/INFO.

    An AssertionError too, so that report tools (Allure) file it as "requirement not met" and not as
    "could not measure"."""

    status = FAIL


class NotApplicable(Outcome):
    status = NOT_APPLICABLE


class NotEvaluated(Outcome):
    status = NOT_EVALUATED

    def __init__(self, message: str, option: str | None = None, **evidence: Any):
        if option and option not in message:
            message = f"{message} (supply it with {option})"
        super().__init__(message, option=option, **evidence)


class CannotMeasure(Outcome):
    status = ERROR


def not_applicable(reason: str) -> None:
    raise NotApplicable(reason)


def not_evaluated(reason: str, option: str | None = None) -> None:
    raise NotEvaluated(reason, option=option)


def cannot_measure(reason: str, **evidence: Any) -> None:
    raise CannotMeasure(reason, **evidence)


def record(**details: Any) -> None:
    """Add evidence to the running check's result."""
    current().details.update(details)


def fail(message: str | None = None, *, observed: Any = None, expected: Any = None,
         method: str | None = None) -> None:
    ev = current()
    ev.observed, ev.expected = observed, expected
    if method:
        ev.method = method
    raise Broken(message or f"{observed}, need {expected}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(_fmt(v) for v in value) or "none"
    return str(value)


class Expectation:
    """``expect(observed, what, method=...)`` then one comparison; reads like the docs' sentence."""

    def __init__(self, observed: Any, what: str, method: str | None = None, unit: str = "",
                 soft: bool = False):
        self.observed, self.what, self.method, self.unit, self.soft = observed, what, method, unit, soft
        ev = current()
        ev.observed = observed if ev.observed is None or not ev.broken else ev.observed
        if method:
            ev.method = method if not ev.method or ev.method == method else f"{ev.method}; {method}"

    def _shown(self, v: Any) -> str:
        return f"{_fmt(v)}{' ' + self.unit if self.unit else ''}"

    def _held(self, expected: str, passed: str | None) -> str:
        """What held, as a sentence: the check's own words (passed), else the requirement met
        ("resolver: names resolve ...") for a yes/no, a mapping or an empty list of problems (an empty
        list shown as "none" would read as "nothing reached"), else the value beside its bound."""
        if passed:
            return passed
        if isinstance(self.observed, (bool, dict)) or (isinstance(self.observed, (list, tuple, set))
                                                       and not self.observed):
            return f"{self.what}: {expected}"     # a mapping is evidence (record it), not a sentence
        return f"{self.what}: {self._shown(self.observed)} (need {expected})"

    def _judge(self, ok: bool | Callable[[], bool], expected: str, message: str | None = None,
               passed: str | None = None) -> Expectation:
        ev = current()
        if self.observed is None:
            # Nothing was read: no comparison can pass or fail on it. A check that means "absent"
            # states it with a value (False, "", []), never with None.
            raise CannotMeasure(f"{self.what}: no value was measured, so it cannot be compared with "
                                f"{expected}" + (f" ({self.method})" if self.method else ""))
        if callable(ok):
            ok = ok()
        if ev.expected is None or not ev.broken:
            ev.expected = expected
        if ok:
            ev.held.append(self._held(expected, passed))
            return self
        msg = message or f"{self.what}: {self._shown(self.observed)}, need {expected}"
        ev.observed, ev.expected = self.observed, expected
        if self.soft:
            ev.broken.append(msg)
            return self
        raise Broken(msg)

    # the comparison is a callable: it runs only on a measured (not None) value
    def at_least(self, limit: Any) -> Expectation:
        return self._judge(lambda: self.observed >= limit, f">= {self._shown(limit)}")

    def greater_than(self, limit: Any) -> Expectation:
        return self._judge(lambda: self.observed > limit, f"> {self._shown(limit)}")

    def at_most(self, limit: Any) -> Expectation:
        return self._judge(lambda: self.observed <= limit, f"<= {self._shown(limit)}")

    def equals(self, value: Any) -> Expectation:
        return self._judge(lambda: self.observed == value, f"{_fmt(value)}")

    def one_of(self, values: Iterable[Any]) -> Expectation:
        values = list(values)
        return self._judge(lambda: self.observed in values, f"one of {_fmt(values)}")

    # message: the sentence when it breaks; passed: the sentence when it holds (defaults: _held)
    def is_true(self, expected: str, message: str | None = None, passed: str | None = None) -> Expectation:
        return self._judge(lambda: bool(self.observed), expected, message, passed)

    def is_empty(self, expected: str = "none", message: str | None = None, passed: str | None = None) -> Expectation:
        return self._judge(lambda: not self.observed, expected, message, passed)

    def satisfies(self, pred: Callable[[Any], bool], expected: str, message: str | None = None,
                  passed: str | None = None) -> Expectation:
        return self._judge(lambda: bool(pred(self.observed)), expected, message, passed)


def expect(observed: Any, what: str, method: str | None = None, unit: str = "", soft: bool = False) -> Expectation:
    """State an expectation about a measured value.

    ``soft=True`` collects the broken expectation and lets the check go on measuring (the check
    ends as broken when it returns); use it to report several problems of one requirement at once.

    ``observed`` None means nothing was read: the check ends as ``error`` (CannotMeasure), never
    as pass or fail, whatever the comparison.  A check ends as ``pass`` only when at least one
    expectation held and none broke (the plugin turns a check that judged nothing into ``error``).
    """
    return Expectation(observed, what, method, unit, soft)
