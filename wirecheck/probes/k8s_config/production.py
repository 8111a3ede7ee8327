"""Production values: the SMTP relay (PROD-ACC-SMTP), secrets that are set and not placeholders
(PROD-ACC-SECRETS) and the ephemeral datastores' scope (PROD-ACC-EPHEMERAL-SCOPE).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from ..k8s import (
    DEFAULT_TIMEOUT,
    Judgement,
    KubeApi,
)
from .values import ValuesSource, _missing_wire_server, dig, is_placeholder, truthy

# ====================================================================== PROD-ACC-SMTP


def node_pod_cidrs(api: KubeApi, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """spec.podCIDR of every node (the ranges demo-smtp must relay for)."""
    return sorted({str((n.get("spec") or {}).get("podCIDR")) for n in api.list("nodes", timeout=timeout)
                   if (n.get("spec") or {}).get("podCIDR")})


def _relay_problem(relay: Any, pod_cidrs: Sequence[str]) -> str | None:
    nets = []
    for item in re.split(r"[\s,:]+", str(relay or "")):
        try:
            nets.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            continue
    uncovered = []
    for cidr in pod_cidrs:
        try:
            pod_net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        if not any(pod_net.version == n.version and pod_net.subnet_of(n) for n in nets):  # type: ignore[arg-type]
            uncovered.append(cidr)
    if uncovered:
        return f"demo-smtp RELAY_NETWORKS {relay!r} does not cover the pod network(s) {', '.join(uncovered)}"
    return None


def judge_smtp(src: ValuesSource, pod_cidrs: Sequence[str] = ()) -> Judgement:
    method = f"{src.method}: brig.config.smtp, brig.secrets.smtpPassword, demo-smtp values"
    expected = "brig.config.smtp host, port, connType (password in brig.secrets.smtpPassword when a username is " \
               "set), or the demo-smtp release as the SMTP server"
    missing = _missing_wire_server(src, expected, method)
    if missing:
        return missing
    ws = src.get("wire-server") or {}
    smtp = dig(ws, "brig.config.smtp") or {}
    host, port, conn = dig(smtp, "host"), dig(smtp, "port"), dig(smtp, "connType")
    problems = []
    if is_placeholder(host):
        problems.append("brig.config.smtp.host is not set")
    try:
        if not 0 < int(port) < 65536:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"brig.config.smtp.port {port!r} is not a port number")
    if conn not in ("plain", "tls", "ssl"):
        problems.append(f"brig.config.smtp.connType {conn!r} is not plain, tls or ssl")
    if not is_placeholder(dig(smtp, "username")) and is_placeholder(dig(ws, "brig.secrets.smtpPassword")):
        problems.append("brig.config.smtp.username is set but brig.secrets.smtpPassword is empty")
    demo = src.has("demo-smtp") or src.has("smtp")
    relay = None
    if demo and pod_cidrs:
        rel = src.get("demo-smtp") if src.has("demo-smtp") else src.get("smtp")
        relay = dig(rel, "envVars.RELAY_NETWORKS")
        if relay is not None:   # unset: the chart's default, which covers the usual pod networks
            why = _relay_problem(relay, pod_cidrs)
            if why:
                problems.append(why)
    observed = f"smtp {host}:{port} ({conn})" + ("; demo-smtp release present" if demo else "")
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems),
                     evidence={"host": host, "port": port, "connType": conn, "demo_smtp": demo,
                               "relay_networks": relay, "pod_cidrs": list(pod_cidrs)})


# ====================================================================== PROD-ACC-SECRETS

AWS_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


def _keys(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [k for k in re.split(r"[\s,]+", str(value or "")) if k]


def judge_secrets(src: ValuesSource, rabbitmq_used: bool) -> Judgement:
    method = (f"{src.method}: brig.secrets.turn.secret, brig.secrets.zAuth, nginz.secrets.zAuth.publicKeys, "
              "brig/background-worker rabbitmq passwords, gundeck.config.aws")
    expected = ("TURN secret and zAuth keypair set (not placeholders); nginz public key = brig's; RabbitMQ password "
                "in brig and background-worker; gundeck aws account 12 digits, valid region, queueName "
                "<arnEnv>-gundeck-events")
    missing = _missing_wire_server(src, expected, method)
    if missing:
        return missing
    ws = src.get("wire-server") or {}
    problems = []
    if is_placeholder(dig(ws, "brig.secrets.turn.secret")):
        problems.append("brig.secrets.turn.secret is not set")
    pub, priv = _keys(dig(ws, "brig.secrets.zAuth.publicKeys")), _keys(dig(ws, "brig.secrets.zAuth.privateKeys"))
    if not pub or any(is_placeholder(k) for k in pub):
        problems.append("brig.secrets.zAuth.publicKeys is not set")
    if not priv or any(is_placeholder(k) for k in priv):
        problems.append("brig.secrets.zAuth.privateKeys is not set")
    nginz_pub = _keys(dig(ws, "nginz.secrets.zAuth.publicKeys"))
    if not nginz_pub:
        problems.append("nginz.secrets.zAuth.publicKeys is not set")
    elif pub and not set(pub) & set(nginz_pub):
        problems.append("nginz.secrets.zAuth.publicKeys does not contain brig's zAuth public key")
    if rabbitmq_used:
        b = dig(ws, "brig.secrets.rabbitmq.password")
        w = dig(ws, "background-worker.secrets.rabbitmq.password")
        if is_placeholder(b) or is_placeholder(w):
            problems.append("RabbitMQ password missing in brig.secrets.rabbitmq or background-worker.secrets.rabbitmq")
        elif b != w:
            problems.append("brig and background-worker have different RabbitMQ passwords")
    aws = dig(ws, "gundeck.config.aws") or {}
    account, region = str(aws.get("account", "")), str(aws.get("region", ""))
    arn_env, queue = str(aws.get("arnEnv", "")), str(aws.get("queueName", ""))
    if not re.fullmatch(r"\d{12}", account):
        problems.append(f"gundeck.config.aws.account {account!r} is not 12 digits")
    if not AWS_REGION.match(region):
        problems.append(f"gundeck.config.aws.region {region!r} is not an AWS region name")
    if not arn_env or queue != f"{arn_env}-gundeck-events":
        problems.append(f"gundeck.config.aws.queueName {queue!r} is not <arnEnv>-gundeck-events (arnEnv {arn_env!r})")
    observed = (f"turn secret {'set' if not is_placeholder(dig(ws, 'brig.secrets.turn.secret')) else 'missing'}, "
                f"zAuth {len(pub)} public / {len(priv)} private key(s), nginz {len(nginz_pub)} public key(s), "
                f"gundeck aws account {account or '-'} region {region or '-'} queue {queue or '-'}")
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems), evidence={"rabbitmq_checked": rabbitmq_used})


# ====================================================================== PROD-ACC-EPHEMERAL-SCOPE


def judge_ephemeral_scope(src: ValuesSource) -> Judgement:
    method = f"{src.method}: databases-ephemeral tags, fake-aws presence, gundeck.config.aws endpoints"
    expected = ("databases-ephemeral only with redis (tags.cassandra-ephemeral and tags.elasticsearch-ephemeral "
                "false); with fake-aws gundeck uses http://fake-aws-sqs:4568 and http://fake-aws-sns:4575")
    problems = []
    notes = []
    de = src.get("databases-ephemeral")
    if de is not None:
        on = [t for t in ("cassandra-ephemeral", "elasticsearch-ephemeral")
              if truthy(dig(de, f"tags.{t}", True))]  # the chart enables both unless told otherwise
        if on:
            problems.append("databases-ephemeral runs " + " and ".join(on) + " in production (data is lost on "
                            "restart): set tags." + ": false, tags.".join(on) + ": false")
        notes.append("databases-ephemeral: " + ("redis only" if not on else "with " + ", ".join(on)))
    if src.has("fake-aws"):
        ws = src.get("wire-server") or {}
        sqs, sns = dig(ws, "gundeck.config.aws.sqsEndpoint"), dig(ws, "gundeck.config.aws.snsEndpoint")
        notes.append(f"fake-aws installed (websocket-only notifications); gundeck sqs {sqs} sns {sns}")
        if sqs != "http://fake-aws-sqs:4568" or sns != "http://fake-aws-sns:4575":
            problems.append(f"fake-aws is installed but gundeck points at sqs {sqs}, sns {sns}")
    if de is None and not src.has("fake-aws"):
        return Judgement(True, "neither databases-ephemeral nor fake-aws is installed", expected, method,
                         message="no test charts installed", applicable=False)
    return Judgement(ok=not problems, observed="; ".join(notes), expected=expected, method=method,
                     message="; ".join(problems), evidence={"fake_aws": src.has("fake-aws")})
