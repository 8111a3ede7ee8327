"""Fixtures for the report tests: sample runs, fixed dates, headless Chromium, the Allure CLI."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from .helpers import DATA, REPO

_spec = importlib.util.spec_from_file_location("wirecheck_test_chromium", REPO / "tests" / "support" / "chromium.py")
assert _spec and _spec.loader
chromium_support = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chromium_support)


def _missing(tool: str, how: str) -> None:
    """Locally a missing tool skips; in CI (CI=true) it fails, so a broken install step is noticed."""
    if os.environ.get("CI"):
        pytest.fail(f"{tool} not found: {how}")
    pytest.skip(f"{tool} not found: {how}")


@pytest.fixture
def sample():
    def load(name: str) -> dict[str, Any]:
        return json.loads((DATA / name).read_text(encoding="utf-8"))
    return load


@pytest.fixture
def demo_old(sample) -> dict[str, Any]:
    return sample("demo-preflight-2026-11-26.json")


@pytest.fixture
def demo_new(sample) -> dict[str, Any]:
    return sample("demo-preflight-2026-11-27.json")


@pytest.fixture
def prod(sample) -> dict[str, Any]:
    return sample("production-preflight-2026-11-27.json")


@pytest.fixture
def waivers_file() -> Path:
    return DATA / "waivers.yaml"


@pytest.fixture
def attestations_file() -> Path:
    return DATA / "attestations.yaml"


@pytest.fixture
def chromium(tmp_path_factory):
    binary = chromium_support.find_chromium()
    if binary is None:
        _missing("chromium", "apt-get install chromium (or set WIRECHECK_CHROMIUM)")
    return chromium_support.Chromium(binary, tmp_path_factory.mktemp("chromium"))


@pytest.fixture(scope="session")
def allure_cli() -> str:
    from wirecheck.report.allure import find_allure

    exe = find_allure()
    if exe is None:
        _missing("allure", "npm install allure-commandline (needs Java), put it on PATH or set WIRECHECK_ALLURE")
    return exe
