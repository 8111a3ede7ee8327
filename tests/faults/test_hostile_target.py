"""No pass without a measurement, as a property of the whole catalog.

Every check of both suites, in both profiles, runs against targets (and a control machine) whose
every command fails in one way (tests/faults/hostile.py): the tool is missing (127), permission is
denied (1, 126), the command prints nothing or garbage with exit 0, it times out, or the SSH
connection drops (255).  One way per run, for every host and the control machine alike (a fleet
check that passes when every host prints nothing is only caught when every host does).  The
production inventory has three hosts in every group, one of them logging in as root (sudo is then
not involved).  Whatever a check makes of that, it must not be `pass`: nothing was measured.  The only checks allowed to pass are those in NO_TARGET, which judge operator input alone
(inventory groups, files on the control machine) and, as the command log proves, sent no command
to any machine.

The hosts' addresses are lab hosts (network namespaces) with nothing listening, so the probes a
check sends from this machine (TCP, TLS, the Kubernetes API) are refused for real; the resolver is a
closed port on loopback.  One pytest run per way of failing, suite and profile (28), seconds each.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.faults.hostile import MODES
from tests.support.wc import run_suite

# Checks that never send a command to a target or to the control machine: they judge what the
# operator wrote. A pass there is a judgement of that input, not of a machine. Reason for each.
#: inventory counts that ask each host for its machine identity and fall back to its address
BY_ADDRESS = {"K8S-WORKERS", "K8S-ETCD", "PROD-VM-COUNT"}

NO_TARGET = {
    "CFG-NO-PLACEHOLDERS": "searches the inventory file (and values files) for example values; reads files "
                           "with Python, asks no machine",
    "K8S-WORKERS": "preflight: counts the hosts of the inventory's [kube-node] group (there is no cluster yet)",
    "K8S-ETCD": "preflight: counts the hosts of the inventory's [etcd] group (there is no cluster yet)",
    "PROD-VM-COUNT": "counts the hosts of the inventory's groups against the docs' minimum VM numbers",
    "K8S-API-NOT-PUBLIC": "connects from the machine running wirecheck to the API server addresses: the lab "
                          "hosts really refuse, which is what it requires (a measurement, not of a target)",
}


GROUPS = ("admin", "assethost", "cassandra", "elasticsearch", "k8s-cluster", "kube-master", "kube-node", "etcd",
          "minio", "postgresql", "restund", "sft", "rmq-cluster")
DOMAIN = "wire.example.test"
RUNS = [(suite, profile) for suite in ("preflight", "acceptance") for profile in ("demo", "production")]


@pytest.fixture(scope="module")
def hostile_site(lab_module, tmp_path_factory):
    """Three lab hosts with nothing listening (sshd stopped); inventories naming them in every role
    (node3 logs in as root); a kubeconfig whose API server refuses connections."""
    hosts = lab_module.add_hosts([{"name": f"hostile{i}"} for i in (1, 2, 3)])
    for h in hosts:
        h.stop_sshd()
    d = tmp_path_factory.mktemp("hostile")
    common = {"target_domain": DOMAIN, "wire_ip": hosts[0].address, "artifact_hash": "0123abcd",
              "kube_version": "v1.29.4", "restund_tls_certificate": "yes"}
    demo = {"all": {"vars": common, "children": {"deploy_node": {"hosts": {
        "deploy_node": {"ansible_host": hosts[0].address, "ansible_user": "wire"}}}}}}
    prod_hosts = {f"node{i}": {"ansible_host": h.address, "ansible_user": "root" if i == 3 else "wire"}
                  for i, h in enumerate(hosts, 1)}
    prod = {"all": {"vars": common, "hosts": prod_hosts,
                    "children": {g: {"hosts": dict.fromkeys(prod_hosts)} for g in GROUPS}}}
    (d / "demo.yml").write_text(yaml.safe_dump(demo))
    (d / "production.yml").write_text(yaml.safe_dump(prod))
    (d / "kubeconfig").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": f"https://{hosts[0].address}:6443",
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "hostile-test-token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}))
    return d


def commands_by_check(log: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            check = line.split("\t", 1)[0]
            counts[check] = counts.get(check, 0) + 1
    return counts


@pytest.mark.parametrize("suite,profile", RUNS, ids=[f"{s}-{p}" for s, p in RUNS])
@pytest.mark.parametrize("mode", MODES)
def test_no_pass_from_a_hostile_target(hostile_site, tmp_path, mode, suite, profile):
    log = tmp_path / "commands.log"
    run = run_suite(["-p", "tests.faults.hostile", "--ansible-inventory", str(hostile_site / f"{profile}.yml"),
                     "--profile", profile, "--nameserver", "127.0.0.1:9", "--kubeconfig",
                     str(hostile_site / "kubeconfig"), "--dns-timeout", "0.5", "--dns-tries", "1",
                     "--tls-timeout", "1", "--port-timeout", "1", "--connect-timeout", "2"],
                    tmp_path / "report", suite=f"suites/{suite}", timeout=240,
                    env={"WIRECHECK_HOSTILE": mode, "WIRECHECK_HOSTILE_LOG": str(log)})
    compliance = run.compliance
    assert compliance["complete"] is True, run.stdout[-2000:] + run.stderr[-2000:]
    results = [(req["id"], r) for req in compliance["requirements"] for r in req["results"]]
    assert len(results) > 30, run.stdout[-2000:]
    calls = commands_by_check(log)
    assert calls, "the hostile transport was never used: the plugin did not replace the targets' transports"
    assert {r["target"] for _, r in results} >= ({"deploy_node"} if profile == "demo" else {"node1", "node2", "node3"})
    def machines_by_address(rid, r) -> bool:
        # the counts go by machine (issue 12): they ask each host for its identity, and where nothing
        # can be read they count distinct addresses of the inventory, and say so for every host
        ident = (r.get("evidence") or {}).get("identified_by") or {}
        return rid in BY_ADDRESS and bool(ident) and all(
            str(v).startswith("address ") and "machine-id not read" in str(v) for v in ident.values())

    false_passes = [r["message"] for rid, r in results
                    if r["status"] == "pass" and (rid not in NO_TARGET or (calls.get(r["check"])
                                                                           and not machines_by_address(rid, r)))]
    assert not false_passes, f"{len(false_passes)} pass(es) from a target that measured nothing:\n" + \
        "\n".join(false_passes)
    crashed = [r["message"] for rid, r in results if "check crashed" in r["message"]]
    assert not crashed, "errors must name the cause, not a Python exception:\n" + "\n".join(crashed)
    # nothing measured, so the run is not a success
    assert run.rc != 0
    if os.environ.get("WIRECHECK_HOSTILE_SUMMARY"):      # for a person reading what the checks said
        out = Path(os.environ["WIRECHECK_HOSTILE_SUMMARY"]) / f"{mode}-{suite}-{profile}.json"
        out.write_text(json.dumps([{"id": rid, **r} for rid, r in results], indent=1))
