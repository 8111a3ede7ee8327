"""Kubernetes preflight: the cluster the inventory will build (planning.md › Production installation;
docs_ubuntu_22.04.md › Configuring kubernetes and etcd; 99-static).

Before install there is no cluster: the worker and etcd counts come from the Ansible inventory's
groups (`[kube-node]`, `[etcd]`; kubespray's newer `kube_node` is accepted too) and the version
from its pin (`kube_version` / `kubernetes_version`). When a kubeconfig is given (re-install or
upgrade) the version is read from the running cluster instead.
"""

from __future__ import annotations

from wirecheck import cannot_measure, expect, not_applicable, not_evaluated, record, requirement
from wirecheck.fleet import machines
from wirecheck.machines import merged_names
from wirecheck.probes import k8s

WORKER_GROUPS = ("kube-node", "kube_node")
ETCD_GROUPS = ("etcd",)


def conclude(j: k8s.Judgement, what: str) -> None:
    """Turn a probe's judgement into the verdict (level-aware: fail for MUST, warn otherwise). The
    Kubernetes and configuration checks of both suites use this one."""
    record(**j.evidence)
    if not j.applicable:
        record(observed=j.observed)
        not_applicable(j.message or j.observed)
    if not j.measurable:
        cannot_measure(j.message or j.observed)
    expect(j.observed, what, method=j.method).satisfies(lambda _: j.ok, j.expected, message=j.message or None)


def _group_hosts(site, groups: tuple[str, ...]) -> list[str]:
    """The group's machines (one machine under several names counts once), named by their names."""
    if not site.inventory_path:
        not_evaluated(f"the [{groups[0]}] group comes from the Ansible inventory, none given",
                      option="--ansible-inventory")
    members = site.targets_with_role(*groups)
    ms = machines(site, members)
    merged = merged_names(ms)
    record(identified_by={m.label: m.identity.how for m in ms})
    if merged:
        record(merged_names=merged)
    return sorted(m.label for m in ms)


@requirement("K8S-WORKERS")
def test_inventory_worker_nodes(site, spec):
    hosts = _group_hosts(site, WORKER_GROUPS)
    conclude(k8s.judge_inventory_group(WORKER_GROUPS[0], hosts, int(spec.get("min_workers", 3))),
             "worker machines in the inventory")


@requirement("K8S-ETCD")
def test_inventory_etcd_members(site, spec):
    hosts = _group_hosts(site, ETCD_GROUPS)
    conclude(k8s.judge_inventory_group(ETCD_GROUPS[0], hosts, int(spec.get("min_members", 3)), odd=True),
             "etcd machines in the inventory")


@requirement("K8S-VERSION")
def test_kubernetes_version_to_install(site, spec):
    min_minor, rec_minor = int(spec.get("min_minor", 27)), int(spec.get("recommended_minor", 29))
    if site.kubeconfig:
        problem = None
        try:
            api = k8s.KubeApi.from_kubeconfig(site.kubeconfig, site.option("kube_context"))
            facts = k8s.version_facts(api, float(spec.get("timeout_s", 15)))
        except k8s.KubeApiError as exc:
            problem = f"Kubernetes API: {exc}"  # raised outside the except: no chained traceback
        if problem:
            cannot_measure(problem)
        pin = next((str(site.vars[k]) for k in ("kube_version", "kubernetes_version") if site.vars.get(k)), None)
        conclude(k8s.judge_version(facts, pin, min_minor, rec_minor), "Kubernetes version (running cluster)")
        return
    for key in ("kube_version", "kubernetes_version"):
        if site.vars.get(key):
            conclude(k8s.judge_version_pin(str(site.vars[key]), key, min_minor, rec_minor),
                     "Kubernetes version to install")
            return
    not_evaluated("no Kubernetes version pinned in the inventory (kube_version / kubernetes_version) and no "
                  "running cluster", option="--ansible-inventory or --kubeconfig")
