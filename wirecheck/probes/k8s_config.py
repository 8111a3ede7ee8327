"""Configuration probes: Wire's Helm chart values (from the cluster or from values files) judged
against the installation docs, plus a few cluster facts the calling/federation checks need.

Plain Python, no pytest. Two sources give the same shape, `{release name: values dict}`:
- `release_values(api)`: the user-supplied values of every deployed Helm release, decoded from
  Helm's release Secrets (what `helm get values <release> -o json` prints; chart defaults are not
  in there, so "unset" means "the chart default");
- `values_dir(path)`: a wire-server-deploy `values/` directory before install
  (`values/<chart>/values.yaml` deep-merged with `values/<chart>/secrets.yaml`).

The judges are pure (values + site facts in, `k8s.Judgement` out) and are shared by the preflight
(files) and acceptance (cluster) checks.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import re
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .k8s import (
    DEFAULT_TIMEOUT,
    HELM_SECRET_TYPE,
    JSON,
    Judgement,
    KubeApi,
    NodeFacts,
    PodFacts,
    ServiceFacts,
    WorkloadFacts,
    decode_helm_release,
)
from .k8s.judgement import _meta, _names

HELM_VALUES_METHOD = ("GET /api/v1/secrets?labelSelector=owner=helm (latest deployed revision of each release, "
                      "decoded `config`: what `helm get values` prints)")
FILES_METHOD = "values/<chart>/values.yaml deep-merged with values/<chart>/secrets.yaml"

PLACEHOLDERS = re.compile(r"^(|<.*>|\{\{.*\}\}|changeme|change[-_ ]?me|todo|xxx+|\.\.\.|replace[-_ ]?me|"
                          r"secret|password|example|null|none|fixme)$", re.I)


# ====================================================================== values sources


@dataclass(frozen=True)
class ValuesSource:
    """Chart values by release name and where they were read."""

    releases: dict[str, JSON]
    method: str
    where: str
    problems: tuple[str, ...] = ()

    def get(self, release: str) -> JSON | None:
        return self.releases.get(release)

    def has(self, release: str) -> bool:
        return release in self.releases


def release_values(api: KubeApi, timeout: float = DEFAULT_TIMEOUT) -> ValuesSource:
    """The user-supplied values of the newest *deployed* revision of every Helm 3 release."""
    secrets = api.list("secrets", label_selector="owner=helm", field_selector=f"type={HELM_SECRET_TYPE}",
                       timeout=timeout)
    best: dict[str, tuple[int, JSON]] = {}
    for s in secrets:
        labels = _meta(s).get("labels") or {}
        if labels.get("status") != "deployed":
            continue
        try:
            rev = int(labels.get("version", "0"))
        except ValueError:
            rev = 0
        name = labels.get("name", "")
        if name not in best or rev > best[name][0]:
            best[name] = (rev, s)
    releases: dict[str, JSON] = {}
    problems = []
    for name, (_rev, s) in sorted(best.items()):
        try:
            doc = decode_helm_release((s.get("data") or {}).get("release", ""))
        except ValueError as exc:
            problems.append(f"{name}: release not decodable ({exc})")
            continue
        cfg = doc.get("config")
        releases[name] = cfg if isinstance(cfg, dict) else {}
    return ValuesSource(releases, HELM_VALUES_METHOD, api.source or "cluster", tuple(problems))


def deep_merge(base: JSON, over: JSON) -> JSON:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def values_dir(path: str | Path) -> ValuesSource:
    """`<path>/<chart>/values.yaml` + `secrets.yaml` (either may be missing) for every chart directory."""
    import yaml

    root = Path(path)
    releases: dict[str, JSON] = {}
    problems: list[str] = []
    for chart in sorted(p for p in root.iterdir() if p.is_dir()):
        merged: JSON = {}
        found = False
        for fname in ("values.yaml", "secrets.yaml"):
            f = chart / fname
            if not f.is_file():
                continue
            found = True
            try:
                doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                problems.append(f"{f}: {str(exc).splitlines()[0]}")
                continue
            if isinstance(doc, dict):
                merged = deep_merge(merged, doc)
            else:
                problems.append(f"{f}: not a mapping")
        if found:
            releases[chart.name] = merged
    return ValuesSource(releases, FILES_METHOD, str(root), tuple(problems))


def dig(values: Any, dotted: str, default: Any = None) -> Any:
    cur = values
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


def is_placeholder(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(PLACEHOLDERS.match(value.strip())))


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _missing_wire_server(src: ValuesSource, expected: str, method: str) -> Judgement | None:
    if src.has("wire-server"):
        return None
    return Judgement(False, f"no wire-server values in {src.where} (releases: {_names(sorted(src.releases))})",
                     expected, method, message="the wire-server values could not be found", measurable=False)


# ====================================================================== FED-DOMAIN

FED_DOMAIN_PATHS = ("galley.config.settings.federationDomain", "brig.config.optSettings.setFederationDomain",
                    "cargohold.config.settings.federationDomain")
FED_ENABLE_PATHS = ("brig.config.enableFederation", "galley.config.enableFederation",
                    "cargohold.config.enableFederation", "background-worker.config.enableFederation")


def federation_in_values(src: ValuesSource) -> bool:
    ws = src.get("wire-server") or {}
    return truthy(dig(ws, "tags.federator", False)) or any(truthy(dig(ws, p, False)) for p in FED_ENABLE_PATHS)


def judge_federation_domain(src: ValuesSource, federating: bool, infra_domain: str | None = None,
                            expected_domain: str | None = None) -> Judgement:
    method = f"{src.method}: {', '.join(FED_DOMAIN_PATHS)}"
    expected = "federationDomain set, identical in galley, brig and cargohold, not example.com"
    if federating:
        expected += "; enableFederation in brig, galley, cargohold, background-worker; tags.federator; " \
                    "nginx-ingress-services federator.enabled and config.dns.federator"
    missing = _missing_wire_server(src, expected, method)
    if missing:
        return missing
    ws = src.get("wire-server") or {}
    seen = {p: dig(ws, p) for p in FED_DOMAIN_PATHS}
    problems = [f"{p} is not set" for p, v in seen.items() if is_placeholder(v)]
    values = {str(v).strip().lower() for v in seen.values() if not is_placeholder(v)}
    if len(values) > 1:
        problems.append("federationDomain differs: " + "; ".join(f"{p}={v}" for p, v in seen.items()))
    domain = next(iter(values)) if len(values) == 1 else None
    if domain and (domain == "example.com" or domain.endswith(".example.com")):
        problems.append(f"federationDomain is still the docs' placeholder {domain}")
    if domain and expected_domain and domain != expected_domain.lower() and not domain.endswith(
            "." + expected_domain.lower()) and not expected_domain.lower().endswith("." + domain):
        problems.append(f"federationDomain {domain} is unrelated to the site domain {expected_domain}")
    if federating:
        off = [p for p in FED_ENABLE_PATHS if not truthy(dig(ws, p, False))]
        if off:
            problems.append("federating, but enableFederation is not true in " + ", ".join(off))
        if not truthy(dig(ws, "tags.federator", False)):
            problems.append("federating, but wire-server tags.federator is not true")
        nis = src.get("nginx-ingress-services")
        if nis is None:
            problems.append("federating, but no nginx-ingress-services values found")
        else:
            if not truthy(dig(nis, "federator.enabled", False)):
                problems.append("nginx-ingress-services federator.enabled is not true")
            dns = dig(nis, "config.dns.federator")
            if is_placeholder(dns):
                problems.append("nginx-ingress-services config.dns.federator is not set")
            elif infra_domain and str(dns).lower() != infra_domain.lower():
                problems.append(f"nginx-ingress-services config.dns.federator is {dns}, expected {infra_domain}")
    observed = "; ".join(f"{p}={seen[p]!s}" for p in FED_DOMAIN_PATHS)
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems),
                     evidence={"federation_domain": domain, "federating": federating, "source": src.where})


# ====================================================================== FED-CA-TRUST


def pem_fingerprints(bundle: Any) -> tuple[set[str], list[str]]:
    """SHA-256 fingerprints of the certificates in a PEM bundle, and parse problems."""
    from cryptography import x509

    if not isinstance(bundle, str) or "BEGIN CERTIFICATE" not in bundle:
        return set(), []
    fps, problems = set(), []
    for block in re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", bundle, re.S):
        try:
            cert = x509.load_pem_x509_certificate(block.encode())
        except ValueError as exc:
            problems.append(f"unparsable certificate ({exc})")
            continue
        fps.add(hashlib.sha256(cert.public_bytes(_der())).hexdigest()[:16])
    return fps, problems


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def judge_federation_ca_trust(src: ValuesSource) -> Judgement:
    method = (f"{src.method}: nginx-ingress-services secrets.tlsClientCA vs wire-server federator.remoteCAContents "
              "(certificate SHA-256 sets), tls.verify_depth, brig.config.optSettings.setFederationStrategy")
    expected = ("the same non-empty CA set in tlsClientCA and remoteCAContents; verify_depth >= 1; "
                "setFederationStrategy allowAll or allowDynamic")
    missing = _missing_wire_server(src, expected, method)
    if missing:
        return missing
    ws = src.get("wire-server") or {}
    nis = src.get("nginx-ingress-services") or {}
    problems: list[str] = []
    ingress_cas, p1 = pem_fingerprints(dig(nis, "secrets.tlsClientCA"))
    federator_cas, p2 = pem_fingerprints(dig(ws, "federator.remoteCAContents"))
    problems += [f"tlsClientCA: {p}" for p in p1] + [f"remoteCAContents: {p}" for p in p2]
    if not src.has("nginx-ingress-services"):
        problems.append("no nginx-ingress-services values found")
    if not ingress_cas:
        problems.append("nginx-ingress-services secrets.tlsClientCA holds no CA certificate")
    if not federator_cas:
        problems.append("wire-server federator.remoteCAContents holds no CA certificate")
    if ingress_cas and federator_cas and ingress_cas != federator_cas:
        problems.append(f"the CA sets differ: only in tlsClientCA {_names(sorted(ingress_cas - federator_cas))}; "
                        f"only in remoteCAContents {_names(sorted(federator_cas - ingress_cas))}")
    depth = dig(nis, "tls.verify_depth", 1)
    try:
        depth_n = int(depth)
        if depth_n < 1:
            problems.append(f"tls.verify_depth is {depth_n}, need >= 1")
    except (TypeError, ValueError):
        problems.append(f"tls.verify_depth {depth!r} is not a number")
    strategy = dig(ws, "brig.config.optSettings.setFederationStrategy", "allowNone")
    if strategy not in ("allowAll", "allowDynamic"):
        problems.append(f"brig setFederationStrategy is {strategy} (allowNone disables federation)")
    observed = (f"tlsClientCA {len(ingress_cas)} CA(s), remoteCAContents {len(federator_cas)} CA(s), "
                f"verify_depth {depth}, strategy {strategy}")
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems),
                     evidence={"tlsClientCA": sorted(ingress_cas), "remoteCAContents": sorted(federator_cas),
                               "verify_depth": depth, "strategy": strategy})


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


# ====================================================================== FED-RABBITMQ


def judge_rabbitmq(src: ValuesSource, workloads: Sequence[WorkloadFacts], rmq_hosts: Sequence[str],
                   min_nodes: int = 3, hosts_measured: bool = False) -> Judgement:
    """The Kubernetes side: a rabbitmq StatefulSet's readiness, else the external [rmq-cluster] (whose
    brokers are judged on their hosts when hosts_measured; never from their names alone), and the secrets."""
    method = (f"GET /apis/apps/v1/statefulsets (release rabbitmq), inventory [rmq-cluster]; {src.method}: "
              "brig/background-worker secrets.rabbitmq")
    expected = (f"a ready rabbitmq StatefulSet or an external [rmq-cluster] of >= {min_nodes} hosts; the same "
                "non-default password in brig and background-worker")
    problems = []
    rmq = [w for w in workloads if w.release == "rabbitmq" or w.name.startswith("rabbitmq")]
    if rmq:
        for w in rmq:
            if w.ready < w.desired or w.desired == 0:
                problems.append(f"{w.ref} has {w.ready}/{w.desired} ready")
        where = "; ".join(f"{w.ref} {w.ready}/{w.desired}" for w in rmq)
    elif rmq_hosts:
        where = f"external [rmq-cluster] {', '.join(rmq_hosts)}" + (
            " (its brokers measured with rabbitmqctl on those hosts)" if hosts_measured else "")
        if len(rmq_hosts) < min_nodes and not hosts_measured:
            problems.append(f"[rmq-cluster] has {len(rmq_hosts)} host(s), need >= {min_nodes}")
    else:
        where = "no rabbitmq workload, no [rmq-cluster] hosts"
        problems.append("RabbitMQ is neither running in the cluster nor declared as [rmq-cluster]")
    ws = src.get("wire-server") or {}
    b, w = dig(ws, "brig.secrets.rabbitmq.password"), dig(ws, "background-worker.secrets.rabbitmq.password")
    if is_placeholder(b) or is_placeholder(w):
        problems.append("RabbitMQ password missing in brig or background-worker secrets")
    elif b != w:
        problems.append("brig and background-worker have different RabbitMQ passwords")
    elif str(b) == "guest" or str(dig(ws, "brig.config.rabbitmq.username", "")) == "guest":
        problems.append("RabbitMQ uses the default guest credentials")
    return Judgement(ok=not problems, observed=where, expected=expected, method=method,
                     message="; ".join(problems))


# ====================================================================== DNS-K8S-INTERNAL

EXTERNAL_SERVICES = ("cassandra-external", "elasticsearch-external", "minio-external")


@dataclass(frozen=True)
class InternalDnsFacts:
    dns_pods: tuple[PodFacts, ...]
    services: tuple[ServiceFacts, ...]
    headless: dict[str, bool]           # service ref -> clusterIP None
    endpoints: dict[str, int]           # service ref -> ready endpoint addresses (-1: not readable)


def internal_dns_facts(api: KubeApi, timeout: float = DEFAULT_TIMEOUT,
                       names: Sequence[str] = EXTERNAL_SERVICES) -> InternalDnsFacts:
    from .k8s import pod_facts, service_from_json

    pods = pod_facts(api, timeout, namespace="kube-system", label_selector="k8s-app=kube-dns")
    raw = [o for o in api.list("services", timeout=timeout) if _meta(o).get("name") in names]
    services = tuple(service_from_json(o) for o in raw)
    headless = {f"{_meta(o).get('namespace')}/{_meta(o).get('name')}":
                (o.get("spec") or {}).get("clusterIP") == "None" for o in raw}
    endpoints: dict[str, int] = {}
    for ref, is_headless in headless.items():
        if is_headless:
            endpoints[ref] = _endpoint_count(api, *ref.split("/", 1), timeout=timeout)
    return InternalDnsFacts(tuple(pods), services, headless, endpoints)


def _endpoint_count(api: KubeApi, namespace: str, name: str, timeout: float) -> int:
    from .k8s.api import KubeApiError, _loads

    core = api._api("core")
    try:
        data = api._call(f"get endpoints {namespace}/{name}",
                         lambda **k: core.read_namespaced_endpoints(name, namespace, **k), timeout)
    except KubeApiError as exc:
        if exc.status == 404:
            return 0
        return -1
    doc = _loads(data, "endpoints")
    return sum(len(s.get("addresses") or []) for s in doc.get("subsets") or [])


def judge_internal_dns(facts: InternalDnsFacts, names: Sequence[str] = EXTERNAL_SERVICES) -> Judgement:
    method = ("GET /api/v1/namespaces/kube-system/pods?labelSelector=k8s-app=kube-dns (Ready), GET /api/v1/services "
              "(the *-external names; headless ones: their Endpoints). CoreDNS answers for every Service, so a "
              "ready CoreDNS plus the Service (and, when headless, endpoint addresses) means the name resolves; "
              "an nslookup from inside a pod is not run (read-only access)")
    expected = f"CoreDNS pods Ready; Services {', '.join(names)} exist (headless: with endpoint addresses)"
    problems = []
    ready = [p for p in facts.dns_pods if p.ready]
    if not facts.dns_pods:
        problems.append("no CoreDNS pods (k8s-app=kube-dns) in kube-system")
    elif not ready:
        problems.append("no CoreDNS pod is Ready: " + _names(p.ref for p in facts.dns_pods))
    present = {s.name: s for s in facts.services}
    seen = []
    for n in names:
        s = present.get(n)
        if s is None:
            problems.append(f"Service {n} does not exist (install the {n} chart)")
            continue
        if facts.headless.get(s.ref):
            count = facts.endpoints.get(s.ref, 0)
            if count < 0:
                problems.append(f"the Endpoints of headless {s.ref} could not be read")
            elif count == 0:
                problems.append(f"headless {s.ref} has no endpoint addresses, so its name does not resolve")
            seen.append(f"{s.ref} headless, {count} address(es)")
        else:
            seen.append(f"{s.ref} {s.type}")
    observed = f"CoreDNS {len(ready)}/{len(facts.dns_pods)} ready; " + ("; ".join(seen) or "no *-external services")
    return Judgement(ok=not problems, observed=observed, expected=expected, method=method,
                     message="; ".join(problems))


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


# ====================================================================== reachability (EXT)


@dataclass(frozen=True)
class Reach:
    host: str
    port: int
    open: bool
    detail: str


def tcp_reach(host: str, port: int, timeout: float = 3.0) -> Reach:
    """One TCP connect with a timeout: open, refused, unreachable or timed out."""
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return Reach(host, port, True, f"connected in {1000 * (time.monotonic() - start):.0f} ms")
    except TimeoutError:
        return Reach(host, port, False, f"no answer within {timeout:g} s")
    except ConnectionRefusedError:
        return Reach(host, port, False, "connection refused")
    except OSError as exc:
        why = errno.errorcode.get(exc.errno or 0, "") or str(exc)
        return Reach(host, port, False, f"not reachable ({why})")


def api_endpoints(kubeconfig_server: str | None, node_addresses: Sequence[str], port: int) -> list[tuple[str, int]]:
    """The API server addresses to try: the kubeconfig's server URL, and every control-plane address."""
    from urllib.parse import urlsplit

    out: list[tuple[str, int]] = []
    if kubeconfig_server:
        u = urlsplit(kubeconfig_server)
        if u.hostname:
            out.append((u.hostname, u.port or 443))
    for a in node_addresses:
        if (a, port) not in out:
            out.append((a, port))
    return out


def judge_api_not_public(reaches: Sequence[Reach], vantage: str) -> Judgement:
    method = f"TCP connect from {vantage} to the API server address(es)"
    expected = "every connect refused or timed out (API reachable only via VPN/bastion/admin networks)"
    opened = [r for r in reaches if r.open]
    observed = "; ".join(f"{r.host}:{r.port} {r.detail}" for r in reaches) or "no API address known"
    if not reaches:
        return Judgement(False, observed, expected, method, message="no API server address to probe",
                         measurable=False)
    return Judgement(ok=not opened, observed=observed, expected=expected, method=method,
                     message="; ".join(f"the API server answers on {r.host}:{r.port} from {vantage}" for r in opened))


def is_public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return True  # a name: assume it is what the internet sees


@dataclass
class Parsed:
    """Small result holder for the datastore parsers."""

    ok: bool
    summary: str
    problems: list[str] = field(default_factory=list)


# ====================================================================== datastore VMs (over SSH)
# The commands run on the datastore host itself (targets in [cassandra], [elasticsearch], [minio],
# [postgresql]); the parsers below are pure and judge their output.

CASSANDRA_COMMAND = "nodetool status"
ES_COMMAND = "curl -sS -m 5 http://127.0.0.1:9200/_cluster/health"
MINIO_COMMAND = "curl -sS -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:9000/minio/health/cluster"
_NODETOOL_LINE = re.compile(r"^(?P<state>[UD][NLJM])\s+(?P<addr>\S+)\s")


def parse_nodetool_status(text: str, min_nodes: int = 3) -> Parsed:
    nodes = [(m["state"], m["addr"]) for m in map(_NODETOOL_LINE.match, text.splitlines()) if m]
    if not nodes:
        return Parsed(False, "no node lines in `nodetool status` output", ["cannot parse nodetool status"])
    up = [a for s, a in nodes if s == "UN"]
    other = [f"{a} {s}" for s, a in nodes if s != "UN"]
    problems = [f"node(s) not Up/Normal: {', '.join(other)}"] if other else []
    if len(up) < min_nodes:
        problems.append(f"{len(up)} node(s) Up/Normal, need >= {min_nodes}")
    return Parsed(not problems, f"{len(up)} of {len(nodes)} node(s) UN", problems)


def parse_es_health(text: str, min_nodes: int = 3) -> Parsed:
    import json

    try:
        doc = json.loads(text)
    except ValueError:
        return Parsed(False, f"not JSON: {text[:80]!r}", ["cannot parse _cluster/health"])
    status, count = doc.get("status"), int(doc.get("number_of_nodes") or 0)
    problems = []
    if status != "green":
        problems.append(f"cluster status {status}")
    if count < min_nodes:
        problems.append(f"{count} node(s), need >= {min_nodes}")
    return Parsed(not problems, f"status {status}, {count} node(s)", problems)


def parse_minio_health(code: str) -> Parsed:
    code = code.strip()
    if code == "200":
        return Parsed(True, "GET /minio/health/cluster 200 (write quorum)")
    return Parsed(False, f"GET /minio/health/cluster {code or 'no answer'}",
                  ["the MinIO cluster has no write quorum (HTTP 503)" if code == "503"
                   else f"unexpected answer {code!r}"])
