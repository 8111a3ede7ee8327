"""The demo deploy node after the playbook ran (wiab-demo › 5. Minikube Cluster Configuration,
13. Helm Chart Installation › Cert Manager Hairpin Networking Configuration)."""

from __future__ import annotations

import json
import re
import shlex
import time
from typing import Any

from wirecheck import cannot_measure, expect, fail, not_applicable, not_evaluated, record, requirement
from wirecheck.transport import TransportError


def _json(text: str) -> Any:
    text = text.strip()
    start = min([i for i in (text.find("{"), text.find("[")) if i >= 0], default=-1)
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except json.JSONDecodeError:
        return None


def minikube_problems(target, spec) -> list[str]:
    """What is wrong with the minikube profile, measured with the node's own minikube (as the login user)."""
    profile = str(spec.profile)
    if not target.facts.which("minikube"):
        fail("minikube is not installed on the node (command -v minikube)", observed="no minikube",
             expected=f"profile {profile} Running", method="command -v minikube")
    q = shlex.quote(profile)
    status_res = target.run(f"minikube status --profile={q} -o json", timeout=60)
    status = _json(status_res.stdout)
    plist_res = target.run("minikube profile list -o json", timeout=60)
    plist = _json(plist_res.stdout)
    problems: list[str] = []
    if isinstance(status, list):       # several nodes: one object each
        record(nodes_in_status=len(status))
        status = status[0] if status else None
    if not isinstance(status, dict):
        problems.append(f"`minikube status --profile={profile}` gave no status (exit {status_res.rc}: "
                        f"{(status_res.stderr.strip() or status_res.stdout.strip())[:200]})")
    else:
        record(status={k: status.get(k) for k in ("Name", "Host", "Kubelet", "APIServer", "Kubeconfig")})
        for comp in ("Host", "Kubelet", "APIServer"):
            if status.get(comp) != "Running":
                problems.append(f"{comp} is {status.get(comp)!r}, not Running")
    found = None
    if isinstance(plist, dict):
        for p in plist.get("valid") or []:
            if p.get("Name") == profile:
                found = p
        if found is None and any(p.get("Name") == profile for p in plist.get("invalid") or []):
            problems.append(f"profile {profile} is listed as invalid")
    if found is None:
        problems.append(f"profile {profile} not in `minikube profile list`")
    else:
        cfg = found.get("Config") or {}
        kcfg = cfg.get("KubernetesConfig") or {}
        seen = {"driver": cfg.get("Driver"), "kubernetes_version": kcfg.get("KubernetesVersion"),
                "container_runtime": kcfg.get("ContainerRuntime"), "nodes": len(cfg.get("Nodes") or [])}
        record(profile=seen)
        want = {"driver": spec.driver, "kubernetes_version": spec.kubernetes_version,
                "container_runtime": spec.container_runtime, "nodes": int(spec.nodes)}
        problems += [f"{k} is {seen[k]!r}, need {v!r}" for k, v in want.items() if seen[k] != v]
    return problems


@requirement("DEMO-ACC-MINIKUBE")
def test_minikube_cluster(target, spec):
    problems = minikube_problems(target, spec)
    expect(problems, f"minikube profile {spec.profile}",
           method=f"minikube status --profile={spec.profile} -o json; minikube profile list -o json").is_empty(
        f"{spec.profile} Running with {spec.nodes} node, {spec.kubernetes_version}, {spec.container_runtime}, "
        f"{spec.driver}", "; ".join(problems))


HAIRPIN_DNAT = re.compile(r"^-A PREROUTING .*-i (\S+) .*--dport (\d+) .*-j DNAT --to-destination (\S+)")
HAIRPIN_MASQ = re.compile(r"^-A POSTROUTING .*-s (\S+) .*-j MASQUERADE")


def hairpin_rules(nat_rules: str) -> tuple[dict[str, list[str]], list[str]]:
    """DNAT rules per in-interface (port -> destination) and MASQUERADE sources in `iptables -t nat -S`."""
    dnat: dict[str, list[str]] = {}
    masq: list[str] = []
    for line in nat_rules.splitlines():
        m = HAIRPIN_DNAT.match(line.strip())
        if m:
            dnat.setdefault(m.group(1), []).append(f"{m.group(2)} -> {m.group(3)}")
        m = HAIRPIN_MASQ.match(line.strip())
        if m:
            masq.append(m.group(1))
    return dnat, masq


@requirement("DEMO-ACC-HAIRPIN")
def test_pods_reach_public_ip(target, site, spec):
    use = target.vars.get("use_cert_manager", site.use_cert_manager)
    if not (use if isinstance(use, bool) else str(use).lower() in ("true", "yes", "1")):
        not_applicable("use_cert_manager is false: cert-manager's HTTP-01 self-check does not run")
    if not site.wire_ip:
        not_evaluated("the public IP the minikube node must reach is not known", option="--wire-ip (or inventory wire_ip)")
    node = str(spec.node_container)
    problems: list[str] = []
    reach: dict[str, str] = {}
    if not target.facts.which("docker"):
        problems.append(f"docker is not installed: no minikube node container {node} to test from")
    else:
        for port in spec.ports:
            cmd = f"nc -z -w {int(spec.timeout_s)} {site.wire_ip} {int(port)} && echo wirecheck-open"
            res = target.run(f"docker exec {shlex.quote(node)} sh -c {shlex.quote(cmd)}", sudo=True,
                             timeout=float(spec.timeout_s) + 20)
            if res.rc == 0 and res.stdout.strip() != "wirecheck-open":   # exit 0 alone proves no connection
                cannot_measure(f"`docker exec {node} nc -z {site.wire_ip} {port}` exited 0 without its "
                               f"confirmation: {res.stdout.strip()[:80]!r}")
            reach[str(port)] = "open" if res.rc == 0 else (
                (res.stderr.strip().splitlines() or [f"exit {res.rc}"])[-1][:200])
            if res.rc != 0:
                problems.append(f"{site.wire_ip}:{port} not reachable from {node}: {reach[str(port)]}")
    rules, how = target.facts.iptables_rules()
    nat = rules.split("#nat", 1)[1] if rules and "#nat" in rules else ""
    dnat, masq = hairpin_rules(nat)
    modes: dict[str, str] = {}
    for bridge in dnat:
        res = target.run_marked(f"for f in /sys/class/net/{shlex.quote(bridge)}/brif/*/hairpin_mode; do "
                                "[ -e \"$f\" ] && echo \"$f $(cat \"$f\")\"; done", "hairpin_mode", timeout=15)
        ports = {}
        for line in res.stdout.splitlines():
            path, _, value = line.rpartition(" ")
            ports[path.split("/")[-2]] = value
        modes.update({f"{bridge}/{p}": v for p, v in ports.items()})
        off = [p for p, v in ports.items() if v != "1"]
        if off:
            problems.append(f"hairpin NAT rules on {bridge}, but hairpin_mode is not 1 on: {', '.join(sorted(off))}")
    record(reach_from_node=reach or None, hairpin_dnat=dnat or "none", hairpin_masquerade=masq or "none",
           hairpin_mode=modes or None, wire_ip=site.wire_ip)
    expect(problems, "hairpin", method=f"docker exec {node} nc -z {site.wire_ip} "
           f"{'/'.join(map(str, spec.ports))}; iptables -t nat -S; /sys/class/net/<bridge>/brif/*/hairpin_mode"
           ).is_empty(f"{site.wire_ip} reachable from {node} on {', '.join(map(str, spec.ports))}",
                      "; ".join(problems))


def _boot_id(target) -> str | None:
    try:
        res = target.run("cat /proc/sys/kernel/random/boot_id", timeout=15)
    except TransportError:
        target.transport.close()
        return None
    return res.stdout.strip() or None if res.rc == 0 else None


@requirement("IMP-REBOOT")
def test_recovers_after_reboot(target, site, spec):
    if not site.option("allow_reboot"):
        not_evaluated("proving that the node recovers needs a reboot of the node, which wirecheck only does "
                      "when told to", option="--allow-reboot")
    before = _boot_id(target)
    if not before:
        cannot_measure("cannot read the boot id of the node before the reboot")
    target.run("nohup sh -c 'sleep 2; systemctl reboot || shutdown -r now' >/dev/null 2>&1 &", sudo=True, timeout=20)
    target.transport.close()
    deadline = time.monotonic() + float(spec.timeout_s)
    after = None
    while time.monotonic() < deadline:
        time.sleep(10)
        after = _boot_id(target)
        if after and after != before:
            break
    if not after or after == before:
        fail(f"the node did not come back (with a new boot id) within {spec.timeout_s} s",
             observed="no new boot", expected="back within the timeout", method="boot_id over SSH")
    problems = minikube_problems(target, spec)
    res = target.run("iptables -t nat -S", sudo=True, timeout=20)     # not the cached facts: after the reboot
    dnat, _ = hairpin_rules(res.stdout)
    record(boot_id_before=before, boot_id_after=after, dnat_after_reboot=dnat or "none")
    if not dnat:
        problems.append("no Wire DNAT rules after the reboot (iptables rules are not persisted)")
    expect(problems, "state after reboot", method="reboot; minikube status; iptables -t nat -S").is_empty(
        "minikube Running and the DNAT rules back", "; ".join(problems))
