"""Calling, federation, configuration and datastore checks end to end: `pytest suites/...` in a
subprocess, as a user runs it, against the Kubernetes API emulator (FakeKubeApiServer: no real API
server can run here; Helm release Secrets carry the chart values exactly as Helm 3 stores them),
values files on disk, a real dnsmasq + TLS server for the federator, and the local machine as a
datastore host (where no datastore runs, so those checks must say they could not measure; psql is there, so
PostgreSQL's says its server does not run).
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from tests.k8s_emulator import EmulatedCluster, FakeKubeApiServer
from tests.k8s_emulator.cluster import (
    container_status,
    helm_release_secret,
    make_pod,
    make_service,
    make_workload,
)
from tests.k8s_emulator.scenarios import demo_cluster, production_cluster
from tests.support.freeport import free_port
from tests.support.wc import Run, run_suite
from wirecheck.probes import k8s_config as kc

DOMAIN = "wire.example.org"
TURN_IPS = ["203.0.113.21", "203.0.113.22"]
CLUSTER_IDS = ["FED-DOMAIN", "FED-CA-TRUST", "PROD-ACC-SMTP", "PROD-ACC-SECRETS", "PROD-ACC-EPHEMERAL-SCOPE",
               "FED-RABBITMQ", "CALL-SFT-CONFIG", "CALL-TURN-URIS", "CALL-COTURN-PLACEMENT", "DNS-K8S-INTERNAL"]
KEYWORDS = "(test_calling or test_federation) and not federator_reachable and not api_not_public"
_CA = [trustme.CA(), trustme.CA()]
PARTNER_CAS = "".join(ca.cert_pem.bytes().decode() for ca in _CA)


# ---------------------------------------------------------------------------- scenario building


def with_values(secret: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A Helm release Secret carrying `values` as its user-supplied config (as `helm install -f` stores it)."""
    doc = kc.decode_helm_release(secret["data"]["release"])
    doc["config"] = values
    helm_payload = base64.b64encode(gzip.compress(json.dumps(doc).encode()))
    out = copy.deepcopy(secret)
    out["data"]["release"] = base64.b64encode(helm_payload).decode()
    return out


def set_values(c: EmulatedCluster, release: str, values: dict[str, Any], namespace: str = "default") -> None:
    """Give the deployed revision of `release` these values (adding the release when missing)."""
    for i, s in enumerate(c.secrets):
        labels = s["metadata"].get("labels") or {}
        if labels.get("owner") == "helm" and labels.get("name") == release and labels.get("status") == "deployed":
            c.secrets[i] = with_values(s, values)
            return
    c.secrets.append(with_values(helm_release_secret(release, namespace), values))


def wire_server_values(domain: str = DOMAIN) -> dict[str, Any]:
    return {
        "tags": {"federator": True, "sftd": False},
        "brig": {
            "config": {"enableFederation": True,
                       "optSettings": {"setFederationDomain": domain, "setFederationStrategy": "allowAll",
                                       "setSftStaticUrl": f"https://sftd.{domain}:443"},
                       "smtp": {"host": "mail.example.net", "port": 587, "connType": "tls", "username": "wire"}},
            "turnStatic": {"v2": [u for ip in TURN_IPS for u in (f"turn:{ip}:3478", f"turn:{ip}:3478?transport=tcp")]},
            "secrets": {"turn": {"secret": "Zq8s2Jx0aLkR7mYpT4vWnB1cE6dH3gF9uI5oK2lM8n"},
                        "zAuth": {"publicKeys": "pubKEY1aaaaaaaaaaaaaaaaaaaa=", "privateKeys": "privKEY1bbbbbbbbbbbbbb=="},
                        "rabbitmq": {"username": "wire-server", "password": "rmq-Strong-Pass-1"},
                        "smtpPassword": "smtp-pass-123"},
        },
        "galley": {"config": {"enableFederation": True, "settings": {"federationDomain": domain}}},
        "cargohold": {"config": {"enableFederation": True, "settings": {"federationDomain": domain}}},
        "background-worker": {"config": {"enableFederation": True},
                              "secrets": {"rabbitmq": {"username": "wire-server", "password": "rmq-Strong-Pass-1"}}},
        "nginz": {"secrets": {"zAuth": {"publicKeys": "pubKEY1aaaaaaaaaaaaaaaaaaaa="}}},
        "gundeck": {"config": {"aws": {"account": "123456789012", "region": "eu-west-1", "arnEnv": "integration",
                                       "queueName": "integration-gundeck-events",
                                       "sqsEndpoint": "http://fake-aws-sqs:4568",
                                       "snsEndpoint": "http://fake-aws-sns:4575"}}},
        "federator": {"remoteCAContents": PARTNER_CAS},
    }


def good_values() -> dict[str, dict[str, Any]]:
    return {
        "wire-server": wire_server_values(),
        "nginx-ingress-services": {"federator": {"enabled": True}, "config": {"dns": {"federator": f"federator.{DOMAIN}"}},
                                   "secrets": {"tlsClientCA": PARTNER_CAS}, "tls": {"verify_depth": 1}},
        "sftd": {"host": f"sftd.{DOMAIN}", "allowOrigin": f"https://webapp.{DOMAIN}",
                 "nodeSelector": {"wire.com/role": "sftd"}, "replicaCount": 2},
        "databases-ephemeral": {"tags": {"cassandra-ephemeral": False, "elasticsearch-ephemeral": False,
                                         "redis-ephemeral": True}},
        "fake-aws": {"fake-aws-sns": {"enabled": True}},
        "demo-smtp": {"envVars": {"RELAY_NETWORKS": ":10.233.0.0/16"}},
        "coturn": {"nodeSelector": {"wire.com/role": "coturn"}, "coturnTurnExternalIP": TURN_IPS[0], "replicaCount": 1},
    }


def good_production() -> EmulatedCluster:
    c = production_cluster()
    for rel, vals in good_values().items():
        set_values(c, rel, vals)
    # coturn on kubenode3 (SFT runs on kubenode1/2), RabbitMQ in the cluster, the *-external Services
    node3 = c.node("kubenode3")
    node3["metadata"]["labels"]["wire.com/role"] = "coturn"
    node3["metadata"]["annotations"]["wire.com/external-ip"] = TURN_IPS[0]
    c.pods.append(make_pod("coturn-0", "default", node="kubenode3", host_network=True, labels={"app": "coturn"},
                           owner=("StatefulSet", "coturn"), containers=[container_status("coturn")]))
    c.statefulsets.append(make_workload("StatefulSet", "rabbitmq", "default", release="rabbitmq"))
    for name in kc.EXTERNAL_SERVICES:
        c.services.append(make_service(name, "default", ports=[{"name": "tcp", "port": 9042, "protocol": "TCP"}]))
    return c


def broken_production() -> EmulatedCluster:
    c = good_production()
    vals = good_values()
    ws = vals["wire-server"]
    ws["cargohold"]["config"]["settings"]["federationDomain"] = "example.com"       # FED-DOMAIN
    ws["federator"]["remoteCAContents"] = _CA[0].cert_pem.bytes().decode()          # FED-CA-TRUST: sets differ
    del ws["brig"]["config"]["smtp"]["host"]                                         # PROD-ACC-SMTP
    vals["demo-smtp"]["envVars"]["RELAY_NETWORKS"] = ":172.17.0.0/16"
    ws["nginz"]["secrets"]["zAuth"]["publicKeys"] = "otherKEYcccccccccccccccc="      # PROD-ACC-SECRETS
    ws["gundeck"]["config"]["aws"]["account"] = "1234"
    ws["background-worker"]["secrets"]["rabbitmq"]["password"] = "different"         # FED-RABBITMQ
    ws["brig"]["turnStatic"]["v2"] = [f"turn:{TURN_IPS[0]}:3478", "stun://bad"]      # CALL-TURN-URIS
    vals["sftd"]["host"] = "sftd.example.com"                                        # CALL-SFT-CONFIG
    vals["databases-ephemeral"]["tags"]["cassandra-ephemeral"] = True                # PROD-ACC-EPHEMERAL-SCOPE
    for rel, v in vals.items():
        set_values(c, rel, v)
    c.pod("coturn-0")["spec"]["nodeName"] = "kubenode1"                              # CALL-COTURN-PLACEMENT
    c.services = [s for s in c.services if s["metadata"]["name"] != "minio-external"]  # DNS-K8S-INTERNAL
    return c


def _emulate(cluster: EmulatedCluster, tmp: Path) -> Iterator[Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    server = FakeKubeApiServer(cluster).start()
    try:
        yield server.write_kubeconfig(tmp / "kubeconfig")
    finally:
        server.stop()


def acceptance(kubeconfig: Path | None, tmp: Path, *extra: str, keywords: str = KEYWORDS,
               profile: str = "production") -> Run:
    args = ["-k", keywords, "--profile", profile, "--domain", DOMAIN,
            *(["--kubeconfig", str(kubeconfig)] if kubeconfig else []), *extra]
    return run_suite(args, tmp / "report", suite="suites/acceptance")


PROD_ARGS = ("--federation", *[a for ip in TURN_IPS for a in ("--turn-ip", ip)])


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Run:
    tmp = tmp_path_factory.mktemp("cfg-good")
    for kubeconfig in _emulate(good_production(), tmp):
        return acceptance(kubeconfig, tmp, *PROD_ARGS)
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory) -> Run:
    tmp = tmp_path_factory.mktemp("cfg-bad")
    for kubeconfig in _emulate(broken_production(), tmp):
        return acceptance(kubeconfig, tmp, *PROD_ARGS)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------- cluster: good and bad


def test_compliant_cluster_passes_every_configuration_check(good_run):
    statuses = {rid: good_run.status(rid) for rid in CLUSTER_IDS}
    assert statuses == dict.fromkeys(CLUSTER_IDS, "pass"), (statuses, good_run.stdout[-4000:])
    fed = good_run.result("FED-DOMAIN")
    assert fed["evidence"]["federation_domain"] == DOMAIN
    assert "GET /api/v1/secrets" in fed["method"]
    turn = good_run.result("CALL-TURN-URIS")
    assert f"turn:{TURN_IPS[1]}:3478?transport=tcp" in turn["observed"]


def test_no_secret_value_reaches_the_report(good_run):
    text = (good_run.report_dir / "compliance.json").read_text()
    for secret in ("Zq8s2Jx0aLkR7mYpT4vWnB1cE6dH3gF9uI5oK2lM8n", "privKEY1bbbbbbbbbbbbbb==", "rmq-Strong-Pass-1",
                   "smtp-pass-123"):
        assert secret not in text


@pytest.mark.parametrize(("rid", "parts"), [
    ("FED-DOMAIN", ["federationDomain differs", "cargohold.config.settings.federationDomain=example.com"]),
    ("FED-CA-TRUST", ["the CA sets differ", "only in tlsClientCA"]),
    ("PROD-ACC-SMTP", ["brig.config.smtp.host is not set",
                       "RELAY_NETWORKS ':172.17.0.0/16' does not cover the pod network(s) 10.233.64.0/24"]),
    ("PROD-ACC-SECRETS", ["does not contain brig's zAuth public key", "account '1234' is not 12 digits",
                          "different RabbitMQ passwords"]),
    ("PROD-ACC-EPHEMERAL-SCOPE", ["databases-ephemeral runs cassandra-ephemeral"]),
    ("FED-RABBITMQ", ["different RabbitMQ passwords"]),
    ("CALL-SFT-CONFIG", [f"sftd host is sftd.example.com, expected sftd.{DOMAIN}"]),
    ("CALL-TURN-URIS", ["malformed TURN URI 'stun://bad'", f"turn:{TURN_IPS[1]}:3478 is missing"]),
    ("CALL-COTURN-PLACEMENT", ["coturn and SFT share node(s) kubenode1", "coturn pod(s) on unlabelled nodes"]),
    ("DNS-K8S-INTERNAL", ["Service minio-external does not exist"]),
])
def test_broken_cluster_fails_with_the_fact(bad_run, rid, parts):
    r = bad_run.result(rid)
    expected_status = "warn" if rid == "PROD-ACC-EPHEMERAL-SCOPE" else "fail"   # SHOULD in the catalog
    assert r["status"] == expected_status, r
    for part in parts:
        assert part in r["message"], (part, r["message"])


def test_features_not_used_are_not_applicable(tmp_path):
    c = production_cluster()       # no coturn, no federation, no test charts' values, sftd release present
    vals = wire_server_values()
    vals["tags"] = {"federator": False}
    for key in ("brig", "galley", "cargohold", "background-worker"):
        vals[key]["config"].pop("enableFederation", None)
    set_values(c, "wire-server", vals)
    c.secrets = [s for s in c.secrets if (s["metadata"].get("labels") or {}).get("name")
                 not in ("sftd", "databases-ephemeral", "fake-aws")]
    for kubeconfig in _emulate(c, tmp_path):
        run = acceptance(kubeconfig, tmp_path, keywords="(test_calling or test_federation) and not api_not_public")
    for rid, why in (("FED-CA-TRUST", "federation is not enabled"), ("FED-RABBITMQ", "federation is not enabled"),
                     ("CALL-COTURN-PLACEMENT", "coturn is not deployed"), ("CALL-SFT-CONFIG", "SFT is not deployed"),
                     ("PROD-ACC-EPHEMERAL-SCOPE", "no test charts installed"),
                     ("FED-REACHABLE", "federation is not enabled")):
        r = run.result(rid)
        assert r["status"] == "not_applicable", r
        assert why in r["message"], r["message"]
    assert run.status("FED-DOMAIN") == "pass"   # mandatory also without federation


def test_without_kubeconfig_cluster_checks_are_not_evaluated(tmp_path):
    run = acceptance(None, tmp_path, "--federation", keywords="test_calling or test_federation")
    for rid in CLUSTER_IDS + ["DEMO-ACC-CALLING-VALUES"]:
        if rid == "DEMO-ACC-CALLING-VALUES":
            continue
        r = run.result(rid)
        assert r["status"] == "not_evaluated", r
        assert "--kubeconfig" in r["message"], r["message"]
    assert run.status("K8S-API-NOT-PUBLIC") == "not_evaluated"


# ---------------------------------------------------------------------------- demo


def _demo_values(wire_ip: str) -> dict[str, dict[str, Any]]:
    sel = {"kubernetes.io/hostname": "k8s-wire"}
    ws = wire_server_values()
    ws["tags"] = {"federator": False, "sftd": False}
    ws["brig"]["turnStatic"]["v2"] = [f"turn:{wire_ip}:3478", f"turn:{wire_ip}:3478?transport=tcp"]
    return {
        "wire-server": ws,
        "ingress-nginx-controller": {"controller": {"nodeSelector": sel}},
        "sftd": {"host": f"sftd.{DOMAIN}", "allowOrigin": f"https://webapp.{DOMAIN}", "nodeSelector": sel},
        "coturn": {"nodeSelector": sel, "coturnTurnListenIP": "192.168.99.2", "coturnTurnRelayIP": "192.168.99.2",
                   "coturnTurnExternalIP": wire_ip},
        "nginx-ingress-services": {"tls": {"enabled": True, "useCertManager": True},
                                   "certManager": {"certmasterEmail": f"certmaster@{DOMAIN}"}},
    }


def test_demo_calling_values_pass_and_fail(tmp_path):
    wire_ip = "198.51.100.7"
    keywords = "demo_calling_values or sft_config or turn_uris"
    good = demo_cluster()
    good.node("k8s-wire")["metadata"]["annotations"]["wire.com/external-ip"] = wire_ip
    for rel, v in _demo_values(wire_ip).items():
        set_values(good, rel, v)
    bad = good.copy()
    bad.node("k8s-wire")["metadata"]["annotations"]["wire.com/external-ip"] = "198.51.100.99"
    vals = _demo_values(wire_ip)
    vals["coturn"]["coturnTurnRelayIP"] = "10.0.0.9"
    vals["sftd"].pop("nodeSelector")
    for rel, v in vals.items():
        set_values(bad, rel, v)
    runs = {}
    for name, cluster in (("good", good), ("bad", bad)):
        for kubeconfig in _emulate(cluster, tmp_path / name):
            runs[name] = acceptance(kubeconfig, tmp_path / name, "--wire-ip", wire_ip, keywords=keywords,
                                    profile="demo")
    for rid in ("DEMO-ACC-CALLING-VALUES", "CALL-SFT-CONFIG", "CALL-TURN-URIS"):
        assert runs["good"].status(rid) == "pass", runs["good"].result(rid)
    assert "only 1 distinct TURN host" in runs["good"].result("CALL-TURN-URIS")["evidence"]["note"]
    r = runs["bad"].result("DEMO-ACC-CALLING-VALUES")
    assert r["status"] == "fail"
    for part in ("wire.com/external-ip is 198.51.100.99, expected 198.51.100.7",
                 "coturn coturnTurnRelayIP is 10.0.0.9, expected 192.168.99.2",
                 "sftd nodeSelector is unset"):
        assert part in r["message"], r["message"]


# ---------------------------------------------------------------------------- files (preflight, and acceptance without a cluster)


def write_values_dir(root: Path, values: dict[str, dict[str, Any]]) -> Path:
    """values/<chart>/values.yaml, with the secrets split into secrets.yaml as wire-server-deploy keeps them."""
    for chart, v in values.items():
        d = root / chart
        d.mkdir(parents=True, exist_ok=True)
        v = copy.deepcopy(v)
        secrets: dict[str, Any] = {}
        for svc in ("brig", "background-worker", "nginz"):
            if isinstance(v.get(svc), dict) and "secrets" in v[svc]:
                secrets[svc] = {"secrets": v[svc].pop("secrets")}
        (d / "values.yaml").write_text(yaml.safe_dump(v))
        if secrets:
            (d / "secrets.yaml").write_text(yaml.safe_dump(secrets))
    return root


def test_preflight_from_values_files(tmp_path):
    good = write_values_dir(tmp_path / "good" / "values", good_values())
    vals = good_values()
    vals["wire-server"]["galley"]["config"]["settings"]["federationDomain"] = "other.example.org"
    vals["wire-server"]["brig"]["secrets"]["turn"]["secret"] = "<changeme>"
    vals["nginx-ingress-services"]["tls"]["verify_depth"] = 0
    vals["wire-server"]["brig"]["config"]["smtp"]["port"] = "smtp"
    bad = write_values_dir(tmp_path / "bad", vals)
    keywords = "test_configuration"
    g = run_suite(["-k", keywords, "--profile", "production", "--domain", DOMAIN, "--federation",
                   "--values-dir", str(good)], tmp_path / "rg")
    for rid in ("FED-DOMAIN", "FED-CA-TRUST", "PROD-ACC-SMTP", "PROD-ACC-SECRETS"):
        assert g.status(rid) == "pass", g.result(rid)
    assert kc.FILES_METHOD in g.result("PROD-ACC-SECRETS")["method"]
    # the wire-server-deploy checkout's values/ is the default
    w = run_suite(["-k", keywords, "--profile", "production", "--domain", DOMAIN,
                   "--wire-server-deploy", str(tmp_path / "good")], tmp_path / "rw")
    assert w.status("FED-DOMAIN") == "pass" and w.status("FED-CA-TRUST") == "pass"
    b = run_suite(["-k", keywords, "--profile", "production", "--domain", DOMAIN, "--federation",
                   "--values-dir", str(bad)], tmp_path / "rb")
    expectations = {"FED-DOMAIN": "federationDomain differs", "FED-CA-TRUST": "tls.verify_depth is 0",
                    "PROD-ACC-SMTP": "port 'smtp' is not a port number",
                    "PROD-ACC-SECRETS": "brig.secrets.turn.secret is not set"}
    for rid, part in expectations.items():
        r = b.result(rid)
        assert r["status"] == "fail" and part in r["message"], r
    n = run_suite(["-k", keywords, "--profile", "production"], tmp_path / "rn")
    r = n.result("PROD-ACC-SECRETS")
    assert r["status"] == "not_evaluated" and "--values-dir" in r["message"]
    assert n.status("FED-CA-TRUST") == "not_applicable"   # no federation, no values saying so


# ---------------------------------------------------------------------------- EXT probes


def _closed_port() -> int:
    return free_port("127.0.0.1")


def test_api_not_public(tmp_path):
    """Reachable emulator API from here: warn (SHOULD). A kubeconfig naming a closed port: pass."""
    keywords = "api_not_public"
    for kubeconfig in _emulate(production_cluster(), tmp_path / "open"):
        open_run = acceptance(kubeconfig, tmp_path / "open", keywords=keywords)
    r = open_run.result("K8S-API-NOT-PUBLIC")
    assert r["status"] == "warn", r
    assert "the API server answers on 127.0.0.1:" in r["message"]
    closed = tmp_path / "closed-kubeconfig"
    cfg = json.loads(kubeconfig.read_text())
    cfg["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{_closed_port()}"
    closed.write_text(json.dumps(cfg))
    closed_run = acceptance(closed, tmp_path / "closed", keywords=keywords)
    r = closed_run.result("K8S-API-NOT-PUBLIC")
    assert r["status"] == "pass", r
    assert "connection refused" in r["observed"]


def _loopback() -> str:
    return f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"


def test_federator_reachable_over_real_dns_and_tls(tmp_path):
    from tests.support.dnsmasq import DnsmasqServer, Zone
    from tests.support.tlsserver import TlsServer

    ca = trustme.CA()
    cert = ca.issue_cert(f"federator.{DOMAIN}")
    crt, key = tmp_path / "fed.crt", tmp_path / "fed.key"
    crt.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    fed_ip = _loopback()
    zone = Zone(DOMAIN, a={"federator": [fed_ip]})
    keywords = "federator_reachable"
    with DnsmasqServer(zone, address=_loopback()) as dns:
        with TlsServer(crt, key, address=fed_ip) as tls_server:
            up = acceptance(None, tmp_path / "up", "--federation", "--nameserver", dns.nameserver,
                            "--tls-port", str(tls_server.port), keywords=keywords)
        down = acceptance(None, tmp_path / "down", "--federation", "--nameserver", dns.nameserver,
                          "--tls-port", str(tls_server.port), keywords=keywords)
    r = up.result("FED-REACHABLE")
    assert r["status"] == "pass", r
    assert "TLS" in r["observed"] and fed_ip in r["observed"]
    r = down.result("FED-REACHABLE")
    assert r["status"] == "fail", r
    assert f"{fed_ip}:" in r["message"] and "TCP connect" in r["message"]


# ---------------------------------------------------------------------------- datastore VMs


def test_datastores_not_applicable_without_hosts_and_error_where_nothing_runs(tmp_path):
    """No [cassandra]/... hosts: not_applicable. The local machine as such a host: no nodetool, nothing on
    :9200/:9000, so those checks must report that they could not measure (never pass); psql is installed
    but no server runs, which is a measured failure."""
    none = run_suite(["-k", "test_datastores", "--profile", "production"], tmp_path / "none",
                     suite="suites/acceptance")
    for rid in ("PROD-ACC-CASSANDRA", "PROD-ACC-ELASTICSEARCH", "PROD-ACC-MINIO", "PROD-ACC-POSTGRESQL"):
        r = none.result(rid)
        assert r["status"] == "not_applicable" and "no target has role" in r["message"], r
    local = run_suite(["-k", "test_datastores", "--profile", "production", "--hosts", "local://",
                       "--roles", "cassandra,elasticsearch,minio,postgresql"], tmp_path / "local",
                      suite="suites/acceptance")
    msgs = {rid: local.result(rid) for rid in ("PROD-ACC-CASSANDRA", "PROD-ACC-ELASTICSEARCH", "PROD-ACC-MINIO")}
    assert {rid: r["status"] for rid, r in msgs.items()} == dict.fromkeys(msgs, "error"), msgs
    # psql is installed here (the test packages) but no server runs: a measured failure naming the member
    pg = local.result("PROD-ACC-POSTGRESQL")
    assert pg["status"] == "fail" and "localhost: PostgreSQL is not running (psql: error:" in pg["message"], pg
    assert "nodetool is not available" in msgs["PROD-ACC-CASSANDRA"]["message"]
    assert "curl -sS -m 5 http://127.0.0.1:9200/_cluster/health" in msgs["PROD-ACC-ELASTICSEARCH"]["message"]


NODETOOL_OK = """Datacenter: datacenter1
=======================
Status=Up/Down
|/ State=Normal/Leaving/Joining/Moving
--  Address     Load       Tokens  Owns (effective)  Host ID                               Rack
UN  172.16.0.21  1.2 MiB    256     100.0%            4c1a-...                              rack1
UN  172.16.0.22  1.1 MiB    256     100.0%            8d2b-...                              rack1
UN  172.16.0.23  1.3 MiB    256     100.0%            1e3c-...                              rack1
"""


def test_datastore_output_parsers_both_ways():
    assert kc.parse_nodetool_status(NODETOOL_OK).ok
    down = kc.parse_nodetool_status(NODETOOL_OK.replace("UN  172.16.0.23", "DN  172.16.0.23"))
    assert not down.ok and "172.16.0.23 DN" in down.problems[0]
    assert kc.parse_es_health('{"status": "green", "number_of_nodes": 3}').ok
    yellow = kc.parse_es_health('{"status": "yellow", "number_of_nodes": 2}')
    assert not yellow.ok and yellow.problems == ["cluster status yellow", "2 node(s), need >= 3"]
    assert kc.parse_minio_health("200").ok and not kc.parse_minio_health("503").ok


def test_headless_external_service_without_endpoints_does_not_resolve():
    from wirecheck.probes.k8s import pod_from_json, service_from_json

    dns = pod_from_json(make_pod("coredns-1", "kube-system", labels={"k8s-app": "kube-dns"},
                                 containers=[container_status("coredns")]))
    svcs = tuple(service_from_json(make_service(n, "default")) for n in kc.EXTERNAL_SERVICES)
    headless = {s.ref: s.name == "cassandra-external" for s in svcs}
    empty = kc.InternalDnsFacts((dns,), svcs, headless, {"default/cassandra-external": 0})
    j = kc.judge_internal_dns(empty)
    assert not j.ok and "headless default/cassandra-external has no endpoint addresses" in j.message
    filled = kc.InternalDnsFacts((dns,), svcs, headless, {"default/cassandra-external": 3})
    assert kc.judge_internal_dns(filled).ok
