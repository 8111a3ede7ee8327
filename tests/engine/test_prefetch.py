"""Measurements taken before the checks ask (wirecheck.coordination, Transport.run_batch,
Target.prefetch; the batch script itself both ways, over SSH too: tests/engine/test_batch.py): a
command answered from a batch is exactly what run() would have returned, a
check waits for a batch still running instead of running the command beside it, a result is used
once, and what the batch could not answer for runs on its own.  once(): one measurement per run,
between threads and between the processes of an xdist run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from wirecheck import coordination, pyjobs
from wirecheck.coordination import Busy, once
from wirecheck.targets import Target
from wirecheck.transport import CommandTimeout, LocalTransport

REPO = Path(__file__).resolve().parents[2]


class Item:
    """A collected check of requirement ``rid`` on ``target``, as the Prefetcher reads one."""

    def __init__(self, target, rid):
        self.callspec = type("C", (), {"params": {"target": target}})()
        self._rid = rid

    def get_closest_marker(self, name):
        return type("M", (), {"args": (self._rid,)})()


def local(name: str = "here") -> Target:
    return Target(name=name, address="127.0.0.1", roles=[], transport=LocalTransport(), local=True)


COMMANDS = [
    ("echo out; echo err >&2; exit 3", False),
    ("printf 'no newline \\303\\251 \\377'", False),           # UTF-8 and a byte that is not
    ("x='a b'; printf '%s|' $x \"$x\" \"$PATH\" \"$LC_ALL\"", False),
    ("cat; echo stdin-was-empty", False),
    ("id -u", True),
    ("exit 0", False),
]


def test_a_batch_answers_exactly_what_run_answers() -> None:
    t = LocalTransport()
    got = t.run_batch([(c, sudo, 10.0) for c, sudo in COMMANDS])
    assert set(got) == set(COMMANDS)
    for command, sudo in COMMANDS:
        live = t.run(command, timeout=10, sudo=sudo)
        batched = got[(command, sudo)]
        assert (batched.rc, batched.stdout, batched.stderr) == (live.rc, live.stdout, live.stderr), command


def test_the_commands_run_side_by_side() -> None:
    start = time.monotonic()
    got = LocalTransport().run_batch([(f"sleep 1; echo {i}", False, 10.0) for i in range(5)])
    assert [got[(f"sleep 1; echo {i}", False)].stdout for i in range(5)] == [f"{i}\n" for i in range(5)]
    assert time.monotonic() - start < 3.5


def test_a_command_past_its_time_limit_is_left_to_run_itself() -> None:
    """run() would have raised CommandTimeout: the batch keeps no result for it (the check runs it
    and meets the time limit itself); the others are kept."""
    got = LocalTransport().run_batch([("sleep 2; echo late", False, 1.0), ("echo quick", False, 5.0)])
    assert ("sleep 2; echo late", False) not in got
    assert got[("echo quick", False)].stdout == "quick\n"
    t = local()
    t.prefetch([("sleep 2; echo late", False, 1.0)])
    with pytest.raises(CommandTimeout):
        t.run("sleep 2; echo late", timeout=1)


def test_a_prefetched_result_is_used_once(tmp_path) -> None:
    log = tmp_path / "ran"
    command = f"echo x >> {log}; wc -l < {log}"
    t = local()
    assert t.prefetch([(command, False, None)]) == 1
    assert log.read_text() == "x\n"
    assert t.run(command).stdout.strip() == "1"            # the batch's result, not a second run
    assert log.read_text() == "x\n"
    assert t.run(command).stdout.strip() == "2"            # a second run() measures again
    assert t.run(command, sudo=True).stdout.strip() == "3"  # sudo or not is another command


def test_a_check_waits_for_the_batch_instead_of_running_beside_it(tmp_path) -> None:
    log = tmp_path / "ran"
    command = f"sleep 1; echo x >> {log}; wc -l < {log}"
    t = local()
    th = threading.Thread(target=t.prefetch, args=([(command, False, None)],))
    th.start()
    time.sleep(0.2)
    assert t.run(command).stdout.strip() == "1"
    th.join()
    assert log.read_text() == "x\n"


def test_stdin_is_never_answered_from_a_batch(tmp_path) -> None:
    t = local()
    t.prefetch([("cat", False, None)])
    assert t.run("cat", stdin=b"given").stdout == "given"


def test_once_between_threads() -> None:
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.3)
        return len(calls)
    key = f"test-{time.monotonic()}"
    out = []
    ths = [threading.Thread(target=lambda: out.append(once(key, slow))) for _ in range(4)]
    for th in ths:
        th.start()
    time.sleep(0.1)
    with pytest.raises(Busy):
        once(key, slow, wait=False)
    for th in ths:
        th.join()
    assert out == [1, 1, 1, 1] and calls == [1]


def test_once_does_not_keep_a_failure() -> None:
    key = f"test-fail-{time.monotonic()}"
    with pytest.raises(RuntimeError):
        once(key, lambda: (_ for _ in ()).throw(RuntimeError("down")))
    assert once(key, lambda: "measured") == "measured"


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from wirecheck.transport import share_run_dir
    from wirecheck.coordination import once
    share_run_dir(sys.argv[2])

    def measure():
        with open(sys.argv[3], "a") as fh:
            fh.write("measured\\n")
        time.sleep(0.5)
        return {"value": 42}
    print(once("shared-key", measure)["value"])
""")


def test_once_between_the_processes_of_a_run(tmp_path) -> None:
    """Two processes of one run (xdist workers) asking at once: one measures, both get its value."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    log = tmp_path / "log"
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(REPO), str(run_dir), str(log)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=30)[0].strip() for p in procs]
    assert outs == ["42", "42"]
    assert log.read_text() == "measured\n"


def test_the_prefetch_runs_only_for_selected_checks(monkeypatch) -> None:
    """A host's commands are asked for only when a check of that requirement is selected for it."""
    seen = []

    a, b = local("a"), local("b")
    monkeypatch.setattr(coordination, "COMMANDS", {"HOST-SUDO": [lambda t, spec: [("id -u", True, 15)]]})
    monkeypatch.setattr(coordination, "PREFETCHES", {})
    monkeypatch.setattr(pyjobs, "HOST_JOBS", {})
    monkeypatch.setattr(pyjobs, "FLEET_JOBS", {})
    monkeypatch.setattr(Target, "prefetch", lambda self, cmds, batch=None: seen.append((self.name, cmds)))
    site = type("S", (), {"overrides": {}})()
    pf = coordination.Prefetcher()
    pf.start(site, [Item(a, "HOST-SUDO"), Item(b, "HOST-PYTHON3")])
    pf.stop()
    assert seen == [("a", [("id -u", True, 15)])]


def test_a_hosts_probe_starts_after_its_commands(monkeypatch) -> None:
    """The port probe must not see the run's own commands on the host (a DNS lookup's UDP port would
    read as a port in use): a host's registered measurements start when its command batch has ended,
    and quiet_host() waits for that batch too."""
    seen = []

    a = local("a")
    command = "sleep 0.5; echo done"
    monkeypatch.setattr(coordination, "COMMANDS", {"HOST-SUDO": [lambda t, spec: [(command, False, 5)]]})
    monkeypatch.setattr(coordination, "PREFETCHES", {"probe": coordination.Prefetch(
        "probe", frozenset({"HOST-SUDO"}), lambda t, s, rids: seen.append(dict(t._prefetched)), 1)})
    site = type("S", (), {"overrides": {}})()
    pf = coordination.Prefetcher()
    pf.start(site, [Item(a, "HOST-SUDO")])
    time.sleep(0.1)
    monkeypatch.setattr(coordination, "prime_one", lambda t, s: None)
    coordination.quiet_host(a, site)            # waits for the batch
    assert (command, False) in a._prefetched
    pf.stop()
    assert len(seen) == 1 and seen[0][(command, False)].stdout == "done\n"


def test_light_measurements_do_not_queue_behind_heavy_ones(monkeypatch) -> None:
    """limit=1 holds the heavy measurements to one at a time; the light ones (a probe of a few ports)
    run in a pool of their own, side by side, while the heavy one runs."""
    import threading

    hosts = [local(n) for n in ("heavy1", "heavy2", "light1", "light2", "light3")]
    running: set[str] = set()
    together: list[set[str]] = []
    lock = threading.Lock()

    def measure(t, s, rids):
        with lock:
            running.add(t.name)
            together.append(set(running))
        time.sleep(0.3)
        with lock:
            running.discard(t.name)
    monkeypatch.setattr(coordination, "COMMANDS", {})
    monkeypatch.setattr(pyjobs, "HOST_JOBS", {})
    monkeypatch.setattr(pyjobs, "FLEET_JOBS", {})
    monkeypatch.setattr(coordination, "PREFETCHES", {"probe": coordination.Prefetch(
        "probe", frozenset({"HOST-SUDO"}), measure, 1, light=lambda t, s: t.name.startswith("light"))})
    site = type("S", (), {"overrides": {}})()
    pf = coordination.Prefetcher()
    pf.start(site, [Item(h, "HOST-SUDO") for h in hosts])
    from concurrent.futures import wait
    wait(list(pf.futures), timeout=30)
    pf.stop()
    assert len(together) == 5
    assert not any({"heavy1", "heavy2"} <= seen for seen in together)      # the heavy ones one at a time
    assert any({"light1", "light2", "light3"} <= seen for seen in together)  # the light ones side by side
    assert any(any(n.startswith("heavy") for n in seen) and any(n.startswith("light") for n in seen)
               for seen in together)                                      # and beside a heavy one


def test_stop_does_not_wait_for_what_never_started(monkeypatch) -> None:
    """A run stopped early (--max-run-time, Ctrl-C) drops the measurements not started yet; stop()
    waits only for the running one (a cancelled future never counts as done for wait())."""
    seen = []
    monkeypatch.setattr(coordination, "COMMANDS", {})
    monkeypatch.setattr(pyjobs, "HOST_JOBS", {})
    monkeypatch.setattr(pyjobs, "FLEET_JOBS", {})
    monkeypatch.setattr(coordination, "PREFETCHES", {"probe": coordination.Prefetch(
        "probe", frozenset({"HOST-SUDO"}), lambda t, s, rids: (seen.append(t.name), time.sleep(0.5)), 1)})
    site = type("S", (), {"overrides": {}})()
    pf = coordination.Prefetcher()
    pf.start(site, [Item(local(n), "HOST-SUDO") for n in ("a", "b", "c")])
    time.sleep(0.1)
    start = time.monotonic()
    pf.stop()
    assert time.monotonic() - start < 5
    assert seen == ["a"]


def test_n_auto_means_one_process(monkeypatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    assert coordination.auto_workers(None) == 0
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")      # xdist's own setting still wins
    assert coordination.auto_workers(None) is None


def test_a_probe_has_the_host_to_itself(tmp_path) -> None:
    """While the exclusive side (the port probe) holds a host, no command of the run starts there,
    and the probe waits for the commands running; other hosts are not held up."""
    a, b = local("a"), local("b")
    events = []
    started = threading.Event()

    def probe():
        with a.quiet.exclusive():
            started.set()
            events.append("probe in")
            time.sleep(0.5)
            events.append("probe out")
    th = threading.Thread(target=probe)
    th.start()
    started.wait(5)
    t0 = time.monotonic()
    b.run("true")                                   # another host: not held up
    assert time.monotonic() - t0 < 0.4
    a.run("true")                                   # this host: after the probe
    events.append("command")
    th.join()
    assert events == ["probe in", "probe out", "command"]


def test_the_probe_is_taken_ahead_only_for_checks_that_read_it(monkeypatch) -> None:
    """After the install TCP 80/443/3478 are connected to, not probed: their checks alone start no
    listener on the host; the UDP range check does.  In preflight every port check reads the probe."""
    from suites.preflight import test_ports as tp
    probed = []
    monkeypatch.setattr(tp, "_probe", lambda target, site, address, turn_only: probed.append((site.phase, address)))
    monkeypatch.setattr(tp, "_PROBES", {})

    class Site:
        wire_ip = None
        profile = "production"

        def __init__(self, phase):
            self.phase = phase
    t = Target(name=f"h{time.monotonic()}", address="127.0.0.1", roles=[], transport=LocalTransport())
    tp._prefetch_probe(t, Site("acceptance"), frozenset({"NET-PORT-TCP-80", "NET-PORT-TCP-443"}))
    assert probed == []
    tp._prefetch_probe(t, Site("acceptance"), frozenset({"NET-PORT-TCP-80", "NET-PORT-UDP-RANGE"}))
    assert probed == [("acceptance", "127.0.0.1")]
    t2 = Target(name=f"g{time.monotonic()}", address="127.0.0.1", roles=[], transport=LocalTransport())
    tp._prefetch_probe(t2, Site("preflight"), frozenset({"NET-PORT-TCP-80"}))
    assert probed[-1] == ("preflight", "127.0.0.1")
