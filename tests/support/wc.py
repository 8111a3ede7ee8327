"""Run wirecheck's suites the way a user does (a pytest subprocess) and read what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


# test-only pytest plugins installed beside wirecheck that a user's run does not have (and that cost
# seconds of imports per run: kmock pulls in aiohttp, hypothesis its engine)
QUIET_PLUGINS = ["-p", "no:cacheprovider", "-p", "no:kmock", "-p", "no:hypothesispytest", "-p", "no:asyncio"]


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    report_dir: Path

    @property
    def compliance(self) -> dict[str, Any]:
        return json.loads((self.report_dir / "compliance.json").read_text())

    def requirement(self, rid: str) -> dict[str, Any]:
        for req in self.compliance["requirements"]:
            if req["id"] == rid:
                return req
        raise KeyError(rid)

    def status(self, rid: str) -> str:
        return self.requirement(rid)["status"]

    def result(self, rid: str, target: str | None = None) -> dict[str, Any]:
        results = self.requirement(rid)["results"]
        for r in results:
            if target is None or r["target"] == target:
                return r
        raise KeyError(f"{rid} has no result for {target}: {[r['target'] for r in results]}")


def run_suite(args: list[str], report_dir: Path, suite: str = "suites/preflight", timeout: float = 300,
              env: dict[str, str] | None = None) -> Run:
    cmd = [sys.executable, "-m", "pytest", suite, "-q", *QUIET_PLUGINS, "--report-dir", str(report_dir), *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return Run(proc.returncode, proc.stdout, proc.stderr, Path(report_dir))


def host_args(host) -> list[str]:
    """The options that point wirecheck at a lab host, as a user would type them."""
    return ["--hosts", host.hostspec, "--ssh-identity-file", host.key_path,
            f"--ssh-extra-args={host.ssh_extra_args}"]
