"""CTRL-ANSIBLE-VERSION / CTRL-ANSIBLE-COLLECTIONS against the Ansible an operator will run: the one on PATH.

"With": a PATH whose first ansible is ansible-core 2.16 (the release Wire pins; wirecheck's own
environment installs it, see pyproject.toml) and a collections directory holding kubernetes.core and
ansible.posix. "Without": the same machine with no ansible on PATH and no collections. Both are run as
a user runs wirecheck (a pytest subprocess), so the locale the commands get is the real one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.wc import run_suite

SELECT = ["-k", "ansible_version or ansible_collections"]


def _ansible_216_bin() -> Path:
    """A bin directory whose ansible is ansible-core 2.16: WIRECHECK_ANSIBLE_BIN, else this interpreter's."""
    where = Path(os.environ.get("WIRECHECK_ANSIBLE_BIN") or Path(sys.executable).parent)
    tool = where / "ansible"
    if not tool.exists():
        pytest.fail(f"{tool} does not exist: install wirecheck (pyproject pins ansible-core 2.16)")
    out = subprocess.run([str(tool), "--version"], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C.UTF-8"},
                         timeout=60, check=False).stdout
    assert "core 2.16." in out, f"{tool} is not ansible-core 2.16: {out[:80]!r}"
    return where


def _collections(root: Path, names: list[str]) -> Path:
    """A collections directory as ansible-galaxy installs it (ansible_collections/<ns>/<name>/MANIFEST.json)."""
    for name in names:
        ns, coll = name.split(".")
        d = root / "ansible_collections" / ns / coll
        d.mkdir(parents=True)
        (d / "MANIFEST.json").write_text(json.dumps({"collection_info": {"namespace": ns, "name": coll,
                                                                         "version": "3.0.0"}}))
    return root


def _path_without_ansible(tmp_path: Path) -> str:
    """A PATH with the system's tools and no ansible at all."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("sh", "cat", "timeout", "env"):
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    return f"{bare}:/usr/bin:/bin" if not any(Path(p, "ansible").exists() for p in ("/usr/bin", "/bin")) else str(bare)


def test_ansible_216_with_collections_passes(tmp_path):
    bindir = _ansible_216_bin()
    cols = _collections(tmp_path / "cols", ["kubernetes.core", "ansible.posix"])
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "ANSIBLE_COLLECTIONS_PATH": str(cols),
           "LC_ALL": "C", "LANG": "C"}          # the operator's shell may well be in the C locale
    run = run_suite(SELECT, tmp_path / "r", env=env)
    version = run.result("CTRL-ANSIBLE-VERSION")
    assert version["status"] == "pass", version["message"]
    assert version["evidence"]["ansible_core"].startswith("2.16.")
    assert version["evidence"]["ansible_path"] == str(bindir / "ansible")
    cols_result = run.result("CTRL-ANSIBLE-COLLECTIONS")
    assert cols_result["status"] == "pass", cols_result["message"]
    assert cols_result["evidence"]["found"] == {"kubernetes.core": "3.0.0", "ansible.posix": "3.0.0"}


def test_no_ansible_and_no_collections_fail(tmp_path):
    env = {"PATH": _path_without_ansible(tmp_path), "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "none")}
    run = run_suite(SELECT, tmp_path / "r", env=env)
    version = run.result("CTRL-ANSIBLE-VERSION")
    assert version["status"] == "fail" and "ansible is not installed" in version["message"], version["message"]
    cols = run.result("CTRL-ANSIBLE-COLLECTIONS")
    assert cols["status"] == "fail" and "ansible-galaxy is not installed" in cols["message"], cols["message"]


def test_ansible_216_without_collections_fails(tmp_path):
    bindir = _ansible_216_bin()
    cols = _collections(tmp_path / "cols", ["ansible.posix"])
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "ANSIBLE_COLLECTIONS_PATH": str(cols)}
    run = run_suite(SELECT, tmp_path / "r", env=env)
    assert run.result("CTRL-ANSIBLE-VERSION")["status"] == "pass"
    cols_result = run.result("CTRL-ANSIBLE-COLLECTIONS")
    assert cols_result["status"] == "fail", cols_result["message"]
    assert "missing Ansible collections" in cols_result["message"] and "kubernetes.core" in cols_result["message"]
    assert "ansible.posix" not in cols_result["message"].split("missing Ansible collections")[1].split(":")[1]


def test_other_ansible_release_fails_naming_it(tmp_path):
    """An ansible-core that is not 2.16 (a stand-in script printing what ansible 2.19 prints) fails."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "ansible"
    fake.write_text("#!/bin/sh\necho 'ansible [core 2.19.4]'\necho '  python version = 3.11'\n")
    fake.chmod(0o755)
    run = run_suite(["-k", "ansible_version"], tmp_path / "r", env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    r = run.result("CTRL-ANSIBLE-VERSION")
    assert r["status"] == "fail" and "ansible-core 2.19.4" in r["message"] and "2.16" in r["message"], r["message"]
