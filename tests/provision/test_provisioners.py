"""Provisioner interface, entry-point discovery, dry run, pass-through and getting wire-server-deploy."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import provisioners
from provisioners import AnsibleOptions, ProvisionContext, ProvisionError
from provisioners.__main__ import _parse_extra_vars
from provisioners.production import ProductionProvisioner
from provisioners.wsd import WsdSource
from tests.provision.stack import REPO, STANDIN_WSD, run_provision

PLUGIN_PKG = REPO / "tests" / "data" / "plugin-pkg"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The tiny plugin package installed (for real, with pip) into a private directory."""
    target = tmp_path_factory.mktemp("site-packages")
    build = tmp_path_factory.mktemp("build")
    src = build / "plugin-pkg"  # setuptools builds in the source tree: keep the repository clean
    shutil.copytree(PLUGIN_PKG, src)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)],
                          capture_output=True, text=True, timeout=180, cwd=build,
                          env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
    assert proc.returncode == 0, proc.stderr
    assert list(target.glob("wirecheck_site_plugin-*.dist-info"))
    return target


def _py(code: str, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    path = [str(REPO)] + ([str(extra_path)] if extra_path else [])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(path)))


def test_builtins_are_available_without_installation():
    assert {"demo", "production"} <= set(provisioners.available())
    assert provisioners.get("demo").profile == "demo"
    with pytest.raises(ProvisionError, match="unknown provisioner 'nope'"):
        provisioners.get("nope")


def test_plugin_discovered_through_entry_point(plugin_site, tmp_path):
    out = _py("import provisioners, json; print(json.dumps(provisioners.available()))")
    assert "site-echo" not in json.loads(out.stdout)  # not installed: not there
    out = _py("import provisioners, json; p = provisioners.get('site-echo');"
              "print(json.dumps([provisioners.available()['site-echo'], type(p).__module__]))", plugin_site)
    assert json.loads(out.stdout) == ["wirecheck_site_plugin:SiteEchoProvisioner", "wirecheck_site_plugin"]
    # and the CLI runs it (no gates, so only the plugin's own step runs)
    env_path = os.pathsep.join([str(REPO), str(plugin_site)])
    proc = subprocess.run([sys.executable, "-m", "provisioners", "site-echo", "--wire-server-deploy", str(STANDIN_WSD),
                           "--skip-preflight", "--skip-acceptance", "--report-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=60, cwd=REPO, env=dict(os.environ, PYTHONPATH=env_path))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r" / "site-echo.marker").read_text().strip() == "demo"
    rec = json.loads((tmp_path / "r" / "provision.json").read_text())
    assert rec["provisioner"] == "site-echo" and rec["skipped_phases"] == ["preflight", "acceptance"]


def test_unknown_provisioner_is_a_usage_error(tmp_path):
    run = run_provision(["nope", "--wire-server-deploy", str(STANDIN_WSD)], tmp_path / "r")
    assert run.rc == 2 and "unknown provisioner 'nope'" in run.stderr and "Traceback" not in run.stderr


def test_dry_run_prints_exact_commands_and_runs_nothing(tmp_path):
    """The pass-through of Ansible's options into the printed playbook command (the preflight a dry run
    runs is skipped here: tests/provision/test_dry_run_preflight.py runs it on lab hosts)."""
    inv = tmp_path / "host.yml"
    inv.write_text("wiab:\n  hosts:\n    deploy_node:\n      ansible_host: 198.18.250.9\n")
    run = run_provision(["demo", "-i", str(inv), "--wire-server-deploy", str(STANDIN_WSD), "--dry-run",
                         "--skip-preflight", "--tags", "helm_install,iptables", "--skip-tags", "verify",
                         "-e", "wire_ip=198.18.250.9", "-e", '{"standin_break": ["coturn"]}', "--", "-x"], tmp_path / "r")
    assert run.rc == 0, run.stderr
    assert "preflight: SKIPPED (--skip-preflight)" in run.stderr and "DRY RUN: preflight skipped" in run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2
    play, acc = lines
    assert "ansible-playbook" in play and "deploy_wiab.yml" in play
    assert "--tags helm_install,iptables" in play and "--skip-tags verify" in play
    argv = shlex.split(play.removeprefix("(").removesuffix(")"))
    assert argv[argv.index("-i") + 1] == str(inv)
    assert json.loads(argv[argv.index("-e") + 1]) == {"wire_ip": "198.18.250.9", "standin_break": ["coturn"]}
    assert "suites/acceptance" in acc and acc.endswith(" -x)")
    assert not (tmp_path / "r" / "install" / "ansible.log").exists()
    assert not (tmp_path / "r" / "preflight" / "compliance.json").exists()
    # the provisioner says which ansible it runs the playbooks with: the one of its own environment
    said = json.loads((tmp_path / "r" / "provision.json").read_text())["ansible"]
    bindir = os.environ.get("WIRECHECK_ANSIBLE_BIN") or str(Path(sys.executable).parent)
    assert said["ansible_playbook"] == str(Path(bindir) / "ansible-playbook")
    assert f"ansible: {said['ansible_playbook']}" in run.stderr


def test_dry_run_exits_3_when_its_preflight_blocks_even_with_force(tmp_path):
    """A preflight that judges nothing blocks (it measured nothing): the dry run says so and exits 3, and
    --force, which would install anyway, changes neither; the install command is printed, not run."""
    inv = tmp_path / "host.yml"
    inv.write_text("wiab:\n  hosts:\n    deploy_node:\n      ansible_host: 198.18.250.9\n")
    run = run_provision(["demo", "-i", str(inv), "--wire-server-deploy", str(STANDIN_WSD), "--dry-run", "--force",
                         "--preflight-args", "-k no_check_is_called_this"], tmp_path / "r")
    assert run.rc == 3, run.stderr
    said = next(line for line in run.stderr.splitlines() if line.startswith("DRY RUN: preflight FAILED"))
    assert "judged no requirement" in said and "(--force would install anyway)" in said, said
    pre, play, acc = run.stdout.splitlines()
    assert "no_check_is_called_this" in pre and "deploy_wiab.yml" in play and "suites/acceptance" in acc
    assert "no_check_is_called_this" not in acc            # --preflight-args are the preflight's own
    rec = run.provision
    assert rec["exit_code"] == 3 and rec["failed_phase"] == "preflight" and set(rec["phases"]) == {"preflight"}
    assert not (tmp_path / "r" / "install").exists()


def test_dry_run_from_a_git_url_does_not_judge_a_checkout_it_did_not_fetch(tmp_path):
    """--wsd-git with --dry-run fetches nothing: the clone is printed, and CTRL-WSD-CHECKOUT is not_evaluated
    (not a fail about a directory that was never meant to exist yet)."""
    inv = tmp_path / "host.yml"
    inv.write_text("wiab:\n  hosts:\n    deploy_node:\n      ansible_host: 198.18.250.9\n")
    run = run_provision(["demo", "-i", str(inv), "--wsd-git", f"file://{tmp_path}/nowhere", "--dry-run",
                         "--preflight-args", "-k test_wire_server_deploy"], tmp_path / "r")
    assert run.rc == 0, run.stderr
    assert "CTRL-WSD-CHECKOUT is not evaluated" in run.stderr
    clone, pre, acc = run.stdout.splitlines()
    assert clone.startswith("git clone --recurse-submodules") and "--wire-server-deploy" not in pre
    report = json.loads((tmp_path / "r" / "preflight" / "compliance.json").read_text())
    (wsd,) = [r for r in report["requirements"] if r["id"] == "CTRL-WSD-CHECKOUT"]
    assert wsd["status"] == "not_evaluated" and "--wire-server-deploy" in wsd["results"][0]["message"], wsd


def test_extra_vars_forms(tmp_path):
    f = tmp_path / "vars.yml"
    f.write_text("a: 1\nb: [x]\n")
    assert _parse_extra_vars(["k=v k2=v2", f"@{f}", '{"c": true}']) == {"k": "v", "k2": "v2", "a": 1, "b": ["x"],
                                                                         "c": True}
    with pytest.raises(SystemExit, match="key=value"):
        _parse_extra_vars(["novalue"])


def _zip_of(src: Path, dest: Path) -> str:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in src.rglob("*"):
            zf.write(p, Path("wire-server-deploy-1.0") / p.relative_to(src))
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def test_wsd_from_zip_with_checksum(tmp_path):
    digest = _zip_of(STANDIN_WSD, tmp_path / "wsd.zip")
    root = WsdSource(zip_url=str(tmp_path / "wsd.zip"), zip_sha256=digest).fetch(tmp_path / "work")
    assert (root / "ansible" / "wiab-demo" / "deploy_wiab.yml").is_file()
    with pytest.raises(ProvisionError, match="checksum mismatch"):
        WsdSource(zip_url=f"file://{tmp_path / 'wsd.zip'}", zip_sha256="0" * 64).fetch(tmp_path / "work2")
    with pytest.raises(ProvisionError, match="needs --wsd-sha256"):
        WsdSource(zip_url=str(tmp_path / "wsd.zip")).fetch(tmp_path / "work3")


def test_wsd_from_git_url_and_ref(tmp_path):
    repo = tmp_path / "origin"
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")

    def git(*a):
        return subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True, text=True, env=env)

    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "ansible").mkdir()
    (repo / "ansible" / "v.txt").write_text("one\n")
    git("add", "-A")
    git("commit", "-qm", "one")
    first = git("rev-parse", "HEAD").stdout.strip()
    (repo / "ansible" / "v.txt").write_text("two\n")
    git("commit", "-qam", "two")
    root = WsdSource(git_url=f"file://{repo}", git_ref=first).fetch(tmp_path / "work")
    assert (root / "ansible" / "v.txt").read_text() == "one\n"
    with pytest.raises(ProvisionError, match="failed"):
        WsdSource(git_url=f"file://{tmp_path / 'missing'}").fetch(tmp_path / "work2")


def test_production_plan_follows_inventory_and_docs_order(tmp_path):
    wsd = tmp_path / "wsd"
    for rel in ("kubernetes.yml", "cassandra.yml", "elasticsearch.yml", "minio.yml", "restund.yml",
                "helm_external.yml", "postgresql-deploy.yml", "setup-offline-sources.yml"):
        (wsd / "ansible").mkdir(parents=True, exist_ok=True)
        (wsd / "ansible" / rel).write_text("- hosts: all\n")
    for chart in ("cassandra-external", "wire-server", "nginx-ingress-services"):
        (wsd / "charts" / chart).mkdir(parents=True)
    (wsd / "values" / "wire-server").mkdir(parents=True)
    (wsd / "values" / "wire-server" / "secrets.yaml").write_text("x: 1\n")
    inv = tmp_path / "hosts.ini"
    inv.write_text("[all]\nk1\n[kube-master]\nk1\n[cassandra]\nc1\n[elasticsearch]\ne1\n[minio]\nm1\n")
    (tmp_path / "k").write_text("apiVersion: v1\n")
    ctx = ProvisionContext(profile="production", wsd=wsd, inventory=inv, report_dir=tmp_path / "r",
                           ansible=AnsibleOptions(tags=["x"]), options={"kubeconfig": str(tmp_path / "k")})
    steps = ProductionProvisioner().plan(ctx)
    names = [s.name for s in steps]
    assert names == ["kubernetes", "cassandra", "elasticsearch", "minio", "helm_external",
                     "helm cassandra-external", "helm wire-server", "helm nginx-ingress-services"]
    assert steps[0].tags == ["x"]
    ws = steps[6].argv
    assert ws[:3] == ["helm", "upgrade", "--install"] and "--kubeconfig" in ws
    assert str(wsd / "values" / "wire-server" / "secrets.yaml") in ws


def test_production_dry_run_through_the_cli(tmp_path):
    wsd = tmp_path / "wsd"
    (wsd / "ansible").mkdir(parents=True)
    for rel in ("kubernetes.yml", "cassandra.yml", "restund.yml", "helm_external.yml"):
        (wsd / "ansible" / rel).write_text("- hosts: all\n")
    (wsd / "charts" / "wire-server").mkdir(parents=True)
    inv = tmp_path / "hosts.ini"
    inv.write_text("[all]\nk1 ansible_host=198.18.250.1\n[cassandra]\nk1\n")
    kubeconfig = tmp_path / "kubeconfig"
    run = run_provision(["production", "-i", str(inv), "--wire-server-deploy", str(wsd), "--dry-run"], tmp_path / "r0",
                        env_extra={"HOME": str(tmp_path), "KUBECONFIG": ""})
    assert run.rc == 2 and "kubeconfig" in run.stderr  # needed for the Helm steps, said in one line
    kubeconfig.write_text("apiVersion: v1\n")
    run = run_provision(["production", "-i", str(inv), "--wire-server-deploy", str(wsd), "--dry-run",
                         "--kubeconfig", str(kubeconfig), "--skip-preflight"], tmp_path / "r")
    assert run.rc == 0, run.stderr
    lines = run.stdout.splitlines()
    playbooks = [Path(shlex.split(line.strip("()"))[-1]).name for line in lines if "ansible-playbook" in line]
    assert playbooks == ["kubernetes.yml", "cassandra.yml", "helm_external.yml"]  # no [restund] group
    (helm,) = [line for line in lines if line.startswith("(cd") and " helm " in line]
    assert "helm upgrade --install --wait --timeout 15m --namespace default wire-server" in helm
    assert f"--kubeconfig {kubeconfig}" in helm
    assert "suites/acceptance" in lines[-1] and f"--kubeconfig {kubeconfig}" in lines[-1]
    assert not any("suites/preflight" in line for line in lines)
