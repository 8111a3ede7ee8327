"""What the lab's server processes (etcd members, RabbitMQ brokers) share: one process per lab host,
stopped with SIGTERM (then SIGKILL after a grace period) and always waited for, and its log file."""

from __future__ import annotations

import signal
import subprocess


class LabDaemon:
    """Mixin for a dataclass with ``host`` (a LabHost) and ``proc`` (the server's Popen or None)."""

    LOG_NAME = "server.log"     # in the host's work directory
    STOP_GRACE = 15.0           # seconds between SIGTERM and SIGKILL

    def stop(self) -> None:
        proc = self.proc  # type: ignore[attr-defined]
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None  # type: ignore[attr-defined]

    def log(self) -> str:
        path = self.host.workdir / self.LOG_NAME  # type: ignore[attr-defined]
        return path.read_text(errors="replace") if path.exists() else ""
