"""A real RabbitMQ cluster (Debian's rabbitmq-server) across lab hosts.

Each host runs epmd and the broker as the rabbitmq user, both Popen children (never daemonised), so
stop() and close() wait() for them. The hosts share one Erlang cookie and know each other's names
(/etc/hosts of each host), and the later nodes join the first with `rabbitmqctl join_cluster`, as an
operator (or wire-server-deploy's rabbitmq playbook) does.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.labdaemon import LabDaemon

HOME = "/var/lib/rabbitmq"
AS_RABBITMQ = ["setpriv", "--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups", "env", f"HOME={HOME}"]


@dataclass
class Broker(LabDaemon):
    LOG_NAME = "rabbitmq.log"
    STOP_GRACE = 60.0

    host: Any                       # tests.lab.core.LabHost
    epmd: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def node(self) -> str:
        return f"rabbit@{self.name}"

    def ctl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.host.exec(["rabbitmqctl", *args], check=check, timeout=timeout)

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.host.workdir / "rabbitmq.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            return self.host.popen(AS_RABBITMQ + argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/")
        finally:
            log.close()

    def start(self, timeout: float = 90) -> None:
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = self._spawn(["epmd"])
        if self.running:
            return
        self.proc = self._spawn(["sh", "-c", f"cd {HOME} && exec /usr/lib/rabbitmq/bin/rabbitmq-server"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server on {self.name} exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            if self._listening(5672):
                break
            time.sleep(0.2)
        self.ctl("await_startup", "--timeout", str(int(max(5, deadline - time.monotonic()))))

    def _listening(self, port: int) -> bool:
        assert self.proc is not None
        wanted = f":{port:04X}"
        for table in ("tcp6", "tcp"):
            with contextlib.suppress(OSError):
                with open(f"/proc/{self.proc.pid}/net/{table}") as fh:
                    next(fh)
                    if any(f[1].endswith(wanted) and f[3] == "0A" for f in (ln.split() for ln in fh)):
                        return True
        return False

    def close(self) -> None:
        self.stop()
        if self.epmd is not None:
            if self.epmd.poll() is None:
                self.epmd.terminate()
            self.epmd.wait(timeout=10)
            self.epmd = None


class RabbitCluster:
    def __init__(self, hosts: list[Any]) -> None:
        self.brokers = [Broker(h) for h in hosts]

    def broker(self, name: str) -> Broker:
        return next(b for b in self.brokers if b.name == name)

    def build(self) -> RabbitCluster:
        cookie = secrets.token_hex(16).upper()
        names = "".join(f"{b.host.address}\t{b.name}\n" for b in self.brokers)
        for b in self.brokers:
            b.host.exec(f"install -d -o rabbitmq -g rabbitmq {HOME} /var/log/rabbitmq && rm -rf {HOME}/mnesia && "
                        f"printf %s {cookie} > {HOME}/.erlang.cookie && chown rabbitmq:rabbitmq {HOME}/.erlang.cookie "
                        f"&& chmod 400 {HOME}/.erlang.cookie && sed -i '/\\t{b.name}$/d' /etc/hosts && "
                        f"printf '{names}' >> /etc/hosts")
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=len(self.brokers)) as pool:
            list(pool.map(lambda b: b.start(), self.brokers))
        first = self.brokers[0]
        for b in self.brokers[1:]:
            b.ctl("stop_app")
            b.ctl("join_cluster", first.node)
            b.ctl("start_app")
        return self

    def close(self) -> None:
        for b in self.brokers:
            with contextlib.suppress(Exception):
                b.close()
