"""Calling in the values and the cluster: SFT configuration (CALL-SFT-CONFIG), TURN URIs (CALL-TURN-URIS),
coturn placement (CALL-COTURN-PLACEMENT) and the demo's calling values (DEMO-ACC-CALLING-VALUES).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..k8s import (
    Judgement,
    NodeFacts,
    PodFacts,
)
from ..k8s.judgement import _names
from .values import ValuesSource, _missing_wire_server, dig, is_placeholder, truthy

# ====================================================================== CALL-SFT-CONFIG


def sft_used(src: ValuesSource) -> bool:
    return src.has("sftd") or truthy(dig(src.get("wire-server") or {}, "tags.sftd", False))


def judge_sft_config(src: ValuesSource, domain: str) -> Judgement:
    method = (f"{src.method}: wire-server brig.config.optSettings.setSftStaticUrl, tags.sftd; sftd host, "
              "allowOrigin")
    expected = (f"setSftStaticUrl https://sftd.{domain}:443; sftd host sftd.{domain}; allowOrigin "
                f"https://webapp.{domain}; tags.sftd false with a standalone sftd release")
    missing = _missing_wire_server(src, expected, method)
    if missing:
        return missing
    ws = src.get("wire-server") or {}
    standalone = src.get("sftd")
    umbrella = truthy(dig(ws, "tags.sftd", False))
    problems = []
    url = dig(ws, "brig.config.optSettings.setSftStaticUrl")
    if str(url or "").rstrip("/") != f"https://sftd.{domain}:443":
        problems.append(f"brig setSftStaticUrl is {url}, expected https://sftd.{domain}:443")
    sft = standalone if standalone is not None else (dig(ws, "sftd") or {})
    host, origin = dig(sft, "host"), dig(sft, "allowOrigin")
    if host != f"sftd.{domain}":
        problems.append(f"sftd host is {host}, expected sftd.{domain}")
    if str(origin or "").rstrip("/") != f"https://webapp.{domain}":
        problems.append(f"sftd allowOrigin is {origin}, expected https://webapp.{domain}")
    if standalone is not None and umbrella:
        problems.append("a standalone sftd release exists but wire-server has tags.sftd: true (two SFTs)")
    observed = (f"{'standalone sftd release' if standalone is not None else 'sftd in the umbrella chart'}; "
                f"setSftStaticUrl {url}; host {host}; allowOrigin {origin}; tags.sftd {umbrella}")
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems), evidence={"standalone": standalone is not None})


# ====================================================================== CALL-TURN-URIS

TURN_URI = re.compile(r"^turns?:(?P<host>[^:?]+):(?P<port>\d+)(\?transport=(?P<t>udp|tcp))?$")


def judge_turn_uris(src: ValuesSource, turn_ips: Sequence[str], min_hosts: int = 2) -> Judgement:
    method = f"{src.method}: wire-server brig.turnStatic.v2, brig.secrets.turn.secret"
    want = sorted(set(turn_ips))
    expected = ("every brig.turnStatic.v2 URI turn[s]:<host>:<port>[?transport=udp|tcp]; "
                + (f"turn:<ip>:3478 and turn:<ip>:3478?transport=tcp for each of {', '.join(want)}; "
                   if want else "") + "brig.secrets.turn.secret set")
    missing = _missing_wire_server(src, expected, method)
    if missing:
        return missing
    ws = src.get("wire-server") or {}
    uris = dig(ws, "brig.turnStatic.v2")
    problems = []
    if not isinstance(uris, list) or not uris:
        problems.append("brig.turnStatic.v2 lists no TURN URIs")
        uris = []
    hosts = []
    for u in uris:
        m = TURN_URI.match(str(u).strip())
        if not m:
            problems.append(f"malformed TURN URI {u!r}")
        else:
            hosts.append(m["host"])
    for ip in want:
        for need in (f"turn:{ip}:3478", f"turn:{ip}:3478?transport=tcp"):
            if need not in [str(u).strip() for u in uris]:
                problems.append(f"{need} is missing")
    unknown = sorted(set(hosts) - set(want)) if want else []
    if unknown:
        problems.append(f"TURN host(s) {', '.join(unknown)} are not the declared TURN servers ({', '.join(want)})")
    if is_placeholder(dig(ws, "brig.secrets.turn.secret")):
        problems.append("brig.secrets.turn.secret is not set")
    distinct = sorted(set(hosts))
    note = f"only {len(distinct)} distinct TURN host(s): Wire's linter recommends >= {min_hosts}" \
        if len(distinct) < min_hosts else ""
    observed = f"{len(uris)} URI(s): {_names([str(u) for u in uris])}"
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems) or note,
                     evidence={"uris": [str(u) for u in uris], "declared_turn_ips": want, "note": note})


# ====================================================================== CALL-COTURN-PLACEMENT


def _is_coturn(p: PodFacts) -> bool:
    return p.labels.get("app") == "coturn" or p.labels.get("app.kubernetes.io/name") == "coturn" \
        or p.owner_name == "coturn"


def _is_sftd(p: PodFacts) -> bool:
    return p.labels.get("app.kubernetes.io/name") == "sftd" or p.labels.get("app") == "sftd" or p.owner_name == "sftd"


def judge_coturn_placement(src: ValuesSource, nodes: Sequence[NodeFacts], pods: Sequence[PodFacts]) -> Judgement:
    method = (f"GET /api/v1/nodes (wire.com/role=coturn, wire.com/external-ip), GET /api/v1/pods (coturn vs sftd "
              f"nodes); {src.method}: coturn nodeSelector, replicaCount, coturnTurnExternalIP")
    expected = ("coturn pods Running on nodes labelled wire.com/role=coturn, none shared with SFT; replicaCount <= "
                "labelled nodes; nodeSelector wire.com/role: coturn; coturnTurnExternalIP set")
    values = src.get("coturn")
    coturn_pods = [p for p in pods if _is_coturn(p) and not p.terminating]
    if values is None and not coturn_pods:
        return Judgement(True, "no coturn release and no coturn pods", expected, method,
                         message="coturn is not deployed (restund or an external TURN server is used)",
                         applicable=False)
    values = values or {}
    problems = []
    labelled = sorted(n.name for n in nodes if n.labels.get("wire.com/role") == "coturn")
    if not labelled:
        problems.append("no node is labelled wire.com/role=coturn")
    sel = dig(values, "nodeSelector") or {}
    if sel.get("wire.com/role") != "coturn":
        problems.append(f"coturn nodeSelector is {sel or 'unset'}, expected wire.com/role: coturn")
    if is_placeholder(dig(values, "coturnTurnExternalIP")):
        problems.append("coturnTurnExternalIP is not set")
    replicas = dig(values, "replicaCount", 1)
    try:
        if int(replicas) > len(labelled):
            problems.append(f"replicaCount {replicas} > {len(labelled)} labelled node(s) (one coturn per node)")
    except (TypeError, ValueError):
        problems.append(f"replicaCount {replicas!r} is not a number")
    not_running = [p.ref for p in coturn_pods if p.phase != "Running" or not p.ready]
    if not coturn_pods:
        problems.append("no coturn pod exists")
    if not_running:
        problems.append(f"coturn pod(s) not Running/Ready: {_names(not_running)}")
    stray = [f"{p.ref} on {p.node}" for p in coturn_pods if labelled and p.node not in labelled]
    if stray:
        problems.append(f"coturn pod(s) on unlabelled nodes: {_names(stray)}")
    sft_nodes = {p.node for p in pods if _is_sftd(p) and not p.terminating}
    shared = sorted({p.node for p in coturn_pods} & sft_nodes)
    if shared:
        problems.append(f"coturn and SFT share node(s) {', '.join(shared)}")
    by_node = {p.node for p in coturn_pods}
    if len(by_node) < len(coturn_pods):
        problems.append("more than one coturn pod on a node")
    no_ip = [n.name for n in nodes if n.name in labelled and not n.annotations.get("wire.com/external-ip")]
    observed = (f"labelled nodes {_names(labelled)}; coturn pods {_names(f'{p.ref}@{p.node}' for p in coturn_pods)}; "
                f"SFT nodes {_names(sorted(sft_nodes))}; replicaCount {replicas}")
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems),
                     evidence={"labelled_without_external_ip": no_ip})


# ====================================================================== DEMO-ACC-CALLING-VALUES


def judge_demo_calling_values(src: ValuesSource, node: NodeFacts | None, wire_ip: str, domain: str,
                              use_cert_manager: bool, node_name: str = "k8s-wire") -> Judgement:
    method = (f"GET /api/v1/nodes/{node_name} (annotation, InternalIP); {src.method}: nodeSelector of "
              "ingress-nginx-controller/sftd/coturn, coturn IPs, nginx-ingress-services tls")
    expected = (f"node {node_name} annotated wire.com/external-ip={wire_ip}; nodeSelector kubernetes.io/hostname: "
                f"{node_name} for ingress-nginx-controller, sftd, coturn; coturn listen/relay = InternalIP, external = "
                f"{wire_ip}; nginx-ingress-services tls.enabled/useCertManager {use_cert_manager}")
    problems = []
    if node is None:
        problems.append(f"node {node_name} does not exist")
    else:
        ann = node.annotations.get("wire.com/external-ip")
        if ann != wire_ip:
            problems.append(f"node {node_name} wire.com/external-ip is {ann}, expected {wire_ip}")
    for rel in ("ingress-nginx-controller", "sftd", "coturn"):
        v = src.get(rel)
        if v is None:
            problems.append(f"no {rel} release values")
            continue
        sel = dig(v, "controller.nodeSelector") if rel == "ingress-nginx-controller" else None
        sel = sel or dig(v, "nodeSelector") or {}
        if sel.get("kubernetes.io/hostname") != node_name:
            problems.append(f"{rel} nodeSelector is {sel or 'unset'}, expected kubernetes.io/hostname: {node_name}")
    cot = src.get("coturn") or {}
    internal = node.internal_ip if node else None
    for key, want in (("coturnTurnListenIP", internal), ("coturnTurnRelayIP", internal),
                      ("coturnTurnExternalIP", wire_ip)):
        if src.has("coturn") and dig(cot, key) != want:
            problems.append(f"coturn {key} is {dig(cot, key)}, expected {want}")
    nis = src.get("nginx-ingress-services")
    if nis is None:
        problems.append("no nginx-ingress-services release values")
    else:
        for key in ("tls.enabled", "tls.useCertManager"):
            if truthy(dig(nis, key, False)) != use_cert_manager:
                problems.append(f"nginx-ingress-services {key} is {dig(nis, key)}, expected {use_cert_manager}")
        if use_cert_manager and dig(nis, "certManager.certmasterEmail") != f"certmaster@{domain}":
            problems.append(f"nginx-ingress-services certManager.certmasterEmail is "
                            f"{dig(nis, 'certManager.certmasterEmail')}, expected certmaster@{domain}")
    observed = (f"node {node_name} " + (f"InternalIP {internal}, external-ip "
                                        f"{node.annotations.get('wire.com/external-ip')}" if node else "missing")
                + f"; releases with values: {_names(sorted(src.releases))}")
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems))
