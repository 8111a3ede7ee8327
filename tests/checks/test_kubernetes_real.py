"""The Kubernetes acceptance checks against a real kube-apiserver + etcd (tests/lab/k8s.py).

The cluster state is built through the API (status subresources patched, as kubelets and
controllers report them) and Helm releases by the real `helm` binary (tests/lab/k8s_site.py).
wirecheck then runs as a user runs it (`pytest suites/acceptance -k kubernetes --kubeconfig ...`)
with a service-account token bound to nothing but deploy/wirecheck-readonly-clusterrole.yaml; the
API server's audit log shows what that identity did.

One control plane serves every test here: it is started once per test run (under xdist the first
worker to get here builds it and runs all scenarios, the other reads the results), compliant
first, then broken one fact per check.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.lab import k8s as labk8s
from tests.lab.fixtures import skip_or_fail
from tests.lab.k8s_site import NGINZ_POD
from tests.support.wc import Run, run_suite

CHECKS = ["K8S-WORKERS", "K8S-ETCD", "K8S-VERSION", "K8S-NODES-HEALTHY", "HELM-RELEASES", "K8S-PODS-HEALTHY",
          "TLS-CERTS-READY", "CALL-SFT-PLACEMENT", "K8S-INGRESS-NODEPORT", "K8S-PUBLIC-EXPOSURE", "LOG-RETENTION-72H"]
READER = "system:serviceaccount:kube-system:wirecheck"
UNBOUND = "wirecheck-unbound"
OLD_KUBELET = "v1.36.3"


def _acceptance(kubeconfig: Path, report: Path, version: str, *extra: str) -> tuple[Run, float]:
    t0 = time.monotonic()
    run = run_suite(["-k", "kubernetes", "--profile", "production", "--kubeconfig", str(kubeconfig),
                     "--param", f"K8S-VERSION.production_version={version}", *extra], report,
                    suite="suites/acceptance")
    return run, time.monotonic() - t0


def _keep(run: Run) -> dict[str, Any]:
    return {"rc": run.rc, "stdout": run.stdout[-6000:], "stderr": run.stderr[-3000:], "report_dir": str(run.report_dir)}


def _audit_summary(cp: labk8s.ControlPlane, user: str) -> list[dict[str, Any]]:
    out = []
    for ev in cp.audit_events(user):
        ref = ev.get("objectRef") or {}
        out.append({"verb": ev.get("verb"), "uri": ev.get("requestURI"), "group": ref.get("apiGroup", ""),
                    "resource": ref.get("resource", ""), "subresource": ref.get("subresource", ""),
                    "code": (ev.get("responseStatus") or {}).get("code")})
    return out


@contextmanager
def _stopping(server: labk8s.KubeletLogs) -> Iterator[None]:
    try:
        yield
    finally:
        server.stop()


def _scenarios(root: Path) -> dict[str, Any]:
    """Start the control plane, build the compliant site, run the checks, break it, run them again."""
    from tests.lab import k8s_site as site_mod

    version = labk8s.versions()["K8S_VERSION"]
    times: dict[str, float] = {}
    res: dict[str, Any] = {"version": version, "times": times, "runs": {}}
    t0 = time.monotonic()
    kubelet = labk8s.KubeletLogs(root).start()
    with _stopping(kubelet), labk8s.ControlPlane(root / "cp") as cp:
        times.update(pki=cp.times.pki, etcd=cp.times.etcd, apiserver=cp.times.apiserver, control_plane=cp.times.total)
        s = site_mod.Site(cp)
        try:
            t = time.monotonic()
            site_mod.production_site(s, version, kubelet)
            reader = cp.kubeconfig_for_token(s.readonly_token(), "wirecheck")
            unbound = cp.kubeconfig_for_token(cp.static_tokens[UNBOUND], UNBOUND)
            times["build_compliant_site"] = time.monotonic() - t

            # SFT capacity: 8-core nodes hold 6 + 200/100 cores (the compliant run), not 6 + 300/100
            for name, kubeconfig, extra in (("good", reader, ["--sft-concurrent-users", "200"]),
                                            ("unbound", unbound, []),
                                            ("sft300", reader, ["-k", "sft_placement", "--sft-concurrent-users", "300"])):
                run, times[f"run_{name}"] = _acceptance(kubeconfig, root / name, version, *extra)
                res["runs"][name] = _keep(run)

            t = time.monotonic()
            site_mod.break_workers(s)
            site_mod.break_node_ready(s)
            site_mod.break_etcd_members(s)
            site_mod.break_kubelet_version(s, OLD_KUBELET)
            res["helm_failed"] = site_mod.break_helm(s)
            site_mod.break_pod(s)
            site_mod.break_certificate(s)
            site_mod.break_sft(s)
            site_mod.break_ingress(s)
            site_mod.break_exposure(s)
            site_mod.break_log_retention(kubelet)
            times["break_site"] = time.monotonic() - t
            run, times["run_bad"] = _acceptance(reader, root / "bad", version)
            res["runs"]["bad"] = _keep(run)

            # etcd itself stopped: the API server's /readyz/etcd says so, and it can list nothing
            cp.stop_etcd()
            run, times["run_etcd_down"] = _acceptance(reader, root / "etcd-down", version, "-k", "etcd_members",
                                                      "--param", "K8S-ETCD.timeout_s=5")
            res["runs"]["etcd_down"] = _keep(run)
        finally:
            s.close()
            t = time.monotonic()
    times["stop"] = time.monotonic() - t
    res["kubelet_requests"] = kubelet.requests
    res["audit"] = {READER: _audit_summary(cp, READER), UNBOUND: _audit_summary(cp, UNBOUND)}

    # Wire-in-a-Box: a second, demo-shaped cluster for the demo-only datastore check
    t = time.monotonic()
    with labk8s.ControlPlane(root / "cp-demo") as cp:
        s = site_mod.Site(cp)
        try:
            site_mod.demo_site(s, version)
            reader = cp.kubeconfig_for_token(s.readonly_token(), "wirecheck")
            times["demo_site"] = time.monotonic() - t
            demo = ["--profile", "demo", "--param", f"K8S-VERSION.demo_version={version}"]
            run, times["run_demo_good"] = _acceptance(reader, root / "demo-good", version, *demo)
            res["runs"]["demo_good"] = _keep(run)
            site_mod.break_demo_datastore(s)
            run, times["run_demo_bad"] = _acceptance(reader, root / "demo-bad", version, *demo)
            res["runs"]["demo_bad"] = _keep(run)
        finally:
            s.close()
        res["audit_demo"] = {READER: _audit_summary(cp, READER)}
    times["total"] = time.monotonic() - t0
    return res


@pytest.fixture(scope="session")
def real_k8s(tmp_path_factory) -> dict[str, Any]:
    """The scenario results, made once per test run (shared between xdist workers through a file lock)."""
    try:
        for name in ("kube-apiserver", "etcd", "helm"):
            labk8s.component(name)
    except labk8s.ComponentMissing as exc:
        skip_or_fail(str(exc))
    base = tmp_path_factory.getbasetemp()
    # under xdist each worker's basetemp is a folder of the run's common one
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "k8s-real"
    root.mkdir(exist_ok=True)
    results = root / "results.json"
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not results.exists():
            try:
                data = _scenarios(root)
            except Exception:  # noqa: BLE001 - the other worker reads the cause instead of building again
                data = {"error": traceback.format_exc()}
            results.write_text(json.dumps(data))
    data = json.loads(results.read_text())
    if "error" in data:
        pytest.fail(f"the real Kubernetes lab failed:\n{data['error']}", pytrace=False)
    return data


def _run(data: dict[str, Any], name: str) -> Run:
    r = data["runs"][name]
    return Run(r["rc"], r["stdout"], r["stderr"], Path(r["report_dir"]))


def test_compliant_cluster_passes_every_kubernetes_check(real_k8s):
    run = _run(real_k8s, "good")
    v = real_k8s["version"]
    assert {rid: run.status(rid) for rid in CHECKS} == dict.fromkeys(CHECKS, "pass"), run.stdout[-3000:]
    assert run.result("K8S-WORKERS")["evidence"]["workers"] == ["kubenode1", "kubenode2", "kubenode3"]
    etcd = run.result("K8S-ETCD")["observed"]
    # the real API server's own etcd health, and the path it was measured by
    assert etcd.startswith("Kubernetes API: /readyz/etcd: 200 'ok'"), etcd
    assert "3 member(s) (kube-apiserver --etcd-servers (kube-system))" in etcd
    assert run.result("K8S-VERSION")["observed"] == f"server {v}; kubelets {v} x3"
    releases = run.result("HELM-RELEASES")["evidence"]["releases"]
    assert releases["default/wire-server"] == {"revision": 2, "status": "deployed", "chart": "wire-stub-0.1.0",
                                               "description": "Upgrade complete"}
    assert releases["cert-manager-ns/cert-manager"]["description"] == "Install complete"
    assert "Succeeded 1" in run.result("K8S-PODS-HEALTHY")["observed"]
    assert run.result("TLS-CERTS-READY")["observed"] == \
        "all 2 Certificate(s) Ready: default/nginx-ingress-services-cert, default/sftd"
    assert run.result("CALL-SFT-PLACEMENT")["evidence"]["sft_nodes"]["kubenode1"]["external_ip"] == "203.0.113.11"
    assert "https:443->31773" in run.result("K8S-INGRESS-NODEPORT")["observed"]
    # the log came through the real API server (pods/log) from the kubelet stand-in
    assert re.search(r"first line 70\.[0-2] h old", run.result("LOG-RETENTION-72H")["observed"])
    assert any(r.startswith(f"/containerLogs/default/{NGINZ_POD}/nginz?") for r in real_k8s["kubelet_requests"])


def test_broken_cluster_fails_each_check_with_the_evidence(real_k8s):
    run = _run(real_k8s, "bad")

    assert run.status("K8S-WORKERS") == "fail"
    assert run.result("K8S-WORKERS")["observed"] == \
        "2 schedulable worker node(s): kubenode1, kubenode2; not counted: kubenode3 (cordoned)"

    assert run.status("K8S-ETCD") == "fail"
    assert "2 etcd member(s), need at least 3; 2 is an even number" in run.result("K8S-ETCD")["message"]

    assert run.status("K8S-VERSION") == "warn"  # INFO requirement
    assert f"kubelet version differs on kubenode3 {OLD_KUBELET}" in run.result("K8S-VERSION")["message"]

    assert run.status("K8S-NODES-HEALTHY") == "fail"
    assert ("kubenode2 Ready=False (KubeletNotReady: container runtime network not ready"
            in run.result("K8S-NODES-HEALTHY")["message"])

    # Helm's own words for the failed upgrade, as its release secret keeps them
    helm = run.result("HELM-RELEASES")["message"]
    assert run.status("HELM-RELEASES") == "fail"
    assert "webapp: missing" in helm
    assert "default/wire-server revision 3: failed (Upgrade \"wire-server\" failed:" in helm, helm
    assert "provided port is already allocated" in helm

    assert run.status("K8S-PODS-HEALTHY") == "fail"
    assert ("default/brig-6d9f8b7c5-00abc: Running but not ready - container brig CrashLoopBackOff (14 restarts)"
            in run.result("K8S-PODS-HEALTHY")["message"])

    assert run.status("TLS-CERTS-READY") == "fail"
    assert ("default/nginx-ingress-services-cert Ready=False (Failed: ACME challenge failed: connection refused)"
            in run.result("TLS-CERTS-READY")["message"])

    sft = run.result("CALL-SFT-PLACEMENT")["message"]
    assert run.status("CALL-SFT-PLACEMENT") == "fail"
    assert "wants 3 replicas but only 2 node(s) match (wire.com/role=sftd): kubenode1, kubenode2" in sft
    assert "node kubenode1 runs 2 SFT pods (default/sftd-0, default/sftd-2)" in sft

    assert run.status("K8S-INGRESS-NODEPORT") == "fail"
    assert "https nodePort is 30443, expected 31773" in run.result("K8S-INGRESS-NODEPORT")["message"]

    assert run.status("K8S-PUBLIC-EXPOSURE") == "warn"  # SHOULD requirement
    exposure = run.result("K8S-PUBLIC-EXPOSURE")
    assert "service default/minio-external is exposed (NodePort 30900)" in exposure["message"]
    assert exposure["evidence"]["flagged"] == ["service default/minio-external (NodePort 30900)"]

    assert run.status("LOG-RETENTION-72H") == "warn"  # SHOULD requirement
    assert re.search(f"{NGINZ_POD} keeps log lines 100\\.[01] h old", run.result("LOG-RETENTION-72H")["message"])


def test_stopped_etcd_fails_with_the_api_servers_health_answer(real_k8s):
    run = _run(real_k8s, "etcd_down")
    r = run.result("K8S-ETCD")
    assert r["status"] == "fail", (r["status"], r["message"])
    # the API server's words, e.g. "internal server error: error getting data from etcd: context deadline exceeded"
    assert "etcd not healthy: /readyz/etcd answered 500: internal server error" in r["message"], r["message"]
    assert r["evidence"]["paths"] == ["Kubernetes API"]
    assert r["evidence"]["Kubernetes API"]["health"]["status"] == 500
    assert "membership not visible through the API (list pods in kube-system:" in r["observed"], r["observed"]


def test_sft_capacity_for_concurrent_users(real_k8s):
    ok, short = _run(real_k8s, "good"), _run(real_k8s, "sft300")
    assert ok.status("CALL-SFT-PLACEMENT") == "pass", ok.stdout[-2000:]
    assert ok.result("CALL-SFT-PLACEMENT")["evidence"]["cores_needed"] == 8
    assert short.status("CALL-SFT-PLACEMENT") == "fail"
    assert ("3 node(s) below 9 cores for 300 concurrent users (6 + 1 per 100): kubenode1 (8), kubenode2 (8), "
            "kubenode3 (8)") in short.result("CALL-SFT-PLACEMENT")["message"]


def test_demo_datastores_pass_and_fail(real_k8s):
    good, bad = _run(real_k8s, "demo_good"), _run(real_k8s, "demo_bad")
    assert good.status("DEMO-ACC-DATASTORES") == "pass", good.stdout[-2000:]
    assert good.status("HELM-RELEASES") == "pass", good.result("HELM-RELEASES")["message"]
    assert good.status("K8S-WORKERS") == "not_applicable"  # production only
    assert good.status("K8S-PODS-HEALTHY") == "pass"
    assert good.result("HELM-RELEASES")["observed"].startswith("13 release(s), all deployed: default/account-pages")
    assert bad.status("DEMO-ACC-DATASTORES") == "fail"
    assert "rabbitmq: StatefulSet default/rabbitmq 0/1 ready" in bad.result("DEMO-ACC-DATASTORES")["message"]


def test_the_readonly_clusterrole_is_enough_and_only_reads(real_k8s):
    """Every run used a token bound to deploy/wirecheck-readonly-clusterrole.yaml alone (the default
    bindings for all authenticated users removed): the audit log shows every request granted, only
    get/list, and every rule of the role used (/healthz/etcd aside: only API servers older than 1.16
    need it)."""
    events = real_k8s["audit"][READER] + real_k8s["audit_demo"][READER]
    assert events, "no request of the read-only identity reached the audit log"
    refused = [e for e in events if e["code"] in (401, 403)]
    assert not refused, refused[:5]
    assert {e["verb"] for e in events} <= {"get", "list"}
    used = {(e["group"], e["resource"] + (f"/{e['subresource']}" if e["subresource"] else ""), e["verb"])
            for e in events if e["resource"]}
    assert used == {("", r, "list") for r in ("nodes", "pods", "services", "secrets")} | {
        ("apps", r, "list") for r in ("deployments", "daemonsets", "statefulsets")} | {
        ("cert-manager.io", "certificates", "list"), ("", "pods/log", "get")}
    assert {e["uri"].split("?")[0] for e in events if not e["resource"]} == {"/version/", "/readyz/etcd"}
    for name in ("good", "bad", "demo_good", "demo_bad"):
        run = _run(real_k8s, name)
        for rid in [*CHECKS, "DEMO-ACC-DATASTORES"]:
            r = run.result(rid)
            assert "forbidden" not in json.dumps(r).lower(), (name, rid, r["message"])


def test_without_the_role_each_check_is_an_error_naming_forbidden(real_k8s):
    """The same token kind with no binding: every check that lists is `error` with the API's refusal
    (fail closed), and the audit log shows only refusals for the resources."""
    run = _run(real_k8s, "unbound")
    for rid in CHECKS:
        r = run.result(rid)
        assert r["status"] == "error", (rid, r["status"], r["message"])
        assert "HTTP 403 Forbidden" in r["message"] and UNBOUND in r["message"], (rid, r["message"])
    codes = Counter(e["code"] for e in real_k8s["audit"][UNBOUND] if e["resource"])
    assert set(codes) == {403}, codes
