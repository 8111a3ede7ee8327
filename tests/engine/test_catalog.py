"""The catalog holds every requirement of the shared research catalog, with usable fields."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wirecheck.catalog import CatalogError, default_catalog, load_catalog

SHARED = Path(__file__).resolve().parents[3] / "shared" / "requirements-catalog.md"


def shared_ids() -> set[str]:
    text = SHARED.read_text(encoding="utf-8")
    ids = set(re.findall(r"^#### ([A-Z0-9-]+) — ", text, re.M))
    ids |= set(re.findall(r"^\| (IMP-[A-Z0-9-]+) \|", text, re.M))
    return ids


@pytest.mark.skipif(not SHARED.exists(), reason="the shared catalog is not beside the repository")
def test_every_shared_id_is_in_the_catalog():
    ours = set(default_catalog().requirements)
    theirs = shared_ids()
    assert len(theirs) == 142
    assert theirs == ours


def test_fields_are_usable():
    cat = default_catalog()
    for req in cat:
        assert req.title and req.level in ("must", "should", "info"), req.id
        assert req.profiles and req.phases and req.remediation, req.id
        assert req.implicit or req.source_doc, req.id
        if req.url:
            assert req.url.startswith("https://"), req.id


def test_thresholds_live_in_the_catalog():
    cat = default_catalog()
    assert cat["DEMO-SYS-CPU"].params["min_cores"] == 16
    assert cat["DEMO-SYS-MEM"].params["more_than_gib"] == 16
    assert cat["DEMO-SYS-DISK"].params["more_than_gib"] == 200
    assert cat["DEMO-SYS-CPU"].url == "https://docs.wire.com/latest/how-to/install/planning.html"
    assert cat["IMP-INOTIFY"].implicit and cat["IMP-INOTIFY"].level == "should"


def test_unknown_id_is_an_error():
    with pytest.raises(CatalogError, match="unknown requirement ID 'NOPE-1'"):
        default_catalog()["NOPE-1"]


def test_unknown_id_in_a_check_is_a_collection_error(tmp_path):
    import subprocess
    import sys

    from tests.support.wc import REPO
    check = tmp_path / "test_unknown.py"
    check.write_text('from wirecheck import requirement\n\n@requirement("NOPE-1")\ndef test_x():\n    pass\n')
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "wirecheck.plugin", "-p", "no:cacheprovider",
                           str(check), "--report-dir", str(tmp_path / "r")], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout
    assert "unknown requirement ID 'NOPE-1'" in proc.stdout + proc.stderr


def test_malformed_catalog_is_reported(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("requirements:\n  X-1: {title: t}\n")
    with pytest.raises(CatalogError, match="X-1"):
        load_catalog(bad)
