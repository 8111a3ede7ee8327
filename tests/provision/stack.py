"""Helpers for the provisioning and acceptance tests: certificates, the stand-in checkout,
a local coturn, and the provisioner CLI run as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.support.freeport import free_port  # noqa: F401 (re-exported for the tests that import it from here)

REPO = Path(__file__).resolve().parents[2]
STANDIN_WSD = REPO / "tests" / "data" / "wire-server-deploy"
DOMAIN = "wiab.test"
NAMES = ["nginz-https", "nginz-ssl", "webapp", "account", "teams", "assets", "sftd"]


@dataclass
class Certs:
    ca_bundle: Path
    cert: Path
    key: Path


def make_certs(directory: Path, domain: str = DOMAIN, names: list[str] | None = None) -> Certs:
    ca = trustme.CA()
    leaf = ca.issue_cert(*[f"{n}.{domain}" for n in (names or NAMES)])
    directory.mkdir(parents=True, exist_ok=True)
    out = Certs(directory / "ca.pem", directory / "tls.crt", directory / "tls.key")
    ca.cert_pem.write_to_path(str(out.ca_bundle))
    leaf.private_key_pem.write_to_path(str(out.key))
    with out.cert.open("wb") as fh:
        for blob in leaf.cert_chain_pems:
            fh.write(blob.bytes())
    return out


class Coturn:
    """A real coturn (STUN only, no TLS, its sqlite db in `workdir`), started and reaped by the test."""

    def __init__(self, address: str, port: int, workdir: Path, host=None, *, tls_port: int | None = None,
                 certs: Certs | None = None) -> None:
        self.address, self.port, self.workdir = address, port, workdir
        self.tls_port, self.certs = tls_port, certs  # TURN over TLS (5349 in production) when given
        self.host = host  # a tests.lab LabHost to run in (its own network namespace), else this machine
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Coturn:
        from wirecheck.probes.stun import stun_binding_udp

        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = ["turnserver", "-n", f"--listening-ip={self.address}", f"--listening-port={self.port}"]
        if self.tls_port and self.certs:
            argv += [f"--tls-listening-port={self.tls_port}", f"--cert={self.certs.cert}", f"--pkey={self.certs.key}",
                     f"--alt-listening-port={self.port}", f"--alt-tls-listening-port={self.tls_port}"]
        else:
            argv += ["--no-tls"]
        argv += ["--no-dtls", "--no-cli", "--stun-only", "--simple-log", "--log-file=stdout",
                "--realm=wiab.test", f"--db={self.workdir / 'turndb'}", f"--pidfile={self.workdir / 'pid'}"]
        log = (self.workdir / "turnserver.log").open("wb")
        popen = self.host.popen if self.host is not None else subprocess.Popen
        self.proc = popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnserver exited {self.proc.returncode}: "
                                   f"{(self.workdir / 'turnserver.log').read_text(errors='replace')[-2000:]}")
            if stun_binding_udp(self.address, self.port, timeout=0.3, attempts=1).ok:
                return self
        self.stop()
        raise RuntimeError("turnserver did not answer STUN in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Coturn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class CliRun:
    rc: int
    stdout: str
    stderr: str
    report_dir: Path

    @property
    def provision(self) -> dict:
        return json.loads((self.report_dir / "provision.json").read_text())


def run_provision(args: list[str], report_dir: Path, timeout: float = 600,
                  env_extra: dict[str, str] | None = None) -> CliRun:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(env_extra or {})
    args = list(args)
    cut = args.index("--") if "--" in args else len(args)
    args[cut:cut] = ["--report-dir", str(report_dir)]
    proc = subprocess.run([sys.executable, "-m", "provisioners", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    return CliRun(proc.returncode, proc.stdout, proc.stderr, report_dir)


STANDIN_FILES = STANDIN_WSD / "ansible" / "files" / "standin"


class LoopbackStack:
    """The stand-in's nginx (rendered from the same template the playbook uses) and websocket backend,
    run directly on a loopback address with Popen, for probe and check tests without a lab host.

    `overrides` replaces text in the rendered nginx config to make a service misbehave."""

    def __init__(self, address: str, workdir: Path, certs: Certs, *, https_port: int = 443, http_port: int = 80,
                 overrides: dict[str, str] | None = None, websocket: bool = True, host=None) -> None:
        self.address, self.workdir, self.certs = address, workdir, certs
        self.host = host  # a tests.lab LabHost (created with private_tmp=False) to run in, else this machine
        self.https_port, self.http_port = https_port, http_port
        self.overrides = overrides or {}
        self.websocket = websocket
        self.procs: list[subprocess.Popen[bytes]] = []

    def render(self) -> Path:
        import jinja2

        base = self.workdir
        for sub in ("nginx/logs", "nginx/tmp", "tls"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "tls" / "tls.crt").write_bytes(self.certs.cert.read_bytes())
        (base / "tls" / "tls.key").write_bytes(self.certs.key.read_bytes())
        self.ws_port = 8081 if self.host is not None else free_port("127.0.0.1")
        text = jinja2.Template((STANDIN_FILES / "nginx.conf.j2").read_text()).render(
            base=str(base), wire_ip=self.address, target_domain=DOMAIN, https_port=self.https_port,
            http_port=self.http_port, ws_backend=f"127.0.0.1:{self.ws_port}")
        text = text.replace("daemon on;", "daemon off;")
        for old, new in self.overrides.items():
            assert old in text, f"override target {old!r} not in the nginx config"
            text = text.replace(old, new)
        conf = base / "nginx" / "nginx.conf"
        conf.write_text(text)
        return conf

    def start(self, timeout: float = 10.0) -> LoopbackStack:
        import socket

        conf = self.render()
        popen = self.host.popen if self.host is not None else subprocess.Popen
        python = "python3" if self.host is not None else sys.executable
        try:
            if self.websocket:
                self.procs.append(popen(
                    [python, str(STANDIN_FILES / "ws_backend.py"), "127.0.0.1", str(self.ws_port)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.procs.append(popen(
                ["/usr/sbin/nginx", "-p", str(self.workdir / "nginx"), "-e", str(self.workdir / "nginx/logs/error.log"),
                 "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.monotonic() + timeout
            wanted = [(self.address, self.https_port)]
            if self.websocket and self.host is None:
                wanted.append(("127.0.0.1", self.ws_port))
            elif self.websocket:
                while f":{self.ws_port}" not in self.host.exec(f"ss -Hltn 'sport = :{self.ws_port}'").stdout:
                    if time.monotonic() > deadline:
                        raise RuntimeError("websocket backend did not start in the lab host")
                    time.sleep(0.05)
            for host, port in wanted:
                while True:
                    for p in self.procs:
                        if p.poll() is not None:
                            log = (self.workdir / "nginx/logs/error.log")
                            raise RuntimeError(f"{p.args[0]} exited {p.returncode}: "
                                               f"{log.read_text() if log.exists() else ''}")
                    try:
                        socket.create_connection((host, port), timeout=0.5).close()
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{host}:{port} did not open in time") from None
                        time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()

    def __enter__(self) -> LoopbackStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
