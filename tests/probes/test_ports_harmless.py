"""The port probe is harmless to a running Wire: the target's own UDP keeps working throughout.

With every port of 32768-65535 held at once, the kernel has no ephemeral port left: a DNS lookup
or any unbound UDP socket fails with EAGAIN and coturn cannot allocate relays. The listener binds
the range window by window (at most two windows at a time), so during a probe of the whole range
a DNS loop against a real resolver (dnsmasq), a loop of outgoing UDP sockets and TURN allocations
against a real coturn, all on the target, see no failure.  The same loops with the old all-at-once
listener (window=0) do fail: the test can tell. Raw mode (one raw socket, as root) binds none of the
range: the same loops see no failure either.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time

import pytest

from tests.lab.core import Lab, LabHost
from tests.support.procs import stop_all
from wirecheck.probes.ports import WINDOW, Pacing, probe_ports

RANGE = range(32768, 65536)
PIPES = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}

#: runs on the target: three loops until stdin closes, then one JSON line of counts
LOOPS = r"""
import json, os, socket, struct, sys, threading, time
resolver, turn, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
stop = threading.Event()
stats = {k: {"ok": 0, "fail": 0, "errors": {}, "times": []} for k in ("dns", "udp", "turn")}

def note(kind, ok, err=None):
    s = stats[kind]
    s["ok" if ok else "fail"] += 1
    s["times"].append(round(time.time(), 3))
    if err:
        s["errors"][err] = s["errors"].get(err, 0) + 1

def ask(s, msg, addr, check, tries=6):
    # as real clients do: retransmit on silence (a loaded test machine may delay an answer)
    for i in range(tries):
        s.sendto(msg, addr)
        s.settimeout(0.5 * (i + 1))
        try:
            while True:
                data = s.recv(2048)
                if check(data):
                    return data
        except TimeoutError:
            continue
    raise TimeoutError(f"no answer after {tries} tries")

def dns():
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x03www\x04wire\x04test\x00" + b"\x00\x01\x00\x01"
    while not stop.is_set():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            ask(s, q, (resolver, 5353), lambda d: d[:2] == b"\x12\x34")
            note("dns", True)
        except OSError as exc:
            note("dns", False, type(exc).__name__ + ": " + str(exc))
        finally:
            s.close()
        time.sleep(0.002)

def udp():
    # sockets that stay open (a service starting, queries outstanding): every try needs a port nobody
    # just gave back
    held = []
    while not stop.is_set():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(b"x", ("127.0.0.1", 9))
            note("udp", True)
            held.append(s)
        except OSError as exc:
            note("udp", False, str(exc))
            s.close()
        if len(held) >= 1500:
            for old in held:
                old.close()
            held = []
        time.sleep(0.001)
    for old in held:
        old.close()

def turn_alloc():
    next_port = base
    calls = []   # (socket, ) allocations kept like calls going on; freed in batches
    def free(batch):
        life = struct.pack("!HHI", 0x000D, 4, 0)
        for s in batch:
            rtid = os.urandom(12)
            try:
                ask(s, struct.pack("!HHI", 0x0004, len(life), 0x2112A442) + rtid + life, (turn, 3478),
                    lambda d: d[8:20] == rtid)
            except OSError:
                pass
            s.close()
    while not stop.is_set():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # a client port of its own below the range, never the same twice, in this run or an earlier
        # one against the same coturn (an allocation is keyed by the client's address and port: a port
        # reused while its allocation lives gets 437 Allocation Mismatch); the relay port is what is tested
        while True:
            next_port = next_port + 1 if next_port < base + 4999 else base + 1
            try:
                s.bind(("0.0.0.0", next_port))
                break
            except OSError:
                continue
        tid = os.urandom(12)
        # STUN Allocate (0x0003) with REQUESTED-TRANSPORT UDP
        attr = struct.pack("!HHI", 0x0019, 4, 17 << 24)
        msg = struct.pack("!HHI", 0x0003, len(attr), 0x2112A442) + tid + attr
        try:
            data = ask(s, msg, (turn, 3478), lambda d: d[8:20] == tid)
            kind = struct.unpack("!H", data[:2])[0]
            if kind == 0x0103:
                note("turn", True)
                calls.append(s)
                s = None
            else:
                code = data[24:32].hex() if len(data) >= 32 else data.hex()
                note("turn", False, f"response 0x{kind:04x} {code}")
        except OSError as exc:
            note("turn", False, type(exc).__name__ + ": " + str(exc))
        finally:
            if s is not None:
                s.close()
        if len(calls) >= 400:
            free(calls)
            calls = []
        time.sleep(0.005)
    free(calls)

threads = [threading.Thread(target=f, daemon=True) for f in (dns, udp, turn_alloc)]
for t in threads:
    t.start()
print("running", flush=True)
sys.stdin.read()
stop.set()
for t in threads:
    t.join(3)
print(json.dumps(stats), flush=True)
"""


_RUNS = itertools.count()


@pytest.fixture(scope="module")
def busy(lab_module: Lab):
    """A target running a resolver (dnsmasq) and a TURN server (coturn, relays 49152-65535)."""
    h = lab_module.add_host("busy")
    procs = [
        h.popen(["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=5353", "--listen-address=127.0.0.1",
                 "--bind-interfaces", "--no-resolv", "--no-hosts", "--address=/wire.test/198.18.0.9",
                 "--user=root", "--pid-file="], **PIPES),
        h.popen(["turnserver", "--no-auth", "-L", h.address, "-E", h.address, "--listening-port", "3478",
                 "--min-port", "49152", "--max-port", "65535", "--no-cli", "--no-tls", "--no-dtls",
                 "--log-file", "stdout", "--no-stdout-log", "--simple-log", "--pidfile", "",
                 "--userdb", str(h.workdir / "turndb"), "-n"], **PIPES),
    ]
    time.sleep(1.0)
    for p in procs:
        assert p.poll() is None, p.stderr.read().decode(errors="replace")[-800:]
    try:
        yield h
    finally:
        stop_all(procs)


def _probe_with_loops(h: LabHost, window: int, pacing: Pacing | None = None,
                      raw: bool = False) -> tuple[dict, object, float, float]:
    base = 10000 + 5000 * next(_RUNS)   # client ports of this run's TURN allocations: base..base+4999
    loops = h.popen(["python3", "-c", LOOPS, "127.0.0.1", h.address, str(base)], **PIPES)
    try:
        assert loops.stdout.readline().strip() == b"running"
        time.sleep(0.3)
        t0 = time.time()
        result = probe_ports(lambda argv: h.popen(argv, **PIPES), h.address, udp=RANGE, window=window,
                             pacing=pacing, raw=raw)
        t1 = time.time()
        time.sleep(0.3)
        out, err = loops.communicate(b"", timeout=20)
    finally:
        if loops.poll() is None:
            loops.kill()
            loops.wait(timeout=10)
    return json.loads(out.decode().strip().splitlines()[-1]), result, t0, t1


def _during(stats: dict, t0: float, t1: float) -> int:
    return sum(1 for t in stats["times"] if t0 <= t <= t1)


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "windowed"])
def test_whole_range_probe_leaves_the_targets_udp_working(busy: LabHost, raw: bool) -> None:
    """Raw mode (the default as root) binds no port of the range at all; the windows hold two at most."""
    stats, result, t0, t1 = _probe_with_loops(busy, WINDOW, raw=raw)
    if raw:
        assert (result.udp_mode, result.udp_window, result.udp_held_max) == ("raw", 0, 0)
    else:
        assert result.udp_window == WINDOW and result.udp_held_max <= 2 * WINDOW
    # every port not held by the resolver, coturn or the loops themselves got through
    assert result.udp_blocked == [], result.udp_blocked_summary()
    for kind in ("dns", "udp", "turn"):
        s = stats[kind]
        assert s["fail"] == 0, f"{kind}: {s['fail']} failures during the probe: {s['errors']}"
        assert _during(s, t0, t1) >= 5, f"{kind}: the loop barely ran during the probe ({_during(s, t0, t1)} tries)"


def test_holding_the_whole_range_at_once_would_break_it(busy: LabHost) -> None:
    """The control: the same loops against the all-at-once listener see failures (EAGAIN)."""
    # the listener holds everything for a second at least (settle), as a slow path to the target would
    stats, result, _t0, _t1 = _probe_with_loops(busy, 0, Pacing(settle=1.0))
    assert result.udp_window == 0
    failures = stats["dns"]["fail"] + stats["udp"]["fail"] + stats["turn"]["fail"]
    assert failures > 0, ({k: (v["ok"], v["fail"], v["errors"], _during(v, _t0, _t1)) for k, v in stats.items()}, result.timings, len(result.udp_in_use), result.udp_blocked_summary(), result.bind_errors and list(result.bind_errors.items())[:3], _t1 - _t0)
    assert result.timings
