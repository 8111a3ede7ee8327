"""Port reachability through firewalls and NAT, proven with a cooperative listener.

A temporary listener (``udp_listener.py``) is started on the target over the target's own
connection (``spawn``, in the engine ``target.popen``); it binds the ports at socket level, so only
packets that got through every firewall and NAT on the way are counted. The prober sends
token-tagged datagrams and TCP connections to the probed address (``wire_ip`` or the host's
address), asks the listener what arrived, re-probes what did not (loss is not a blocked port) and
returns a :class:`PortProbeResult`. The listener is gone when :func:`probe_ports` returns or raises
(quit, stdin EOF, kill, and its own hard deadline).

What did not get through is described closed vs filtered from what came back to ordinary sockets
(the kernel's ICMP reports, IP_RECVERR; a TCP RST), so neither root nor raw sockets are needed on the
probing side. The waits overlap: TCP connects (each port with staggered attempts from other source
ports inside one timeout), UDP rounds and the closed-vs-filtered probes run at the same time, and
the verdict waits for the slowest of them once.

No pytest in here; every wait has a timeout.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import select
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wirecheck.probes import udp_listener as agent
from wirecheck.probes import udp_sender as send_agent

Spawn = Callable[[list[str]], subprocess.Popen]

#: Short program passed with ``python3 -c``: reads "<source length> <magic> <code length>\n<source><code>"
#: from stdin and runs it, so the listener never touches the target's disk.  <code> is the source compiled
#: by this machine's Python and marshalled; a target whose Python has the same bytecode magic number
#: (the one CPython writes into .pyc files: same minor version) runs it without compiling (compiling
#: the agent costs a lab host 10 ms of its CPU per probe), any other compiles the source.  Bytes read
#: past the code (the config line) are handed on.
BOOTSTRAP = (
    "import os\n"
    "b=b''\n"
    "while b'\\n' not in b:\n"
    " c=os.read(0,65536)\n"
    " if not c:raise SystemExit(2)\n"
    " b+=c\n"
    "h,b=b.split(b'\\n',1)\n"
    "h=h.split()\n"
    "n=int(h[0])\n"
    "m=int(h[2]) if len(h)>2 else 0\n"
    "while len(b)<n+m:\n"
    " c=os.read(0,65536)\n"
    " if not c:raise SystemExit(2)\n"
    " b+=c\n"
    "try:\n"
    " import _frozen_importlib_external as f\n"
    " k=f.MAGIC_NUMBER.hex()\n"
    "except Exception:k=''\n"
    "if m and k==h[1].decode():\n"
    " import marshal\n"
    " c=marshal.loads(b[n:n+m])\n"
    "else:\n"
    " c=compile(b[:n],'wirecheck-agent','exec')\n"
    "exec(c,{'__name__':'wirecheck_agent','WIRECHECK_AGENT':1,'CONFIG_PREFIX':b[n+m:]})\n"
)

#: ``-I -S``: no site module, no user site, no PYTHON* variables: the agent needs the standard library
#: only, and its start costs the target a fifth less CPU (about 3 ms of 14 ms on a lab host)
AGENT_ARGV = ["python3", "-I", "-S", "-c", BOOTSTRAP]


class ProbeError(RuntimeError):
    """The probe could not measure (listener did not start, target unreachable, ...)."""


# ------------------------------------------------------------------------------------------------
# port sets


def parse_ports(spec: str | int | Iterable[int | str]) -> list[int]:
    """``"32768-65535"``, ``"22,80,443"``, ``3478`` or an iterable of those -> sorted port list."""
    if isinstance(spec, int):
        items: list[Any] = [spec]
    elif isinstance(spec, str):
        items = [x for x in spec.replace(" ", "").split(",") if x]
    else:
        items = list(spec)
    out: set[int] = set()
    for item in items:
        if isinstance(item, int):
            lo = hi = item
        else:
            text = str(item).replace(":", "-")
            lo_s, _, hi_s = text.partition("-")
            lo, hi = int(lo_s), int(hi_s or lo_s)
        if not (1 <= lo <= hi <= 65535):
            raise ValueError(f"bad port or range: {item!r}")
        out.update(range(lo, hi + 1))
    return sorted(out)


def compress_ranges(ports: Iterable[int]) -> list[tuple[int, int]]:
    return [(lo, hi) for lo, hi in agent.to_ranges(ports)]


def format_ranges(ports: Iterable[int], limit: int = 30) -> str:
    """``[40000..40999, 55555]`` -> ``"40000-40999, 55555"`` (at most ``limit`` ranges, then "…")."""
    parts = [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in compress_ranges(ports)]
    if len(parts) > limit:
        return ", ".join(parts[:limit]) + f", … ({len(parts) - limit} more ranges)"
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------------
# results


@dataclass
class TcpPortResult:
    port: int
    state: str  # open | refused | timed out | unreachable | error | not probed
    seconds: float
    detail: str  # banner, errno text or why not probed
    confirmed: bool  # the wirecheck listener received our token on this port
    existing_service: str | None = None  # owner when the port was already in use on the target
    classification: str | None = None  # closed vs filtered, from what came back (failed ports only)

    @property
    def passed(self) -> bool:
        if self.existing_service is not None:
            return self.state == "open"
        return self.state == "open" and self.confirmed


@dataclass
class PortProbeResult:
    probed_address: str
    prober: str  # "local" or the probe host
    udp_requested: list[int] = field(default_factory=list)
    udp_passed: list[int] = field(default_factory=list)
    udp_blocked: list[int] = field(default_factory=list)
    udp_in_use: dict[int, str] = field(default_factory=dict)
    bind_errors: dict[str, str] = field(default_factory=dict)
    udp_classification: dict[str, str] = field(default_factory=dict)
    udp_echo: dict[int, bool] = field(default_factory=dict)
    tcp: dict[int, TcpPortResult] = field(default_factory=dict)
    receiving_addresses: dict[str, int] = field(default_factory=dict)  # dst address -> count, per listener
    sender_addresses: dict[str, int] = field(default_factory=dict)  # source as seen by the listener
    target_addresses: list[str] = field(default_factory=list)  # the listener host's own addresses
    remapped: dict[str, int] = field(default_factory=dict)  # port probed -> port that received
    rounds: list[dict[str, Any]] = field(default_factory=list)
    recovered_by_retry: int = 0
    send_errors: dict[str, int] = field(default_factory=dict)  # sendto() failures on the prober, by error
    max_datagram: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    listener_workers: int = 0
    listener_peak_rss_kib: int = 0
    udp_mode: str = ""  # how the range was received: "raw" (one raw socket, nothing bound), "windowed", "bound"
    raw_fallback: str = ""  # why the listener could not use its raw socket (windows were used instead)
    udp_window: int = 0  # range ports bound per window (0: all at once, or raw mode)
    udp_held_max: int = 0  # most range ports the listener held at one time
    tcp_attempts: int = 0  # connection attempts per TCP port at most (from distinct source ports)
    udp_sampled_early: list[int] = field(default_factory=list)  # band samples held and probed in the first round
    sampled_retry: bool = False  # the re-probe of a large missing set was a sample, and none of it arrived

    # -- summaries for messages ------------------------------------------------------------------

    @property
    def udp_probed(self) -> list[int]:
        in_use = set(self.udp_in_use)
        return [p for p in self.udp_requested if p not in in_use and f"udp/{p}" not in self.bind_errors]

    def udp_blocked_summary(self) -> str:
        total = len(self.udp_probed)
        if not self.udp_blocked:
            return f"all {total:,} of {total:,} probed ports got through"
        return (f"{len(self.udp_blocked):,} of {total:,} ports blocked: {format_ranges(self.udp_blocked)}")

    def udp_in_use_summary(self) -> str:
        by_owner: dict[str, list[int]] = {}
        for port, owner in self.udp_in_use.items():
            by_owner.setdefault(owner, []).append(port)
        return "; ".join(f"{format_ranges(ports)} ({owner})" for owner, ports in sorted(by_owner.items()))

    def tcp_summary(self, port: int) -> str:
        r = self.tcp[port]
        text = f"TCP {port} {r.state}"
        if r.state == "open" and not r.confirmed and r.existing_service is None:
            text += " but the connection did not reach the wirecheck listener"
        if r.existing_service is not None:
            text += f" (existing service: {r.existing_service})"
        if r.detail and r.state != "open":
            text += f" ({r.detail})"
        return text

    def evidence(self) -> dict[str, Any]:
        """JSON-safe evidence: ranges instead of long lists."""
        data = asdict(self)
        for key in ("udp_requested", "udp_passed", "udp_blocked"):
            data[key] = format_ranges(data[key], limit=200)
        data["udp_in_use"] = {str(k): v for k, v in self.udp_in_use.items()}
        data["udp_echo"] = {str(k): v for k, v in self.udp_echo.items()}
        data["tcp"] = {str(k): asdict(v) for k, v in self.tcp.items()}
        data["udp_summary"] = self.udp_blocked_summary() if self.udp_requested else ""
        return data


# ------------------------------------------------------------------------------------------------
# agent process (listener on the target, or sender on a probe host)


@functools.cache
def agent_source(mode: str) -> bytes:
    """The program sent to the agent: the listener (udp_listener.py) alone, or for send mode the sender
    (udp_sender.py) ahead of it. The target compiles only what its mode runs."""
    listener = Path(agent.__file__).read_bytes()
    if mode == "send":
        return Path(send_agent.__file__).read_bytes() + b"\n\n" + listener
    return listener


@functools.cache
def agent_program(mode: str) -> bytes:
    """What AgentProcess writes ahead of the config line: BOOTSTRAP's header, the source, and the source
    compiled here (as the target would compile it: no future flags of this module, no -O)."""
    import importlib.util
    import marshal

    source = agent_source(mode)
    code = marshal.dumps(compile(source, "wirecheck-agent", "exec", dont_inherit=True, optimize=0))
    return b"%d %s %d\n" % (len(source), importlib.util.MAGIC_NUMBER.hex().encode(), len(code)) + source + code


class AgentProcess:
    """The wirecheck agent running under ``spawn``; JSON lines over its stdin/stdout."""

    def __init__(self, spawn: Spawn, config: dict[str, Any], start_timeout: float) -> None:
        self.proc = spawn(list(AGENT_ARGV))
        if self.proc.stdin is None or self.proc.stdout is None:
            self.kill()
            raise ProbeError("spawn() must return a Popen with stdin and stdout pipes")
        self._buf = b""
        program = agent_program(str(config.get("mode", "listen")))
        try:
            self.proc.stdin.write(program + json.dumps(config).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            self.kill()
            raise ProbeError(f"could not start the wirecheck agent on the target: {exc}") from exc
        self.ready = self.read(start_timeout)
        if self.ready.get("ev") != "ready":
            self.kill()
            raise ProbeError(f"wirecheck agent did not start: {self.ready.get('message', self.ready)}")

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProbeError(f"no answer from the wirecheck agent within {timeout:.1f} s")
            ready, _w, _x = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                err = self._stderr_tail()
                raise ProbeError("wirecheck agent exited" + (f": {err}" if err else ""))
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            err = self._stderr_tail()
            raise ProbeError(f"the wirecheck agent printed something else than its messages: "
                             f"{line[:120].decode('utf-8', 'replace')!r}" + (f" ({err})" if err else ""))
        return msg

    def request(self, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.send(cmd)
        return self.read(timeout)

    def send(self, cmd: dict[str, Any]) -> None:
        """Send a command without waiting for its answer (read it later with read(): answers come in
        the order of the commands)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise ProbeError(f"wirecheck agent went away: {exc}") from exc

    def _stderr_tail(self) -> str:
        err = self.proc.stderr
        if err is None:
            return ""
        try:
            if select.select([err], [], [], 0.2)[0]:
                return os.read(err.fileno(), 4096).decode(errors="replace").strip()[-400:]
        except (OSError, ValueError):
            pass
        return ""

    def close(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """Quit politely; on any trouble close stdin (EOF ends the agent), then kill. Always waits."""
        done = None
        if self.proc.poll() is None:
            try:
                done = self.request({"cmd": "quit"}, timeout)
            except (ProbeError, ValueError):
                done = None
        self.kill(grace=timeout)
        return done

    def kill(self, grace: float = 2.0) -> None:
        for stream in (self.proc.stdin,):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass


# ------------------------------------------------------------------------------------------------
# senders


#: TCP connection attempts per port, from distinct source ports, ``tcp_stagger(timeout)`` apart: a port
#: that answers none of them within the timeout (each also retransmits its SYN after 1 s) is blocked,
#: not unlucky. With 10 % loss each way, 5 SYNs all going unanswered happens once in ~4,000 ports.
TCP_ATTEMPTS = 3


def tcp_stagger(timeout: float) -> float:
    """Seconds between a port's connection attempts: all of them well inside ``timeout``."""
    return max(0.05, min(0.25, timeout / (2 * TCP_ATTEMPTS)))


class LocalSender:
    """Sends from the machine running the probe."""

    name = "local"

    def __init__(self, token: str) -> None:
        self.token = token.encode()
        self.send_errors: dict[str, int] = {}
        self.icmp: dict[int, list[int]] = {}  # port -> [ICMP type, code] that came back to a probe datagram

    def udp(self, address: str, ports: list[int], burst: int, gap: float, size: int = 0, df: bool = False) -> int:
        sent, errors = send_agent.send_udp_parallel(address, ports, self.token, burst, gap, size, df,
                                               threads=min(4, os.cpu_count() or 1),
                                               icmp=None if df else self.icmp)
        for text, count in errors.items():
            self.send_errors[text] = self.send_errors.get(text, 0) + count
        return sent

    def tcp(self, address: str, ports: list[int], timeout: float, quiet: list[int]) -> dict[int, list[Any]]:
        return send_agent.connect_tcp(address, ports, self.token, timeout, quiet, attempts=TCP_ATTEMPTS,
                                 stagger=tcp_stagger(timeout))

    def udp_echo(self, address: str, ports: list[int], timeout: float) -> dict[int, bool]:
        return send_agent.udp_echo(address, ports, self.token, timeout)

    def classify(self, address: str, ports: list[int], wait: float) -> dict[int, str]:
        return send_agent.classify_udp(address, ports, wait)

    def close(self) -> None:
        pass


class RemoteSender:
    """Sends from a probe host (``--probe-from``): the agent in send mode under that host's spawn."""

    def __init__(self, spawn: Spawn, token: str, name: str, timeout: float, deadline: float) -> None:
        self.name = name
        self.agent = AgentProcess(spawn, {"mode": "send", "token": token, "deadline": deadline}, timeout)
        self.timeout = timeout
        self.send_errors: dict[str, int] = {}
        self.icmp: dict[int, list[int]] = {}

    def udp(self, address: str, ports: list[int], burst: int, gap: float, size: int = 0, df: bool = False) -> int:
        reply = self.agent.request({"cmd": "udp", "address": address, "ports": agent.to_ranges(ports),
                                    "burst": burst, "gap": gap, "size": size, "df": df, "icmp": not df},
                                   self.timeout + len(ports) * 1e-4 + len(ports) / max(burst, 1) * gap)
        for text, count in dict(reply.get("errors") or {}).items():
            self.send_errors[text] = self.send_errors.get(text, 0) + int(count)
        for port_s, answer in dict(reply.get("icmp") or {}).items():
            self.icmp[int(port_s)] = [int(x) for x in answer]
        return int(reply.get("sent", 0))

    def tcp(self, address: str, ports: list[int], timeout: float, quiet: list[int]) -> dict[int, list[Any]]:
        reply = self.agent.request({"cmd": "tcp", "address": address, "ports": ports, "timeout": timeout,
                                    "quiet": quiet, "attempts": TCP_ATTEMPTS, "stagger": tcp_stagger(timeout)},
                                   timeout + self.timeout)
        return {int(k): v for k, v in reply["result"].items()}

    def classify(self, address: str, ports: list[int], wait: float) -> dict[int, str]:
        reply = self.agent.request({"cmd": "classify", "address": address, "ports": ports, "wait": wait},
                                   wait + 1.0 + self.timeout)
        return {int(k): str(v) for k, v in reply["result"].items()}

    def udp_echo(self, address: str, ports: list[int], timeout: float) -> dict[int, bool]:
        reply = self.agent.request({"cmd": "echo", "address": address, "ports": ports, "timeout": timeout},
                                   timeout * 3 + self.timeout)
        return {int(k): bool(v) for k, v in reply["result"].items()}

    def close(self) -> None:
        self.agent.close()


# ------------------------------------------------------------------------------------------------
# the probe


@dataclass
class Pacing:
    """How fast to send and how long to wait. Loss is not a blocked port: a port counts as blocked
    only after its first datagram and ``retry_copies`` more in a re-probe round all failed to
    arrive, and re-probing goes on while a round still recovers ports (up to ``max_rounds``)."""

    burst: int = 512  # datagrams per burst in the first round ...
    gap: float = 0.0005  # ... and the pause between bursts
    retry_burst: int = 64
    retry_gap: float = 0.002
    retry_copies: int = 2  # datagrams per missing port in each re-probe round (spaced apart)
    settle: float = 0.05  # least wait after sending before asking what arrived (grows per round; at
    # least three control-channel round trips, so a slow path to the target waits longer)
    poll: float = 0.03  # then ask again every this often until nothing new arrives
    settle_cap: float = 5.0  # never wait longer than this per round
    min_retry_rounds: int = 1
    max_rounds: int = 8
    recheck_in_use: bool = True  # bind the ports found in use once more after the first round
    classify_wait: float = 0.3  # closed vs filtered: least wait for an answer after the last probe (at
    # least three control-channel round trips); a DROP is told from a REJECT by this silence


def _count(report: dict[str, Any]) -> int:
    return sum(hi - lo + 1 for lo, hi in report.get("udp", []))


def _await_arrivals(listener: AgentProcess, floor: float, pacing: Pacing, timeout: float,
                    expect: set[int] | None = None) -> dict[str, Any]:
    """Wait ``floor``, then poll the listener until two reports in a row show the same count.

    With ``expect`` (the ports of one window), asking starts early and ends as soon as every one of
    them has arrived: a window that got through whole costs a round trip or two, not the floor."""
    if expect:
        start = time.monotonic()
        step = min(pacing.poll, floor / 4)
        while True:
            time.sleep(step)
            report = listener.request({"cmd": "report"}, timeout)
            got = set(agent.from_ranges(report.get("udp", [])))
            if expect <= got or time.monotonic() - start >= floor:
                break
        if expect <= got:
            return report
    else:
        time.sleep(floor)
        report = listener.request({"cmd": "report"}, timeout)
    stop = time.monotonic() + pacing.settle_cap
    while time.monotonic() < stop:
        time.sleep(pacing.poll)
        nxt = listener.request({"cmd": "report"}, timeout)
        if _count(nxt) == _count(report):
            return nxt
        report = nxt
    return report


#: ports re-probed first when nothing at all arrived in the first round
SAMPLE = 256

#: blocked UDP bands (and ports in use) described closed vs filtered, one sample port each: the
#: target's kernel answers about 6 ICMP errors back to back, then 1 per second
BANDS = 6

#: a run of this many silent ports in a window of the first round is taken for a band (with 10 % loss
#: such a run turns up about once in 3,000 probes of the whole range): its sample is probed at once
KEEP_RUN = 8

#: range ports the listener holds at once (at most two windows at a time: 4,096 of the 28,232 ports of
#: Linux's default ephemeral range 32768-60999, and of coturn's 49152-65535 relay range at most the
#: same). Chosen from benchmarks/bench_port_windows.py: smaller windows cost a settle wait each.
WINDOW = 2048


class _Rounds:
    """One probing round over a list of ports: all at once, or window by window (bind the next
    window while this one's datagrams are on their way, then read and release this one)."""

    def __init__(self, listener: AgentProcess, sender: Any, address: str, pacing: Pacing, floor: float,
                 timeout: float, windowed: list[int], result: PortProbeResult) -> None:
        self.listener, self.sender, self.address = listener, sender, address
        self.pacing, self.floor, self.timeout = pacing, floor, timeout
        self.windowed = bool(windowed)
        self.raw = False   # raw mode: nothing of the range is bound; the listener's raw socket sees it all
        self.window = int(result.udp_window or 0) or WINDOW
        self.received: set[int] = set()
        self.received_before: set[int] = set()
        self.in_use: set[int] = set()
        self.bind_errors: dict[str, str] = {}
        self.held_max = 0
        self.bound: set[int] = set()
        self.fixed: set[int] = set()   # echo / path-MTU ports: bound from the start, never released
        self.held: set[int] = set()    # closed-vs-filtered samples bound again (part of fixed until unhold)
        # first round: the listener keeps the lowest port of each silent run of KEEP_RUN ports or more
        # bound (up to ``keep`` of them) and on_hold(ports) starts their closed-vs-filtered probe at once
        self.keep = 0
        self.on_hold: Callable[[list[int]], None] | None = None

    def _send(self, ports: list[int], round_no: int) -> int:
        if round_no == 0:
            return self.sender.udp(self.address, ports, self.pacing.burst, self.pacing.gap)
        sent = 0
        for copy in range(self.pacing.retry_copies):
            if copy:
                time.sleep(self.floor / 2)
            sent += self.sender.udp(self.address, ports, self.pacing.retry_burst, self.pacing.retry_gap)
        return sent

    def _bind(self, ports: list[int]) -> list[int]:
        self.listener.send({"cmd": "bind", "udp": agent.to_ranges(ports)})
        return self._bound()

    def _bound(self) -> list[int]:
        reply = self.listener.read(self.timeout)
        if reply.get("ev") != "bound":
            raise ProbeError(f"the listener could not bind ports: {reply.get('message', reply)}")
        self.in_use.update(int(p) for p in reply.get("in_use_udp", []))
        self.bind_errors.update(reply.get("errors", {}))
        bound = agent.from_ranges(reply.get("bound_udp", []))
        self.bound.update(bound)
        return bound

    def _collected(self) -> None:
        reply = self.listener.read(self.timeout + self.pacing.settle_cap)
        if reply.get("ev") != "collected":
            raise ProbeError(f"the listener could not report a window: {reply.get('message', reply)}")
        self.received |= set(agent.from_ranges(reply.get("udp", [])))
        kept = [int(p) for p in reply.get("kept", [])]
        if kept:
            self.keep -= len(kept)
            self.fixed.update(kept)
            self.held.update(kept)
            if self.on_hold is not None:
                self.on_hold(kept)

    def hold(self, ports: list[int]) -> list[int]:
        """Bind ``ports`` again (windowed) and keep them bound through the next rounds until
        :meth:`unhold`: the closed-vs-filtered samples, probed beside the rounds. Returns the ones bound."""
        if not (self.windowed or self.raw):   # every port is bound from the start until the listener ends
            self.held.update(ports)
            return list(ports)
        if not ports:
            return []
        self.listener.send({"cmd": "bind", "udp": agent.to_ranges(ports)})
        reply = self.listener.read(self.timeout)
        if reply.get("ev") != "bound":
            raise ProbeError(f"the listener could not bind ports: {reply.get('message', reply)}")
        bound = agent.from_ranges(reply.get("bound_udp", []))
        self.fixed.update(bound)
        self.bound.update(bound)
        self.held.update(bound)
        self.held_max = max(self.held_max, len(self.held)) if self.raw else self.held_max
        return bound

    def unhold(self) -> None:
        if self.held and (self.windowed or self.raw):
            self.listener.request({"cmd": "release", "udp": agent.to_ranges(self.held)}, self.timeout)
            self.fixed -= self.held
            self.held = set()

    def run(self, ports: list[int], round_no: int) -> tuple[set[int], int, list[int]]:
        """Probe ``ports``; returns (everything received so far, datagrams sent, range ports bound)."""
        self.received_before = set(self.received)
        wait = self.floor * (1.5 ** round_no)
        if self.raw:
            # raw mode: send them all, then the target waits for them itself (one round trip)
            sent = self._send(ports, round_no) if ports else 0
            self.listener.send({"cmd": "collect", "expect": agent.to_ranges(ports), "release": [],
                                "wait": wait, "settle": self.pacing.poll, "cap": self.pacing.settle_cap})
            self._collected()
            return self.received, sent, ports
        if not self.windowed:
            sent = self._send(ports, round_no)
            report = _await_arrivals(self.listener, wait, self.pacing, self.timeout)
            self.received = set(agent.from_ranges(report.get("udp", [])))
            return self.received, sent, ports
        fixed = [p for p in ports if p in self.fixed]
        ranged = [p for p in ports if p not in self.fixed]
        chunks = [ranged[i:i + self.window] for i in range(0, len(ranged), self.window)] or [[]]
        n = len(chunks)
        sent = 0
        # Pipelined, never more than two windows bound: while the target waits for window i's datagrams
        # (collect, then release), window i+1 is already bound and its datagrams go out; the bind of
        # window i+2 is queued behind collect(i), so the listener frees window i before binding it.
        # The listener answers in the order of the commands: bound 0, bound 1, collected 0, bound 2,
        # collected 1, bound 3, ...
        for j in range(min(2, n)):
            if chunks[j]:
                self.listener.send({"cmd": "bind", "udp": agent.to_ranges(chunks[j])})
        bound_next = self._bound() if chunks[0] else []
        for i, chunk in enumerate(chunks):
            bound = bound_next + (fixed if i == 0 else [])
            sent += self._send(bound, round_no) if bound else 0
            # the target waits for this window itself (no round trip per look) and frees it
            collect = {"cmd": "collect", "expect": agent.to_ranges(bound), "release": agent.to_ranges(chunk),
                       "wait": wait, "settle": self.pacing.poll, "cap": self.pacing.settle_cap}
            if round_no == 0 and self.keep > 0:
                collect.update(keep=self.keep, min_run=KEEP_RUN)
            self.listener.send(collect)
            if i + 2 < n:
                self.listener.send({"cmd": "bind", "udp": agent.to_ranges(chunks[i + 2])})
            self.held_max = max(self.held_max, len(chunk) + (len(chunks[i + 1]) if i + 1 < n else 0))
            if i >= 1:
                self._collected()
            if i + 1 < n:
                bound_next = self._bound()
        self._collected()
        return self.received, sent, sorted(self.bound | self.fixed)


def probe_ports(
    spawn: Spawn,
    address: str,
    *,
    udp: Iterable[int] = (),
    tcp: Iterable[int] = (),
    echo_udp: Iterable[int] = (),
    tcp_timeout: float = 1.5,
    start_timeout: float = 20.0,
    deadline: float = 120.0,
    pacing: Pacing | None = None,
    sender_spawn: Spawn | None = None,
    sender_name: str = "probe host",
    classify: bool = False,
    mtu_port: int | None = None,
    window: int | None = None,
    raw: bool = True,
) -> PortProbeResult:
    """Prove which ``udp``/``tcp`` ports of ``address`` reach a listener started with ``spawn``.

    ``address`` is what gets probed (``wire_ip`` or the host's address); the listener runs wherever
    ``spawn`` runs (the target), so a DNAT from ``address`` to the target is exercised, and the
    listener reports the address the packets arrived on. ``sender_spawn`` runs the sending side on
    a probe host instead of this machine. A TCP port that fails is described from what came back to
    the connects (RST, the ICMP error, or silence); ``classify`` does the same for the blocked UDP
    bands (a sample port of each, held by the listener meanwhile) and the UDP ports already in use.
    ``deadline`` is the listener's hard lifetime in seconds. ``window`` is how many range ports the
    listener holds at once (two windows at most; default :data:`WINDOW`; 0 holds them all at once).
    ``raw``: a range larger than a window is received through one raw socket when the listener runs as
    root (nothing bound, see the module notes); windows are the fallback.

    The waits overlap: the TCP connects (``tcp_timeout``, paid once: the attempts from other source
    ports run inside it) and the UDP echo run beside the UDP rounds from the start, and the
    closed-vs-filtered probes of the bands that stayed silent in the first round run beside the
    re-probing rounds; the verdict waits for the slowest of them.
    """
    pacing = pacing or Pacing()
    window = WINDOW if window is None else window
    udp_ports = sorted(set(udp))
    tcp_ports = sorted(set(tcp))
    token = secrets.token_hex(8)
    t0 = time.monotonic()
    result = PortProbeResult(probed_address=address, prober="local", udp_requested=udp_ports)
    fixed = set(echo_udp) | ({mtu_port} if mtu_port else set())
    # The range is bound window by window when it is larger than a window: the target never has more
    # than two windows of its ports held (its own sockets and a TURN server's relays need free ones).
    windowed = [p for p in udp_ports if p not in fixed] if window and len(udp_ports) > window else []
    config = {"token": token, "udp": agent.to_ranges(udp_ports), "tcp": tcp_ports,
              "echo_udp": sorted(set(echo_udp)), "watch_udp": [mtu_port] if mtu_port else [],
              "deadline": deadline, "bind": "0.0.0.0", "window": window if windowed else 0,
              "raw": bool(raw and windowed)}
    sender: LocalSender | RemoteSender | None = None
    listener: AgentProcess | None = None
    threads: list[threading.Thread] = []
    try:
        if sender_spawn is not None:
            sender = RemoteSender(sender_spawn, token, sender_name, start_timeout, deadline)
            result.prober = sender_name
        else:
            sender = LocalSender(token)
        # a local sender's sockets are its own: its TCP connects, echo and closed-vs-filtered probes run
        # in threads beside the rounds; a probe host's agent takes one command at a time
        beside = isinstance(sender, LocalSender)
        listener = AgentProcess(spawn, config, start_timeout)
        ready = listener.ready
        result.timings["listener_start"] = round(time.monotonic() - t0, 4)
        result.listener_workers = int(ready.get("workers", 0))
        result.target_addresses = list(ready.get("addresses", []))
        result.udp_in_use = {int(p): "owner not known yet" for p in ready.get("in_use_udp", [])}
        result.bind_errors = dict(ready.get("errors", {}))
        tcp_in_use = {int(p): "in use" for p in ready.get("in_use_tcp", [])}
        tcp_listening = {int(p) for p in ready.get("bound_tcp", [])}
        bound_udp = agent.from_ranges(ready.get("bound_udp", []))
        raw_mode = bool(windowed and ready.get("raw"))
        result.udp_mode = "raw" if raw_mode else "windowed" if windowed else "bound"
        result.raw_fallback = str(ready.get("raw_error") or "") if windowed and raw else ""
        if raw_mode:
            # nothing of the range is bound: every free port of it is probed, the raw socket sees it arrive
            not_bindable = {int(k[4:]) for k in result.bind_errors if k.startswith("udp/") and k[4:].isdigit()}
            bound_udp = sorted(set(bound_udp) | set(windowed).difference(result.udp_in_use, not_bindable))
            windowed = []
        # the target's kernel answers a datagram to an unbound port with ICMP port unreachable, at most
        # 6 back to back and then one per icmp_ratelimit to one peer (these answers and a REJECT rule's
        # share that budget): in raw mode the first round spends it on the ports that arrived
        icmp_gap = int(ready.get("icmp_ratelimit_ms", 1000)) / 1000

        def later(name: str, work: Callable[[], None]) -> None:
            """Run ``work`` beside the rounds (local sender) or now (probe host)."""
            if beside:
                th = threading.Thread(target=work, name=f"wirecheck-{name}", daemon=True)
                th.start()
                threads.append(th)
            else:
                work()

        # TCP: every port at once, each with its attempts from other source ports, beside the UDP rounds
        tcp_raw: dict[int, list[Any]] = {}
        if tcp_ports:
            quiet = sorted(tcp_in_use)

            def run_tcp() -> None:
                assert sender is not None
                t1 = time.monotonic()
                tcp_raw.update(sender.tcp(address, tcp_ports, tcp_timeout, quiet))
                result.timings["tcp"] = round(time.monotonic() - t1, 4)

            result.tcp_attempts = TCP_ATTEMPTS
            later("tcp-probe", run_tcp)

        echo_ports = sorted(set(echo_udp) & set(bound_udp))
        if echo_ports and beside:       # the echo ports are bound from the start
            later("udp-echo", lambda: result.udp_echo.update(
                sender.udp_echo(address, echo_ports, min(tcp_timeout, 2.0))))  # type: ignore[union-attr]

        # UDP: everything once, then re-probe what is missing. The wait after sending is at least
        # pacing.settle and three control-channel round trips (a slow path to the target).
        t2 = time.monotonic()
        ctl_rtt = time.monotonic()
        listener.request({"cmd": "ping"}, start_timeout)
        ctl_rtt = time.monotonic() - ctl_rtt
        floor = max(pacing.settle, 3 * ctl_rtt)
        cls_wait = max(pacing.classify_wait, 3 * ctl_rtt)
        result.timings["control_rtt"] = round(ctl_rtt, 4)
        if windowed:
            result.udp_window = window
        rounds = _Rounds(listener, sender, address, pacing, floor, start_timeout, windowed, result)
        rounds.raw = raw_mode
        icmp_free_at = [0.0]   # raw mode: when the target will answer an ICMP error to us again
        rounds.fixed = set(bound_udp) if windowed else set()
        verdicts: dict[int, str] = {}

        def classify_now(ports: list[int], paced: bool = raw_mode) -> None:
            """Closed vs filtered for ``ports`` (UDP), into ``verdicts``."""
            assert sender is not None
            t3 = time.monotonic()
            try:
                if not paced:
                    verdicts.update(sender.classify(address, ports, cls_wait))
                # Raw mode: the target answers again once the first round's port-unreachables are paid
                # for (icmp_gap after the last); then one answer per icmp_gap. A look in which no sample
                # was answered while an answer was due means the rest are dropped; an answered one spent
                # the budget, so the others are asked again after the next gap (at most BANDS looks).
                waiting = list(ports)
                for _look in range(BANDS if paced else 0):
                    time.sleep(max(0.0, icmp_free_at[0] - time.monotonic()))
                    got = sender.classify(address, waiting, cls_wait)
                    verdicts.update(got)
                    answered = [p for p in waiting if got.get(p, send_agent.NO_REPLY) != send_agent.NO_REPLY]
                    waiting = [p for p in waiting if p not in answered]
                    if not answered or not waiting:
                        break
                    icmp_free_at[0] = time.monotonic() + icmp_gap
            except (OSError, ProbeError) as exc:
                result.udp_classification["not classified"] = f"{type(exc).__name__}: {exc}"[:200]
            result.timings["classify"] = round(result.timings.get("classify", 0.0) + time.monotonic() - t3, 4)

        if classify and beside and windowed:
            # a wide silent band found in the first round has its sample held and probed right away
            rounds.keep = BANDS

            def on_hold(kept: list[int]) -> None:
                result.udp_sampled_early.extend(kept)
                later("classify", lambda: classify_now(kept))

            rounds.on_hold = on_hold

        def start_classify(silent: list[int]) -> None:
            """After the first round: a sample of each of the longest silent bands that has none yet
            (bound again and held by the listener, so an ICMP port-unreachable for it can only come from
            a REJECT rule) and the ports in use, probed while the re-probing rounds run."""
            runs = [(lo, hi) for lo, hi in compress_ranges(silent)
                    if not any(lo <= p <= hi for p in rounds.held)]
            longest = sorted(runs, key=lambda band: (band[0] - band[1], band[0]))[:max(0, BANDS - len(rounds.held))]
            samples = rounds.hold([lo for lo, _hi in longest])
            in_use = [p for p in sorted(set(result.udp_in_use) | rounds.in_use) if p not in early][:BANDS]
            if samples or in_use:
                later("classify", lambda: classify_now(samples + in_use))

        early: list[int] = []
        if classify and raw_mode and result.udp_in_use:
            # Raw mode knows the ports in use before anything is sent: they are probed now, while the
            # target's ICMP budget is whole (the first round's port-unreachables spend it); the first
            # round waits until these probes are out (a probe host's agent has done them already)
            early = sorted(result.udp_in_use)[:BANDS]
            later("classify", lambda: classify_now(early, paced=False))
            if beside:
                time.sleep(0.06)

        missing = list(bound_udp) if not windowed else sorted(set(windowed) | set(bound_udp))
        round_no = 0
        while missing:
            rt = time.monotonic()
            copies = 1 if round_no == 0 else pacing.retry_copies
            if round_no == 1 and (windowed or raw_mode) and not rounds.received and len(missing) > 2 * window:
                # Nothing at all arrived in the first round: re-probe an even sample first (one window).
                # Random loss would give most of it back; none back means nothing gets through (a dead
                # path, or the whole range dropped), and the rest need not be waited for window by window.
                step = len(missing) / SAMPLE
                sample = sorted({missing[int(i * step)] for i in range(SAMPLE)})
                arrived, sent, _bound = rounds.run(sample, round_no)
                newly = len(arrived - rounds.received_before)
                result.rounds.append({"round": round_no, "copies": copies, "sent": sent, "arrived": newly,
                                      "sample_of": len(missing), "seconds": round(time.monotonic() - rt, 4)})
                result.recovered_by_retry += newly
                round_no += 1
                if newly == 0:
                    result.sampled_retry = True
                    break
                missing = [p for p in missing if p not in rounds.received]
                rt = time.monotonic()
            arrived, sent, bound_now = rounds.run(missing, round_no)
            if round_no == 0:
                if sent == 0 and missing:
                    raise ProbeError(f"{result.prober} could not send a single datagram to {address}: "
                                     + ", ".join(f"{t} (x{n})" for t, n in sender.send_errors.items()))
                if windowed:
                    bound_udp = bound_now
                if raw_mode:
                    icmp_free_at[0] = time.monotonic() + icmp_gap
            newly = len(arrived - rounds.received_before)
            bound_set = set(bound_udp)   # once: built per port, it cost 0.8 s per round for 32,768 ports
            still = [p for p in missing if p not in rounds.received and p in bound_set]
            result.rounds.append({"round": round_no, "copies": copies, "sent": sent, "arrived": newly,
                                  "missing": len(still), "seconds": round(time.monotonic() - rt, 4)})
            if round_no > 0:
                result.recovered_by_retry += newly
            if round_no == 0 and windowed and rounds.in_use and pacing.recheck_in_use:
                # A port found in use may have been held for a moment only (a DNS lookup's socket on the
                # target): each is bound again now, and those free are probed like the rest. In use is
                # what is still held a round later.
                again = sorted(rounds.in_use)
                rounds.in_use = set()
                rt = time.monotonic()
                arrived, sent, bound_now = rounds.run(again, 0)
                bound_udp = bound_now
                bound_set = set(bound_udp)
                freed = [p for p in again if p in bound_set]
                still = sorted(set(still) | {p for p in freed if p not in arrived})
                result.rounds.append({"round": 0, "copies": 1, "in_use_again": len(again), "freed": len(freed),
                                      "sent": sent, "arrived": len(arrived - rounds.received_before),
                                      "missing": len(still), "seconds": round(time.monotonic() - rt, 4)})
            if round_no == 0 and raw_mode and result.udp_in_use and pacing.recheck_in_use:
                # the same second look in raw mode: which of the ports in use are still held now
                again = sorted(p for p in result.udp_in_use if p in set(udp_ports))
                rt = time.monotonic()
                held_now = set(listener.request({"cmd": "inuse", "udp": agent.to_ranges(again)},
                                                start_timeout).get("in_use_udp", []))
                freed = [p for p in again if p not in held_now]
                for p in freed:
                    del result.udp_in_use[p]
                arrived, sent, _ports = rounds.run(freed, 0) if freed else (rounds.received, 0, [])
                bound_udp = sorted(set(bound_udp) | set(freed))
                still = sorted(set(still) | {p for p in freed if p not in arrived})
                result.rounds.append({"round": 0, "copies": 1, "in_use_again": len(again), "freed": len(freed),
                                      "sent": sent, "arrived": len(arrived - rounds.received_before),
                                      "missing": len(still), "seconds": round(time.monotonic() - rt, 4)})
            if round_no == 0 and classify:
                start_classify(still)
            missing = still
            round_no += 1
            if not missing or round_no >= pacing.max_rounds:
                break
            if round_no > pacing.min_retry_rounds and newly == 0:
                break
        received = rounds.received
        result.timings["udp"] = round(time.monotonic() - t2, 4)
        result.send_errors = dict(sender.send_errors)
        result.udp_passed = sorted(received.intersection(bound_udp))
        result.udp_blocked = sorted(missing)
        if raw_mode:
            # the port-unreachables the target's kernel sent for ports that arrived (nothing was bound
            # there) say nothing about a firewall: only those for ports that never arrived are kept
            for p in received:
                sender.icmp.pop(p, None)

        if windowed:    # before the classification: the ports found in use window by window are named there
            result.udp_in_use.update({int(p): "owner not known yet" for p in rounds.in_use})
            result.bind_errors.update(rounds.bind_errors)
            result.udp_held_max = rounds.held_max
        if classify:
            for th in [th for th in threads if th.name == "wirecheck-classify"]:
                th.join(cls_wait + start_timeout + (BANDS * (icmp_gap + cls_wait) if raw_mode else 0))
            # a blocked band without a sample probed yet (it looked like loss after the first round):
            # its lowest port now, held again as well
            bands = compress_ranges(result.udp_blocked)[:BANDS]
            unsampled = [lo for lo, hi in bands if not any(lo <= p <= hi for p in rounds.held)]
            if unsampled:
                more = rounds.hold(unsampled)
                if more:
                    classify_now(more)
            held = set(rounds.held)
            rounds.unhold()
            for lo, hi in bands:
                key = f"{lo}" if lo == hi else f"{lo}-{hi}"
                sample = next((p for p in sorted(held) if lo <= p <= hi and p in verdicts), None)
                verdict = verdicts.get(sample, send_agent.NO_REPLY) if sample is not None else send_agent.NO_REPLY
                if verdict == send_agent.NO_REPLY:
                    # the target's kernel may have spent its ICMP answers (about 6, then 1 per second) on
                    # the rounds' datagrams: one of those answers for this band says it is rejected
                    answered = next((p for p in sorted(sender.icmp) if lo <= p <= hi), None)
                    if answered is not None:
                        sample, verdict = answered, send_agent.icmp_verdict(*sender.icmp[answered])
                if sample is None:
                    result.udp_classification[key] = "not classified (no port of it could be held for the probe)"
                    continue
                if verdict.startswith(send_agent.CLOSED):
                    # our listener held this port at the time: the unreachable came from a REJECT rule
                    verdict = verdict.replace(send_agent.CLOSED, send_agent.FILTERED_REJECTED, 1)
                elif verdict == send_agent.NO_REPLY:
                    verdict = send_agent.FILTERED_DROPPED
                result.udp_classification[key] = f"{verdict} (probe of {sample})"
            for port in sorted(result.udp_in_use):
                if port in verdicts:
                    result.udp_classification[f"{port} (in use)"] = verdicts[port]
        if raw_mode:
            result.udp_held_max = rounds.held_max   # the closed-vs-filtered samples only

        if mtu_port is not None and mtu_port in received:   # the listener's channel: here, not beside
            result.max_datagram = probe_max_datagram(sender, listener, address, mtu_port, start_timeout,
                                                     pacing.settle)
        if echo_ports and not beside:
            result.udp_echo = sender.udp_echo(address, echo_ports, min(tcp_timeout, 2.0))

        for th in threads:
            th.join(tcp_timeout + start_timeout)
        # one report, without the UDP ports (the rounds have them): TCP tokens, addresses, remapping
        final = listener.request({"cmd": "report", "brief": True}, start_timeout)
        result.receiving_addresses = dict(final.get("dst", {}))
        result.sender_addresses = dict(final.get("src", {}))
        result.remapped = dict(final.get("remap", {}))
        if tcp_ports:
            confirmed = set(final.get("tcp", []))
            for port in tcp_ports:
                raw = tcp_raw.get(port) or ["error", 0.0, "no result"]
                state, seconds, detail = raw[0], raw[1], raw[2]
                res = result.tcp[port] = TcpPortResult(
                    port=port, state=state, seconds=float(seconds), detail=str(detail),
                    confirmed=port in confirmed, existing_service=tcp_in_use.get(port))
                verdict = str(raw[3]) if len(raw) > 3 else ""
                if not res.passed and verdict:
                    if port in tcp_listening and verdict.startswith(send_agent.CLOSED):
                        # our listener was accepting on this port: the RST/ICMP came from a REJECT rule
                        verdict = verdict.replace(send_agent.CLOSED, send_agent.FILTERED_REJECTED, 1)
                    res.classification = verdict

        done = listener.close()
        listener = None
        if done:
            result.listener_peak_rss_kib = int(done.get("peak_rss_kib", 0))
            for port_s, owner in done.get("owners_udp", {}).items():
                if int(port_s) in result.udp_in_use:   # not a port held for a moment only (see above)
                    result.udp_in_use[int(port_s)] = owner
            for port_s, owner in done.get("owners_tcp", {}).items():
                if int(port_s) in result.tcp:
                    result.tcp[int(port_s)].existing_service = owner
    finally:
        if listener is not None:
            listener.close(timeout=2.0)
        for th in threads:   # they end within their own timeouts; nothing may outlive the probe
            th.join(tcp_timeout + start_timeout)
        if sender is not None:
            sender.close()
    result.timings["total"] = round(time.monotonic() - t0, 4)
    return result


MTU_SIZES = (1500, 1492, 1480, 1460, 1450, 1420, 1400, 1380, 1280)


def probe_max_datagram(sender: LocalSender | RemoteSender, listener: AgentProcess, address: str, port: int,
                       timeout: float, settle: float) -> int:
    """Largest IPv4 packet (bytes, headers included) that got through with DF set, from MTU_SIZES."""
    best = 0
    for size in MTU_SIZES:
        payload = size - 28  # IPv4 + UDP headers
        for _attempt in range(2):
            sender.udp(address, [port], 1, 0.0, size=payload, df=True)
            time.sleep(settle / 2)
            reply = listener.request({"cmd": "report", "brief": True}, timeout)
            if int(reply.get("max_len", 0)) >= payload:
                best = size
                break
        if best:
            break
    return best


def connect_ports(address: str, ports: Iterable[int], *, timeout: float = 1.5, sender_spawn: Spawn | None = None,
                  sender_name: str = "probe host") -> dict[int, TcpPortResult]:
    """Plain TCP connects (no listener: the real services own the ports, as in acceptance).

    Reads what a service says first (a banner) for up to a second; sends nothing. A port that does
    not answer gets more attempts from other source ports inside ``timeout`` (see connect_tcp).
    """
    ports = sorted(set(ports))
    sender: LocalSender | RemoteSender
    if sender_spawn is not None:
        sender = RemoteSender(sender_spawn, secrets.token_hex(8), sender_name, 20.0, timeout + 60)
    else:
        sender = LocalSender(secrets.token_hex(8))
    try:
        raw = sender.tcp(address, ports, timeout, ports)
    finally:
        sender.close()
    out = {}
    for port in ports:
        row = raw.get(port) or ["error", 0.0, "no result"]
        out[port] = TcpPortResult(port=port, state=row[0], seconds=float(row[1]), detail=str(row[2]),
                                  confirmed=False, existing_service="the installed service")
        if row[0] != "open" and len(row) > 3 and row[3]:
            out[port].classification = str(row[3])
    return out
