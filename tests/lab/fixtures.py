"""pytest fixtures for lab hosts.

tests/conftest.py imports them (``from tests.lab.fixtures import *``). A machine that cannot run a lab makes lab tests SKIP, unless
WIRECHECK_REQUIRE_LAB=1 is set (CI), which turns the same condition into a test FAILURE.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.lab.core import Lab, LabUnavailable, lab_unavailable_reason

__all__ = ["lab", "lab_module"]  # what `from tests.lab.fixtures import *` puts into a conftest

REQUIRE_ENV = "WIRECHECK_REQUIRE_LAB"


def lab_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip() == "1"


def skip_or_fail(reason: str) -> None:
    """SKIP normally; FAIL when the environment demands a working lab."""
    if lab_required():
        pytest.fail(f"lab required ({REQUIRE_ENV}=1) but unavailable: {reason}", pytrace=False)
    pytest.skip(f"lab unavailable: {reason}")


def open_lab() -> Lab:
    reason = lab_unavailable_reason()
    if reason:
        skip_or_fail(reason)
    try:
        return Lab()
    except LabUnavailable as exc:
        skip_or_fail(str(exc))
        raise  # not reached: skip_or_fail raises


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh lab per test; every host, namespace and process is gone after the test."""
    with open_lab() as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def lab_module() -> Iterator[Lab]:
    """One lab shared by the tests of a module (add hosts once, e.g. in a module fixture)."""
    with open_lab() as the_lab:
        yield the_lab
