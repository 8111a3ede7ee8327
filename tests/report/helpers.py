"""Helpers shared by the report tests."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "reports"
TODAY = dt.date(2026, 11, 27)  # the day the sample runs "happened": waiver expiry is tested against it


def result_of(compliance: dict[str, Any], rid: str, target: str) -> dict[str, Any]:
    for req in compliance["requirements"]:
        if req["id"] == rid:
            for res in req["results"]:
                if res["target"] == target:
                    return res
    raise KeyError((rid, target))


def requirement_of(compliance: dict[str, Any], rid: str) -> dict[str, Any]:
    return next(r for r in compliance["requirements"] if r["id"] == rid)


def with_xss(compliance: dict[str, Any]) -> dict[str, Any]:
    """A copy whose texts try to run script: none of it may execute in the page."""
    c = copy.deepcopy(compliance)
    req = c["requirements"][0]
    req["title"] = "<script>document.body.setAttribute('data-pwned','title')</script>"
    req["url"] = "javascript:document.body.setAttribute('data-pwned','url')"
    res = req["results"][0]
    res["observed"] = "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
    res["message"] = "</details></dialog><script>document.body.setAttribute('data-pwned','msg')</script>"
    res["target"] = "\"><svg onload=\"document.body.setAttribute('data-pwned','host')\">"
    c["targets"].append({"name": res["target"], "address": "<b>x</b>", "roles": ["<i>r</i>"]})
    c["requirements"][1]["area"] = "'><script>document.body.setAttribute('data-pwned','area')</script>"
    return c
