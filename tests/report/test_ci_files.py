"""The nightly pipelines: valid YAML, shell that parses, the artifacts and gate the issue asks for."""

from __future__ import annotations

import re
import subprocess

import yaml

from .helpers import REPO

GITHUB = REPO / ".github" / "workflows" / "nightly.yml"
GITLAB = REPO / ".gitlab-ci.yml"


def bash_syntax_ok(script: str, tmp_path) -> None:
    path = tmp_path / "snippet.sh"
    path.write_text(script)
    cp = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert cp.returncode == 0, f"{cp.stderr}\n---\n{script}"


def test_github_workflow(tmp_path):
    wf = yaml.safe_load(GITHUB.read_text())
    on = wf[True]  # YAML 1.1 reads the key `on` as true
    assert on["schedule"] and "workflow_dispatch" in on
    assert set(on["workflow_dispatch"]["inputs"]["mode"]["options"]) == {"acceptance", "provision-demo"}
    steps = wf["jobs"]["nightly"]["steps"]
    for step in steps:
        if "run" in step:
            bash_syntax_ok(re.sub(r"\$\{\{[^}]*\}\}", "X", step["run"]), tmp_path)
    names = [s.get("name", s.get("uses")) for s in steps]
    assert names[-1] == "Gate (MUST requirements only, waivers honoured)"
    assert "wirecheck gate" in steps[-1]["run"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    for path in ("compliance.html", "compliance.json", "integrity.json", "allure-report/", "evidence/"):
        assert f"reports/nightly/{path}" in upload["with"]["path"]
    assert any(s.get("uses", "").startswith("mikepenz/action-junit-report") for s in steps)
    text = GITHUB.read_text()
    assert "--previous" in text and "--junitxml" in text and "secrets.WIRECHECK_INVENTORY" in text


def test_gitlab_pipeline(tmp_path):
    ci = yaml.safe_load(GITLAB.read_text())
    job = ci["wirecheck-nightly"]
    bash_syntax_ok("\n".join(job["before_script"] + job["script"]), tmp_path)
    assert job["script"][-1] == 'wirecheck gate "$REPORT"'
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == "reports/nightly/**/junit*.xml"
    assert {"reports/nightly/compliance.html", "reports/nightly/allure-report/"} <= set(job["artifacts"]["paths"])
    assert job["cache"]["paths"] == ["reports/previous/"]
    assert {r["if"] for r in ci["workflow"]["rules"]} == {'$CI_PIPELINE_SOURCE == "schedule"',
                                                           '$CI_PIPELINE_SOURCE == "web"'}
