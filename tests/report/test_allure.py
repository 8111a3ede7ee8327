"""Allure: labels from the catalog, environment and categories, rendered by the real Allure CLI."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from wirecheck.report import allure as wallure
from wirecheck.report import write_all

from .helpers import REPO, TODAY

INNER_TEST = '''
import json
from pathlib import Path

import pytest

from wirecheck.report.allure import apply_labels, attach_evidence, labels_for

REPORT_DIR = Path({report_dir!r})
C = json.loads((REPORT_DIR / "compliance.json").read_text())
ROLES = {{t["name"]: t["roles"] for t in C["targets"]}}
CASES = [(req, res) for req in C["requirements"] for res in req["results"]]


@pytest.mark.parametrize(("req", "res"), CASES, ids=[f"{{q['id']}}-{{s['target']}}" for q, s in CASES])
def test_check(req, res):
    # what the wirecheck plugin does for every check result
    apply_labels(labels_for(req, res, C["profile"], C["phase"], target_roles=ROLES.get(res["target"], [])))
    attach_evidence(res, REPORT_DIR)
    status = res["status"]
    if status == "fail":
        raise AssertionError(res["message"])          # the engine's Broken is an AssertionError
    if status == "error":
        raise RuntimeError(res["message"])            # could not measure
    if status in ("not_evaluated", "not_applicable"):
        pytest.skip(f"{{status}}: {{res['message']}}")
'''


def test_labels_for_a_host_check(demo_new):
    req = next(r for r in demo_new["requirements"] if r["id"] == "DEMO-SYS-CPU")
    labels = wallure.labels_for(req, req["results"][0], "demo", "preflight", target_roles=["deploy_node"])
    assert labels["epic"] == "demo preflight"
    assert labels["feature"] == "Demo deploy node (Wire-in-a-Box)"
    assert labels["story"] == "DEMO-SYS-CPU at least 16 CPU cores"
    assert labels["severity"] == "critical"
    assert labels["links"] == [{"url": "https://docs.wire.com/latest/how-to/install/planning.html",
                                "name": "DEMO-SYS-CPU: What you need", "type": "link"}]
    assert labels["tags"] == ["host:wiab-1", "role:deploy_node", "level:must", "status:pass"]
    should = next(r for r in demo_new["requirements"] if r["level"] == "should")
    assert wallure.labels_for(should, {}, "demo", "preflight")["severity"] == "normal"
    as_text = {**req, "source": "wire-docs src/how-to/install/planning.md › What you need"}
    assert wallure.labels_for(as_text, {}, "demo", "preflight")["links"][0]["name"] == (
        "DEMO-SYS-CPU: wire-docs src/how-to/install/planning.md › What you need")
    unsafe = {**req, "url": "javascript:alert(1)", "source": {}}
    assert wallure.labels_for(unsafe, {}, "demo", "preflight")["links"] == []


def test_environment_properties_are_escaped(tmp_path, demo_new):
    demo_new["targets"][0]["name"] = "wiab=1: größer\nzeile"
    path = wallure.write_environment(tmp_path, demo_new)
    text = path.read_text(encoding="ascii")
    assert "profile=demo\n" in text and "catalog_version=2026.11.1\n" in text
    assert "targets=wiab\\=1\\: gr\\u00f6\\u00dfer\\nzeile (203.0.113.10; deploy_node)" in text


def _generate(report_dir: Path, allure_cli: str, previous: Path | None = None) -> Path:
    env = {**os.environ, "PYTHONPATH": str(REPO), "WIRECHECK_ALLURE": allure_cli}
    inner = report_dir.parent / f"inner_{report_dir.name}"
    inner.mkdir()
    (inner / "test_inner.py").write_text(textwrap.dedent(INNER_TEST.format(report_dir=str(report_dir))))
    (inner / "pytest.ini").write_text("[pytest]\n")
    results = report_dir / "allure-results"
    cp = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--noconftest",
                         "-c", str(inner / "pytest.ini"), "--rootdir", str(inner), f"--alluredir={results}",
                         str(inner / "test_inner.py")], capture_output=True, text=True, timeout=300, env=env,
                        cwd=inner, check=False)
    assert cp.returncode == 1, cp.stdout + cp.stderr  # the run has failures, as the sample says
    assert list(results.glob("*-result.json"))
    args = [sys.executable, "-m", "wirecheck.cli", "allure", str(report_dir)]
    if previous is not None:
        args += ["--previous", str(previous)]
    cp = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert cp.returncode == 0, cp.stderr
    out = report_dir / "allure-report"
    assert cp.stdout.strip() == f"wrote {out / 'index.html'}"
    return out


def _cases(report: Path) -> dict[str, dict]:
    cases = {}
    for f in (report / "data" / "test-cases").glob("*.json"):
        case = json.loads(f.read_text())
        labels = {}
        for lab in case["labels"]:
            labels.setdefault(lab["name"], []).append(lab["value"])
        case["_labels"] = labels
        cases[case["name"]] = case
    return cases


def test_allure_report_rendered_offline(tmp_path, allure_cli, demo_old, demo_new):
    night1, night2 = tmp_path / "2026-11-26", tmp_path / "2026-11-27"
    for d, c in ((night1, demo_old), (night2, demo_new)):
        (d / "evidence" / "wiab-1").mkdir(parents=True)
        (d / "evidence" / "wiab-1" / "lscpu.txt").write_text("CPU(s): 16\n")
        (d / "evidence" / "wiab-1" / "df.txt").write_text("/  129372192768\n")
        write_all(d, c, today=TODAY)
    _generate(night1, allure_cli)
    report = _generate(night2, allure_cli, previous=night1)
    assert (report / "index.html").is_file()
    assert "googletagmanager" not in (report / "index.html").read_text()  # analytics off: nothing phones home

    cases = _cases(report)
    cpu = cases["DEMO-SYS-CPU on wiab-1: at least 16 CPU cores"]
    assert cpu["status"] == "passed"
    lab = cpu["_labels"]
    assert lab["epic"] == ["demo preflight"]
    assert lab["feature"] == ["Demo deploy node (Wire-in-a-Box)"]
    assert lab["story"] == ["DEMO-SYS-CPU at least 16 CPU cores"]
    assert lab["severity"] == ["critical"]
    assert {"host:wiab-1", "role:deploy_node", "level:must"} <= set(lab["tag"])
    assert lab["requirement"] == ["DEMO-SYS-CPU"] and lab["target"] == ["wiab-1"]
    assert cpu["links"] == [{"name": "DEMO-SYS-CPU: What you need",
                             "url": "https://docs.wire.com/latest/how-to/install/planning.html", "type": "link"}]
    atts = {a["name"]: a for a in cpu["testStage"]["attachments"]}
    assert set(atts) == {"evidence", "evidence/wiab-1/lscpu.txt"}
    evidence = json.loads((report / "data" / "attachments" / atts["evidence"]["source"]).read_text())
    assert evidence["observed"] == 16 and evidence["method"] == "nproc"
    assert (report / "data" / "attachments" / atts["evidence/wiab-1/lscpu.txt"]["source"]).read_text() == "CPU(s): 16\n"

    fwd = cases["DEMO-NET-IP-FORWARD on wiab-1: IPv4 forwarding between interfaces"]
    assert fwd["status"] == "failed" and "net.ipv4.ip_forward = 0" in fwd["statusMessage"]
    assert cases["DEMO-NET-FIREWALL on wiab-1: no host firewall interfering"]["status"] == "broken"
    assert cases["IMP-INOTIFY on wiab-1: inotify limits high enough for dozens of pods"]["_labels"]["severity"] == ["normal"]
    assert "status:warn" in cases["IMP-INOTIFY on wiab-1: inotify limits high enough for dozens of pods"]["_labels"]["tag"]

    # categories separate "requirement not met" from "could not measure"
    cats = json.loads((report / "data" / "categories.json").read_text())
    by_name = {c["name"]: {leaf["name"] for child in c["children"] for leaf in child.get("children", [child])}
               for c in cats["children"]}
    assert by_name["Requirement not met"] == {"DEMO-SYS-DISK on wiab-1: more than 200 GiB disk",
                                              "DEMO-NET-IP-FORWARD on wiab-1: IPv4 forwarding between interfaces"}
    assert by_name["Could not measure"] == {"DEMO-NET-FIREWALL on wiab-1: no host firewall interfering"}
    assert len(by_name["Not evaluated (input missing)"]) == 2
    assert len(by_name["Not applicable"]) == 1

    env = {e["name"]: e["values"] for e in json.loads((report / "widgets" / "environment.json").read_text())}
    assert env["profile"] == ["demo"] and env["phase"] == ["preflight"]
    assert env["catalog_version"] == ["2026.11.1"] and env["wirecheck_version"] == ["0.1.0"]
    assert env["targets"] == ["wiab-1 (203.0.113.10; deploy_node), control (localhost; control)"]

    # the history of the first night was carried over: the trend chart has two points
    trend = json.loads((report / "widgets" / "history-trend.json").read_text())
    assert len(trend) == 2
    assert trend[0]["data"]["failed"] == 2 and trend[1]["data"]["failed"] == 2
    assert json.loads((report / "history" / "history-trend.json").read_text()) == trend

    # one self-contained page for CI artifacts (opens from disk, no web server)
    single = wallure.generate(night2 / "allure-results", tmp_path / "single", allure=allure_cli, single_file=True)
    assert [p.name for p in single.iterdir()] == ["index.html"]
    page = (single / "index.html").read_text()
    embedded = {name: base64.b64decode(data) for name, data in re.findall(r"d\('([^']+)','([A-Za-z0-9+/=]+)'\)", page)}
    names = {json.loads(v)["name"] for k, v in embedded.items() if k.startswith("data/test-cases/")}
    assert names == set(cases)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing loaded from the network
