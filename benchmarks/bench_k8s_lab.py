"""Cost of the real Kubernetes lab (tests/lab/k8s.py): first build, start-up, scenario, one check run.

Run from the repository root once the components are built (tests/lab/build_components.sh):

    python benchmarks/bench_k8s_lab.py [rounds]

Prints the first-build time of kube-apiserver, etcd and helm (as the build script recorded it in
the cache), then for each round: PKI, etcd and kube-apiserver start-up (launch to first healthy
answer), building the compliant production site through the API and helm, one
`suites/acceptance -k kubernetes` run against it with the read-only role, and teardown.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.lab import k8s as labk8s  # noqa: E402
from tests.lab import k8s_site  # noqa: E402
from tests.support.wc import run_suite  # noqa: E402


def main(rounds: int) -> None:
    v = labk8s.versions()
    print(f"components (cache {labk8s.cache_dir()}):")
    for name, key in (("kube-apiserver", "K8S_VERSION"), ("etcd", "ETCD_VERSION"), ("helm", "HELM_VERSION")):
        secs = labk8s.build_seconds(name)
        size = (labk8s.component_dir(name) / name).stat().st_size / 2**20
        print(f"  {name:15} {v[key]:9} first build {secs if secs is not None else '?':>5} s  binary {size:.0f} MiB")
    print("round  pki   etcd  apiserver  start  site   check-run  stop")
    for r in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-k8s-") as tmp:
            kubelet = labk8s.KubeletLogs(Path(tmp)).start()
            cp = labk8s.ControlPlane(Path(tmp))
            cp.start()
            try:
                t = time.monotonic()
                s = k8s_site.Site(cp)
                k8s_site.production_site(s, v["K8S_VERSION"], kubelet)
                kubeconfig = cp.kubeconfig_for_token(s.readonly_token(), "wirecheck")
                s.close()
                site = time.monotonic() - t
                t = time.monotonic()
                run = run_suite(["-k", "kubernetes", "--profile", "production", "--kubeconfig", str(kubeconfig),
                                 "--param", f"K8S-VERSION.production_version={v['K8S_VERSION']}"],
                                Path(tmp) / "report", suite="suites/acceptance")
                check = time.monotonic() - t
                passed = sum(1 for q in run.compliance["requirements"] if q["status"] == "pass")
            finally:
                t = time.monotonic()
                cp.stop()
                stop = time.monotonic() - t
                kubelet.stop()
            ct = cp.times
            print(f"{r + 1:5}  {ct.pki:4.1f}  {ct.etcd:4.1f}  {ct.apiserver:9.1f}  {ct.total:5.1f}  {site:5.1f}  "
                  f"{check:9.1f}  {stop:4.1f}   ({passed} checks passed)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
