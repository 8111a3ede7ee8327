"""A real PostgreSQL streaming-replication cluster in lab hosts (Debian's postgresql package).

The first host is the primary (initdb), the others are standbys made with `pg_basebackup -R`, as an
operator (or repmgr's `standby clone`) makes them. Each server runs as the postgres user inside its
host, started with Popen (never daemonised) so that stop() and close() wait() for it. Data lives in
the host's own copy-on-write /var, the socket in its private /run: hosts do not see each other's files.
"""

from __future__ import annotations

import contextlib
import glob
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

DATA = "/var/lib/postgresql/wirecheck"
SOCKET_DIR = "/var/run/postgresql"
PORT = 5432
AS_POSTGRES = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]


def pg_bin() -> str:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("no PostgreSQL server installed (apt-get install postgresql)")
    return found[-1].rsplit("/", 1)[0]


CONF = f"""
listen_addresses = '*'
port = {PORT}
unix_socket_directories = '{SOCKET_DIR}'
max_connections = 20
shared_buffers = 16MB
wal_level = replica
max_wal_senders = 10
hot_standby = on
wal_retrieve_retry_interval = 500ms
wal_receiver_status_interval = 1s
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
"""
HBA = """local all all peer
local replication all peer
host all all 198.18.0.0/16 trust
host replication all 198.18.0.0/16 trust
"""


@dataclass
class PgServer:
    host: Any                       # tests.lab.core.LabHost
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.host.name

    def as_postgres(self, command: str, *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.host.exec(AS_POSTGRES + ["sh", "-c", command], check=check, timeout=timeout)

    def sql(self, query: str, *, check: bool = True) -> str:
        res = self.as_postgres(f"{pg_bin()}/psql -XAtq -h {SOCKET_DIR} -p {PORT} -d postgres -c {shlex.quote(query)}",
                               check=check, timeout=30)
        return res.stdout.strip()

    def start(self, timeout: float = 30) -> None:
        if self.running:
            return
        log = open(self.host.workdir / "postgres.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = self.host.popen(AS_POSTGRES + [f"{pg_bin()}/postgres", "-D", DATA],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres on {self.name} exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            if self.host.exec([f"{pg_bin()}/pg_isready", "-q", "-h", SOCKET_DIR, "-p", str(PORT)],
                              check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres on {self.name} not ready within {timeout}s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT), as `pg_ctl stop -m fast` does, and wait for the postmaster."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reload(self) -> None:
        self.sql("select pg_reload_conf()")

    def log(self) -> str:
        path = self.host.workdir / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""


class PgCluster:
    """servers[0] the primary, the rest streaming standbys of it."""

    def __init__(self, hosts: list[Any]) -> None:
        self.servers = [PgServer(h) for h in hosts]

    @property
    def primary(self) -> PgServer:
        return self.servers[0]

    def server(self, name: str) -> PgServer:
        return next(s for s in self.servers if s.name == name)

    def build(self) -> PgCluster:
        b = pg_bin()
        for s in self.servers:     # the socket directory lives in the host's private /run
            s.host.exec(f"install -d -o postgres -g postgres -m 2775 {SOCKET_DIR} && rm -rf {DATA}")
        p = self.primary
        p.as_postgres(f"{b}/initdb -N -D {DATA} -U postgres --auth-local=peer --auth-host=trust -E UTF8")
        p.as_postgres(f"cat >> {DATA}/postgresql.conf <<'EOF'\n{CONF}\nEOF\ncat > {DATA}/pg_hba.conf <<'EOF'\n{HBA}EOF")
        p.start()
        for s in self.servers[1:]:
            s.as_postgres(f"{b}/pg_basebackup -h {p.host.address} -p {PORT} -U postgres -D {DATA} -R -X stream -c fast")
        for s in self.servers[1:]:
            s.start()
        self.wait_streaming([s.host.address for s in self.servers[1:]])
        return self

    def streaming_from_primary(self) -> set[str]:
        out = self.primary.sql("select host(client_addr) from pg_stat_replication where state = 'streaming'")
        return set(out.split())

    def wait_streaming(self, addresses: list[str], timeout: float = 30, present: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.streaming_from_primary()
            if all((a in seen) == present for a in addresses):
                return
            time.sleep(0.1)
        raise RuntimeError(f"standbys {addresses} {'not ' if present else 'still '}streaming after {timeout}s; "
                           f"primary sees {self.streaming_from_primary()}")

    def close(self) -> None:
        for s in reversed(self.servers):
            with contextlib.suppress(Exception):
                s.stop()
