"""Secrets from the inventory and from the files a user hands over never reach any output.

One preflight run against a lab host with every kind of secret wirecheck can be given: inventory
passwords (a login password too, flat, nested, as a number), a private key pasted into an innocuous
variable, a kubeconfig bearer token and client key, the --tls-key private key.  A stand-in Kubernetes
API server (``ReflectingApiServer``: nothing real can run a kube-apiserver here) echoes the bearer
token it receives in every error body, as a hostile or badly configured proxy would, so the token
reaches the checks' messages and must be redacted there.  Every file the run writes (compliance.json,
compliance.html, integrity.json, evidence, JUnit, Allure results) and its terminal output, with
locals shown on tracebacks, are searched for each secret.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme
import yaml

from tests.support.wc import run_suite

PASSWORD = "Login-Pa55word-4711"
BECOME = "Become-Pa55word-0815"
NESTED = "Nested-Smtp-Secret-9942"
NUMERIC = 80443123977
TOKEN = "kube-bearer-token-5ee5ca1ab1e"


class ReflectingApiServer:
    """Stand-in for a Kubernetes API server that quotes the Authorization header back in its errors."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                auth = self.headers.get("Authorization", "")
                body = json.dumps({"kind": "Status", "status": "Failure", "code": 403,
                                   "message": f"forbidden for {auth} on {self.path}"}).encode()
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ReflectingApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def all_output(run, *dirs: Path) -> dict[str, str]:
    texts = {"stdout": run.stdout, "stderr": run.stderr}
    for d in dirs:
        for path in d.rglob("*") if d.is_dir() else [d]:
            if path.is_file():
                texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    return texts


def test_no_secret_in_any_output(lab, tmp_path):
    lab.add_host("deploy_node", user="wire", sudo=True)
    ca = trustme.CA()
    cert = ca.issue_cert("wire.example.test", "*.wire.example.test")
    other_key = ca.issue_cert("elsewhere.test").private_key_pem.bytes().decode()   # does not match the cert
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key_file.write_text(other_key)
    pasted_key = ca.issue_cert("pasted.test").private_key_pem.bytes().decode()
    client_key = ca.issue_cert("client.test").private_key_pem.bytes()
    key_lines = [ln for pem in (other_key, pasted_key, client_key.decode())
                 for ln in pem.splitlines() if "-----" not in ln]

    inv = tmp_path / "host.yml"
    lab.inventory_yaml(inv, vars={"target_domain": "wire.example.test",
                                  "smtp": {"relay": "mail.example.test", "credentials": {"password": NESTED}},
                                  "tls_bundle_for_docs": pasted_key},
                       host_vars={"deploy_node": {"ansible_become_pass": BECOME, "vault_api_token": NUMERIC}})
    doc = yaml.safe_load(inv.read_text())
    doc["wiab"]["hosts"]["pw_node"] = {**doc["wiab"]["hosts"]["deploy_node"], "ansible_password": PASSWORD}
    del doc["wiab"]["hosts"]["pw_node"]["ansible_ssh_private_key_file"]
    del doc["wiab"]["hosts"]["pw_node"]["ansible_become_pass"]
    inv.write_text(yaml.safe_dump(doc))

    with ReflectingApiServer() as api:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "wire",
            "clusters": [{"name": "wire", "cluster": {"server": api.url}}],
            "contexts": [{"name": "wire", "context": {"cluster": "wire", "user": "admin"}}],
            "users": [{"name": "admin", "user": {"token": TOKEN,
                                                 "client-key-data": base64.b64encode(client_key).decode()}}],
        }))
        report, junit, allure = tmp_path / "r", tmp_path / "junit.xml", tmp_path / "allure"
        run = run_suite(["--ansible-inventory", str(inv), "--profile", "production", "-k", "not port",
                         "--kubeconfig", str(kubeconfig), "--tls-cert", str(cert_file), "--tls-key", str(key_file),
                         "--connect-timeout", "3", "--dns-timeout", "0.3", "--dns-tries", "1",
                         "--internet-url", f"http://198.18.255.254:9/{PASSWORD}/{TOKEN}",
                         "--junitxml", str(junit), f"--alluredir={allure}", "-rA", "-l", "--log-level=DEBUG"],
                        report)
    c = run.compliance
    # the run measured things, and the secrets had the chance to leak
    kube = [x for q in c["requirements"] if q["id"].startswith("K8S-") for x in q["results"]]
    assert any("<redacted>" in x["message"] for x in kube), [x["message"] for x in kube]
    assert {t["name"] for t in c["targets"]} == {"deploy_node", "pw_node"}
    assert run.status("TLS-BYO-CERT") == "fail"            # the --tls-key was read and judged
    assert any(p.name.endswith("-result.json") for p in allure.iterdir())
    assert (report / "compliance.html").exists()

    secrets = [PASSWORD, BECOME, NESTED, str(NUMERIC), TOKEN, *key_lines,
               base64.b64encode(client_key).decode()[:40]]
    for where, text in all_output(run, report, junit, allure).items():
        for secret in secrets:
            assert secret not in text, f"{secret[:12]}... appears in {where}"
    assert set(c["redacted_fields"]) >= {
        "ansible_password", "ansible_become_pass", "vault_api_token", "smtp.credentials.password",
        "tls_bundle_for_docs", "kubeconfig.users[0].user.token", "kubeconfig.users.admin.client-key-data",
        "--tls-key"}


@pytest.mark.parametrize("content", ["-----BEGIN PRIVATE KEY-----\nnot base64 at all: Zm9vYmFyYmF6cXV4cXV1eA\n"
                                     "-----END PRIVATE KEY-----\n", "garbage-private-key-material-7766\n"])
def test_unreadable_tls_key_is_not_quoted(tmp_path, content):
    ca = trustme.CA()
    cert = ca.issue_cert("wire.example.test")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.cert_chain_pems[0].bytes())
    key_file.write_text(content)
    run = run_suite(["--domain", "wire.example.test", "--tls-cert", str(cert_file), "--tls-key", str(key_file),
                     "-k", "own_certificate"], tmp_path / "r")
    byo = run.result("TLS-BYO-CERT")
    assert byo["status"] in ("fail", "error"), byo
    for where, text in all_output(run, tmp_path / "r").items():
        assert "Zm9vYmFyYmF6cXV4cXV1eA" not in text and "garbage-private-key-material" not in text, where
