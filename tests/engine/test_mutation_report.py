"""tools/mutation_report.py: the kill rate it prints is computed from mutmut's result files."""

from __future__ import annotations

import json

from tools import mutation_report as mr


def test_rates_per_module_total_and_equivalents(tmp_path, capsys, monkeypatch):
    root = tmp_path / "mutants"
    (root / "wirecheck").mkdir(parents=True)
    (root / "wirecheck" / "a.py.meta").write_text(json.dumps({"exit_code_by_key": {
        "wirecheck.a.x_f__mutmut_1": 1, "wirecheck.a.x_f__mutmut_2": 0, "wirecheck.a.x_f__mutmut_3": 36,
        "wirecheck.a.x_f__mutmut_4": 33, "wirecheck.a.x_f__mutmut_5": None}}))
    (root / "wirecheck" / "b.py.meta").write_text(json.dumps({"exit_code_by_key": {
        "wirecheck.b.x_g__mutmut_1": 1, "wirecheck.b.x_g__mutmut_2": 0}}))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "mutation-survivors.md").write_text("- `wirecheck.b.x_g__mutmut_2`: a default nobody reads\n")
    monkeypatch.chdir(tmp_path)
    assert mr.main(["--root", str(root), "--survivors"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("wirecheck/", "TOTAL"))}
    # a: 4 checked (1 not run), killed = exit 1 and the timeout; "no tests" counts as survived
    assert lines["wirecheck/a.py"][1:5] == ["4", "2", "2", "0"] and "50.0" in out
    assert lines["wirecheck/b.py"][1:5] == ["2", "1", "1", "1"]
    assert lines["TOTAL"][1:5] == ["6", "3", "3", "1"]
    assert "wirecheck.a.x_f__mutmut_2" in out and "wirecheck.b.x_g__mutmut_2" not in out.split("survivors")[-1]
    assert mr.main(["--root", str(root), "--min", "60"]) == 0        # adjusted 3 of 5 = 60 %
    assert mr.main(["--root", str(root), "--min", "61"]) == 1
    assert mr.main(["--root", str(tmp_path / "none")]) == 2
