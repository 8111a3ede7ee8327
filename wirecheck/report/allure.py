"""Allure metadata for checks, and rendering the Allure HTML report offline.

The pytest plugin calls, per check result::

    labels = labels_for(requirement, result, profile, phase, target_roles=roles)
    apply_labels(labels)          # allure.dynamic.epic/feature/story/severity/link/tag/label/title
    attach_evidence(result)       # the evidence as a JSON attachment (+ files under evidence/)

and once per run ``write_environment(alluredir, compliance)`` and ``write_categories(alluredir)``.

Categories separate "requirement not met" from "could not measure" by Allure status (failed vs
broken, see ``ALLURE_STATUS``) and not-evaluated from not-applicable by the skip reason.

``generate(results, output, previous=...)`` runs the Allure 2 command line (npm package
``allure-commandline``, needs Java, works offline) with its analytics switched off, and carries the
trend history over from a previous report directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .model import ERROR, FAIL, NOT_APPLICABLE, NOT_EVALUATED, PASS, WARN, ReportError

SEVERITY = {"must": "critical", "should": "normal", "info": "minor"}
ALLURE_ENV = "WIRECHECK_ALLURE"
REPORT_SUBDIR = "allure-report"
RESULTS_SUBDIR = "allure-results"

#: Allure status each outcome should end as.  allure-pytest marks a test "failed" only for an
#: AssertionError (or pytest.fail) and "broken" for any other exception, so the engine's Broken outcome
#: must be an AssertionError; warn passes (CI fails on MUST only) and is visible by its status tag.
ALLURE_STATUS = {PASS: "passed", FAIL: "failed", WARN: "passed", ERROR: "broken",
                 NOT_EVALUATED: "skipped", NOT_APPLICABLE: "skipped"}

#: Categories: "requirement not met" (failed) apart from "could not measure" (broken); skips are split
#: by the outcome name the plugin puts first in the skip reason ("not_evaluated: ...").
CATEGORIES: list[dict[str, Any]] = [
    {"name": "Requirement not met", "matchedStatuses": ["failed"]},
    {"name": "Could not measure", "matchedStatuses": ["broken"]},
    {"name": "Not evaluated (input missing)", "matchedStatuses": ["skipped"],
     "messageRegex": r"(?s).*not[_ ]evaluated.*"},
    {"name": "Not applicable", "matchedStatuses": ["skipped"], "messageRegex": r"(?s).*not[_ ]applicable.*"},
]


def labels_for(requirement: dict[str, Any], result: dict[str, Any], profile: str, phase: str, *,
               target_roles: list[str] | None = None) -> dict[str, Any]:
    """Everything Allure should show for one check result, as plain data."""
    rid = str(requirement.get("id", "?"))
    title = str(requirement.get("title") or "")
    host = str(result.get("target") or "site")
    level = str(requirement.get("level") or "info").lower()
    raw_source = requirement.get("source")
    source = raw_source if isinstance(raw_source, dict) else {}
    url = requirement.get("url") or source.get("url")
    section = (source.get("section") or source.get("doc")
               or (raw_source if isinstance(raw_source, str) and raw_source else None) or "docs.wire.com")
    roles = list(target_roles if target_roles is not None else result.get("roles") or requirement.get("roles") or [])
    links = []
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        links.append({"url": url, "name": f"{rid}: {section}", "type": "link"})
    tags = [f"host:{host}"] + [f"role:{r}" for r in roles] + [f"level:{level}"]
    if result.get("status"):
        tags.append(f"status:{result['status']}")
    desc = [f"**{rid}** — {title}", ""]
    if requirement.get("requirement"):
        desc += [str(requirement["requirement"]), ""]
    remediation = result.get("remediation") or requirement.get("remediation")
    if remediation:
        desc += [f"Remediation: {remediation}"]
    return {
        "title": f"{rid} on {host}: {title}",
        "epic": f"{profile} {phase}",
        "feature": str(requirement.get("area") or "other"),
        "story": f"{rid} {title}".strip(),
        "severity": SEVERITY.get(level, "normal"),
        "links": links,
        "tags": tags,
        "labels": {"requirement": rid, "target": host, "level": level, "profile": profile, "phase": phase},
        "description": "\n".join(desc).strip(),
    }


def apply_labels(labels: dict[str, Any]) -> None:
    """Set the labels on the running test through allure-pytest's dynamic API."""
    import allure

    allure.dynamic.title(labels["title"])
    allure.dynamic.epic(labels["epic"])
    allure.dynamic.feature(labels["feature"])
    allure.dynamic.story(labels["story"])
    allure.dynamic.severity(allure.severity_level(labels["severity"]))
    for link in labels["links"]:
        allure.dynamic.link(link["url"], link_type=link.get("type", "link"), name=link.get("name"))
    allure.dynamic.tag(*labels["tags"])
    for name, value in labels["labels"].items():
        allure.dynamic.label(name, value)
    if labels.get("description"):
        allure.dynamic.description(labels["description"])


def evidence_document(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("target", "status", "original_status", "observed", "expected", "method", "message", "remediation",
            "check", "evidence", "waiver", "attestation")
    return {k: result[k] for k in keys if k in result}


def attach_evidence(result: dict[str, Any], report_dir: Path | None = None) -> None:
    """Attach the result's evidence as JSON, and the files it names under <report_dir>/evidence/."""
    import allure

    allure.attach(json.dumps(evidence_document(result), indent=2, ensure_ascii=False, default=str),
                  name="evidence", attachment_type=allure.attachment_type.JSON)
    if report_dir is None:
        return
    files = (result.get("evidence") or {}).get("files") or []
    base = (Path(report_dir) / "evidence").resolve()
    for rel in files if isinstance(files, list) else []:
        path = (Path(report_dir) / str(rel)).resolve()
        if path.is_file() and path.is_relative_to(base):  # never attach files outside evidence/
            allure.attach.file(str(path), name=str(rel), attachment_type=allure.attachment_type.TEXT)


def _prop_escape(text: str, key: bool = False) -> str:
    out = []
    for ch in str(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\n\r\t\f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}[ch])
        elif ch in "=:#!" or (key and ch == " "):
            out.append("\\" + ch)
        elif ord(ch) > 126 or ord(ch) < 32:
            out.extend(f"\\u{u:04x}" for u in _utf16(ch))
        else:
            out.append(ch)
    return "".join(out)


def _utf16(ch: str) -> list[int]:
    data = ch.encode("utf-16-be")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def environment_of(compliance: dict[str, Any]) -> dict[str, str]:
    targets = compliance.get("targets") or []
    return {
        "profile": str(compliance.get("profile", "")),
        "phase": str(compliance.get("phase", "")),
        "targets": ", ".join(f"{t.get('name')} ({t.get('address')}; {'/'.join(map(str, t.get('roles') or []))})"
                             for t in targets),
        "wirecheck_version": str(compliance.get("wirecheck_version", "")),
        "catalog_version": str(compliance.get("catalog_version", "")),
        "started": str(compliance.get("started", "")),
    }


def write_environment(alluredir: Path, compliance: dict[str, Any]) -> Path:
    alluredir = Path(alluredir)
    alluredir.mkdir(parents=True, exist_ok=True)
    path = alluredir / "environment.properties"
    text = "".join(f"{_prop_escape(k, key=True)}={_prop_escape(v)}\n" for k, v in environment_of(compliance).items())
    path.write_text(text, encoding="ascii")
    return path


def write_categories(alluredir: Path) -> Path:
    alluredir = Path(alluredir)
    alluredir.mkdir(parents=True, exist_ok=True)
    path = alluredir / "categories.json"
    path.write_text(json.dumps(CATEGORIES, indent=2) + "\n", encoding="utf-8")
    return path


def find_allure() -> str | None:
    """The Allure 2 command line: $WIRECHECK_ALLURE, `allure` on PATH, or a local npm install."""
    env = os.environ.get(ALLURE_ENV)
    if env:
        return env if Path(env).is_file() else None
    found = shutil.which("allure")
    if found:
        return found
    here = Path(__file__).resolve().parents[2]
    for base in (Path.cwd(), here):
        for cand in (base / "node_modules/.bin/allure", base / ".tools/allure/node_modules/.bin/allure"):
            if cand.is_file():
                return str(cand)
    return None


def carry_history(previous: Path, results_dir: Path) -> bool:
    """Copy <previous>/allure-report/history (or <previous>/history) into the new results."""
    previous = Path(previous)
    for cand in (previous / REPORT_SUBDIR / "history", previous / "history"):
        if cand.is_dir():
            dest = Path(results_dir) / "history"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(cand, dest)
            return True
    return False


def generate(results_dir: Path, output_dir: Path, *, previous: Path | None = None, allure: str | None = None,
             timeout: float = 600, single_file: bool = False) -> Path:
    """Render the Allure HTML report (offline); returns the output directory."""
    results_dir, output_dir = Path(results_dir), Path(output_dir)
    if not results_dir.is_dir():
        raise ReportError(f"{results_dir}: no Allure results (run pytest with --alluredir {results_dir})")
    exe = allure or find_allure()
    if exe is None:
        raise ReportError("Allure command line not found: install it with `npm install allure-commandline` "
                          f"(needs Java) and put it on PATH or set {ALLURE_ENV}")
    if previous is not None and not carry_history(previous, results_dir):
        raise ReportError(f"{previous}: no Allure history there (expected {REPORT_SUBDIR}/history)")
    if not (results_dir / "categories.json").exists():
        write_categories(results_dir)
    try:
        argv = [exe, "generate", "--clean", *(["--single-file"] if single_file else []), "-o", str(output_dir),
                str(results_dir)]
        # Allure 2 otherwise reports usage to Google Analytics while generating and embeds a tracking
        # script in the page: neither may happen for an offline report.
        env = {**os.environ, "ALLURE_NO_ANALYTICS": "true"}
        proc = subprocess.run(argv, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ReportError(f"allure generate did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise ReportError(f"cannot run {exe}: {exc.strerror or exc}") from None
    if proc.returncode != 0 or not (output_dir / "index.html").is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ReportError(f"allure generate failed (exit {proc.returncode}): {tail[0]}")
    return output_dir
