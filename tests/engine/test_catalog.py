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


# --- the catalog as a hand-edited file -------------------------------------------------------

def _raw_catalog() -> tuple[str, dict]:
    import yaml

    from wirecheck.catalog import CATALOG_PATH
    text = CATALOG_PATH.read_text(encoding="utf-8")
    return text, yaml.safe_load(text)


def test_catalog_validates_against_its_schema():
    from wirecheck.catalog import validate_entries
    _, doc = _raw_catalog()
    validate_entries(doc["requirements"], "wirecheck/catalog.yaml")   # raises naming the first problem


def test_schema_rejects_what_a_hand_edit_gets_wrong():
    from wirecheck.catalog import validate_entries
    _, doc = _raw_catalog()
    good = dict(doc["requirements"]["DEMO-SYS-CPU"])
    for broken, said in (({**good, "level": "mandatory"}, "mandatory"),
                         ({k: v for k, v in good.items() if k != "remediation"}, "remediation"),
                         ({**good, "profiles": ["prod"]}, "prod"),
                         ({**good, "remedation": "typo"}, "remedation")):
        with pytest.raises(CatalogError, match=said):
            validate_entries({"DEMO-SYS-CPU": broken}, "test")


def test_no_generated_anchors_or_dead_fields():
    text, doc = _raw_catalog()
    assert not re.search(r"&id\d+|\*id\d+", text), "YAML anchors: write the lists out (tools/import_catalog.py dumps without)"
    for rid, raw in doc["requirements"].items():
        assert "remediation_override" not in raw, rid
        assert raw.get("condition", None) != "", f"{rid}: empty condition (leave the field out)"


def test_conditions_follow_the_level_text():
    """Every condition is what tools/import_catalog.py's level rule makes of the level text: never a
    fragment cut at the first parenthesis (`demo) / INFO (prod, conflicting figures`)."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    try:
        from import_catalog import level_of
    finally:
        sys.path.pop(0)
    assert level_of("MUST (demo) / INFO (prod, conflicting figures)") == (
        "must", "differs by case: MUST (demo) / INFO (prod, conflicting figures)")
    assert level_of("MUST (when federation is enabled)") == ("must", "when federation is enabled")
    assert level_of("SHOULD") == ("should", "")
    _, doc = _raw_catalog()
    for rid, raw in doc["requirements"].items():
        level, condition = level_of(raw["level_text"])
        assert raw["level"] == level, rid
        assert raw.get("condition", "") == condition, rid
        assert condition.count("(") == condition.count(")"), rid
