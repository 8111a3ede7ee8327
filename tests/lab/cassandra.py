"""A real Apache Cassandra ring in lab hosts, for the datastore acceptance checks.

The jars come from Maven Central (``org.apache.cassandra:cassandra-all`` with its runtime
dependencies), fetched once by tests/lab/build_cassandra.sh into a cache keyed by version. Each
node is a JVM started as root inside its lab host (``host.popen``) with a small heap, C1 only and
the serial collector (the machine has 2 cores shared by many tests), a tiny token count and the
start-up delays turned down. JMX listens on the host's 127.0.0.1:7199 without authentication, as
the ``cassandra-env.sh`` of a package install has it, and ``/usr/local/bin/nodetool`` in every host
runs ``org.apache.cassandra.tools.NodeTool`` from the same jars, so a check runs ``nodetool status``
over SSH exactly as on a site.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab.core import LabError, LabHost, _stop_popen

VERSION = os.environ.get("WIRECHECK_CASSANDRA_VERSION", "5.0.4")
BUILD_SCRIPT = Path(__file__).with_name("build_cassandra.sh")
CACHE = Path(os.environ.get("WIRECHECK_LAB_CACHE", "/var/cache/wirecheck-lab"))
ETC = "/etc/cassandra"
DATA = "/var/lib/cassandra"
LOG = "/var/log/cassandra/system.log"
JMX_PORT = 7199
CLUSTER_NAME = "wirecheck lab"

#: what conf/jvm17-server.options of a Cassandra 5.0 distribution opens up on JDK 17
JDK17_OPTIONS = [
    "-Djdk.attach.allowAttachSelf=true",
    *[f"--add-exports={m}=ALL-UNNAMED" for m in (
        "java.base/jdk.internal.misc", "java.base/jdk.internal.ref", "java.base/sun.nio.ch",
        "java.management.rmi/com.sun.jmx.remote.internal.rmi", "java.rmi/sun.rmi.registry",
        "java.rmi/sun.rmi.server", "java.sql/java.sql", "java.base/java.lang.ref", "jdk.unsupported/sun.misc")],
    *[f"--add-opens={m}=ALL-UNNAMED" for m in (
        "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
        "java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
        "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal",
        "java.base/sun.nio.ch", "java.base/java.io", "java.base/java.nio", "java.base/java.util.concurrent",
        "java.base/java.util", "java.base/java.util.concurrent.atomic", "java.base/java.lang",
        "java.base/java.math", "java.base/java.lang.reflect", "java.base/java.net")],
]
#: small, quick JVMs: the lab machine has 2 cores and other tests run beside these
SMALL_JVM = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:ActiveProcessorCount=2", "-Xss512k",
             "-XX:MaxDirectMemorySize=128m"]

LOGBACK = """<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{log}</file>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
"""
LOGBACK_TOOLS = """<configuration>
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%-5level %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDERR"/></root>
</configuration>
"""


class CassandraUnavailable(RuntimeError):
    """The jars could not be fetched (no mvn, no network to Maven Central ...)."""


def lib_dir() -> Path:
    """The cached jars, fetching them first when the cache is empty (tests/lab/build_cassandra.sh)."""
    cached = CACHE / f"cassandra-{VERSION}"
    if (cached / ".complete").exists():
        return cached / "lib"
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "WIRECHECK_CASSANDRA_VERSION": VERSION})
    if proc.returncode != 0:
        raise CassandraUnavailable(f"{BUILD_SCRIPT.name} failed (exit {proc.returncode}): "
                                   f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def build_seconds() -> int | None:
    path = CACHE / f"cassandra-{VERSION}" / "build-seconds"
    return int(path.read_text()) if path.exists() else None


def _java() -> str:
    for candidate in ("/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "/usr/lib/jvm/java-17-openjdk-arm64/bin/java"):
        if os.access(candidate, os.X_OK):
            return candidate
    return "java"


def cassandra_yaml(address: str, seeds: list[str], *, cluster_name: str = CLUSTER_NAME) -> str:
    return f"""cluster_name: '{cluster_name}'
num_tokens: 4
allocate_tokens_for_local_replication_factor: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{','.join(seeds)}"
listen_address: {address}
rpc_address: {address}
endpoint_snitch: SimpleSnitch
auto_bootstrap: false
data_file_directories: [{DATA}/data]
commitlog_directory: {DATA}/commitlog
saved_caches_directory: {DATA}/saved_caches
hints_directory: {DATA}/hints
cdc_raw_directory: {DATA}/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 4MiB
concurrent_reads: 4
concurrent_writes: 4
concurrent_counter_writes: 4
concurrent_compactors: 1
memtable_heap_space: 32MiB
memtable_offheap_space: 32MiB
key_cache_size: 0MiB
counter_cache_size: 0MiB
native_transport_max_threads: 8
start_native_transport: true
"""


def node_files(lib: Path, address: str, seeds: list[str], *, cluster_name: str = CLUSTER_NAME) -> dict[str, Any]:
    """The files= of a Cassandra lab host: its config, logging and the `nodetool` a site has."""
    nodetool = (
        "#!/bin/sh\n# nodetool of the lab: org.apache.cassandra.tools.NodeTool from the server's own jars\n"
        f"exec {_java()} -Xmx128m {' '.join(SMALL_JVM)} {' '.join(JDK17_OPTIONS)} "
        f"-Dcassandra.storagedir={DATA} -Dlogback.configurationFile={ETC}/logback-tools.xml "
        f"-cp '{lib}/*' org.apache.cassandra.tools.NodeTool -p {JMX_PORT} \"$@\"\n"
    )
    return {
        f"{ETC}/cassandra.yaml": cassandra_yaml(address, seeds, cluster_name=cluster_name),
        f"{ETC}/logback.xml": LOGBACK.format(log=LOG),
        f"{ETC}/logback-tools.xml": LOGBACK_TOOLS,
        "/usr/local/bin/nodetool": (nodetool, 0o755),
    }


@dataclass
class CassandraNode:
    host: LabHost
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    up_after_s: float | None = None

    @property
    def address(self) -> str:
        return self.host.address

    def log(self) -> str:
        res = self.host.exec(f"grep -v '^[[:space:]]*at \\|^Caused by\\|AnnotatedConnectException' {LOG} 2>/dev/null"
                             " | tail -n 40", check=False)
        return res.stdout


@dataclass
class CassandraRing:
    """Cassandra nodes in lab hosts made with node_files(); the first `seeds` nodes are seeds."""

    lib: Path
    nodes: list[CassandraNode] = field(default_factory=list)
    heap_mb: int = 320

    @classmethod
    def on(cls, hosts: list[LabHost], lib: Path, heap_mb: int = 320) -> CassandraRing:
        return cls(lib=lib, nodes=[CassandraNode(h) for h in hosts], heap_mb=heap_mb)

    def argv(self) -> list[str]:
        return [
            _java(), f"-Xms{self.heap_mb}m", f"-Xmx{self.heap_mb}m", *SMALL_JVM, *JDK17_OPTIONS,
            *[f"-javaagent:{jar}" for jar in sorted(self.lib.glob("jamm-*.jar"))[:1]],
            f"-Dcassandra.config=file://{ETC}/cassandra.yaml", f"-Dlogback.configurationFile={ETC}/logback.xml",
            f"-Dcassandra.storagedir={DATA}", f"-Dcassandra.logdir={os.path.dirname(LOG)}",
            f"-Dcassandra.jmx.local.port={JMX_PORT}", "-Dcassandra-foreground=yes",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0", "-Dcassandra.ring_delay_ms=1000",
            "-Dcassandra.schema_delay_ms=90000",   # how long a node waits for the seed's schema (1 s failed under load)
            "-Dcassandra.superuser_setup_delay_ms=60000",
            "-cp", f"{self.lib}/*", "org.apache.cassandra.service.CassandraDaemon",
        ]

    def start(self, node: CassandraNode) -> None:
        if node.proc is not None and node.proc.poll() is None:
            return
        node.host.exec(f"mkdir -p {DATA} {os.path.dirname(LOG)} && : > {LOG}")
        node.started_at = time.monotonic()
        node.up_after_s = None
        node.proc = node.host.popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)

    def start_all(self, timeout: float = 240) -> float:
        """Start every node (seeds first), wait until each sees all of them UN; returns seconds taken."""
        began = time.monotonic()
        for node in self.nodes:
            self.start(node)
        self.wait_ring([n.address for n in self.nodes], timeout=timeout)
        return time.monotonic() - began

    def stop(self, node: CassandraNode) -> None:
        _stop_popen(node.proc, timeout=20)
        node.proc = None

    def close(self) -> None:
        """Teardown: SIGKILL (a clean shutdown flushes memtables for ~10 s; nothing is kept anyway)."""
        for node in self.nodes:
            if node.proc is not None:
                if node.proc.poll() is None:
                    node.proc.kill()
                node.proc.wait()
                node.proc = None

    def status(self, node: CassandraNode, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return node.host.exec("nodetool status", check=False, timeout=timeout)

    def wait_ring(self, addresses: list[str], timeout: float = 240, among: list[CassandraNode] | None = None) -> None:
        """Until `nodetool status` on each running node (or `among`) shows every address UN."""
        deadline = time.monotonic() + timeout
        pending = [n for n in (among or self.nodes) if n.proc is not None]
        last = ""
        restarts: dict[str, int] = {}
        while pending:
            node = pending[0]
            for other in pending:
                if other.proc is not None and other.proc.poll() is not None:
                    said = other.log()
                    # a node started beside a seed whose JVM is not answering yet (a loaded machine) gives up
                    # after its shadow round ("Unable to gossip with any peers") before joining: start it again
                    if "Unable to gossip with any peers" in said and restarts.get(other.address, 0) < 3:
                        restarts[other.address] = restarts.get(other.address, 0) + 1
                        other.proc.wait()
                        other.proc = None
                        self.start(other)
                        continue
                    raise LabError(f"cassandra on {other.host.name} exited {other.proc.returncode}:\n{other.log()}")
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n.host.name} (running: {n.proc is not None and n.proc.poll() is None}):\n"
                                 f"{n.log()}" for n in self.nodes)
                raise LabError(f"cassandra ring not up within {timeout}s on {node.host.name}; last status:\n"
                               f"{last}\nlogs:\n{logs}")
            res = self.status(node)
            last = res.stdout + res.stderr
            lines = {ln.split()[1]: ln.split()[0] for ln in res.stdout.splitlines()
                     if len(ln.split()) > 1 and ln[:2] in ("UN", "DN", "UJ", "DJ", "UL", "DL", "UM", "DM")}
            if res.returncode == 0 and all(lines.get(a) == "UN" for a in addresses):
                if node.up_after_s is None:
                    node.up_after_s = time.monotonic() - node.started_at
                pending.pop(0)
                continue
            time.sleep(2)

    def wait_down(self, observer: CassandraNode, address: str, timeout: float = 90) -> None:
        """Until `observer` marks `address` DN (gossip's failure detector takes some seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            res = self.status(observer)
            if any(ln.startswith("DN") and address in ln.split() for ln in res.stdout.splitlines()):
                return
            time.sleep(2)
        raise LabError(f"{observer.host.name} did not mark {address} down within {timeout}s")
