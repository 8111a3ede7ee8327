"""Run coordination: xdist scheduling by host and the controller's shared run directory, host
priming (one snapshot per host), the run deadline, and closing the targets."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .catalog import default_catalog
from .inventory import Inventory
from .outcome import ERROR, Outcome
from .site import Site
from .transport import shared_dir

SITE_KEY = pytest.StashKey[Site]()
RESULTS_KEY = pytest.StashKey[list]()
STARTED_KEY = pytest.StashKey[str]()
SHARED_KEY = pytest.StashKey[str]()
GROUP_OF: dict[str, str] = {}     # nodeid -> xdist group (this process's collection)


def xdist_controller(config: pytest.Config) -> bool:
    return (not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))
            and getattr(config.option, "dist", "no") != "no")


class RunTimeLimit(Outcome):  # noqa: N818
    status = ERROR


def run_deadline(config: pytest.Config) -> float | None:
    """Absolute deadline (epoch seconds), the same on the controller and every xdist worker."""
    limit = config.option.max_run_time
    if not limit:
        return None
    winput = getattr(config, "workerinput", None)
    if winput and "wirecheck_deadline" in winput:
        return float(winput["wirecheck_deadline"])
    if not hasattr(config, "_wc_deadline"):
        config._wc_deadline = time.time() + limit  # type: ignore[attr-defined]
    return config._wc_deadline  # type: ignore[attr-defined]


def inventory_from_controller(config: pytest.Config) -> Inventory | None:
    """In an xdist worker: the inventory as the controller parsed it (Ansible's parser is not loaded
    again in every worker: that costs a third of a second of CPU each)."""
    text = (getattr(config, "workerinput", None) or {}).get("wirecheck_inventory")
    if not text:
        return None
    data = json.loads(text)
    return Inventory(hosts=data["hosts"], groups=data["groups"], all_vars=data["all_vars"],
                     connection=data.get("connection", {}), path=data.get("path", ""))


GROUPS_FILE = "xdist-groups.json"


def auto_workers(config: pytest.Config) -> int | None:
    """What ``-n auto`` means for wirecheck: no worker processes, the checks run in this process.

    The work of a run is waiting on hosts, and what waits per host already runs side by side in
    threads: the hosts' snapshots, each host's check commands in one round trip, the port probes
    (start_prefetch).  An xdist worker adds its own interpreter start, collection
    (about 2.5 s of CPU each on the benchmark machine) and parallelises only the checks' own Python
    (benchmarks/bench_fleet_vs_ansible.py).  ``-n N`` still starts N workers; the environment
    variable PYTEST_XDIST_AUTO_NUM_WORKERS (xdist's own) still wins."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return 0


def make_scheduler(config: pytest.Config, log):  # xdist hook (controller side)
    """--dist loadgroup (what wirecheck sets for -n) by wirecheck's own groups: see HostScheduling."""
    if config.getvalue("dist") != "loadgroup" or not config.stash.get(SHARED_KEY, None):
        return None
    from .xdist_scheduling import HostScheduling
    return HostScheduling(config, log, Path(config.stash[SHARED_KEY]) / GROUPS_FILE)


def write_groups(session: pytest.Session) -> None:
    """In an xdist worker, before it reports its collection: every item's group, for the controller's
    scheduler (the workers collect alike; the first to get here writes the file)."""
    if not hasattr(session.config, "workerinput") or not session.config.stash.get(SHARED_KEY, None):
        return
    path = Path(session.config.stash[SHARED_KEY]) / GROUPS_FILE
    if path.exists():
        return
    groups = {item.nodeid: GROUP_OF.get(item.nodeid) for item in session.items}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(groups))
    os.replace(tmp, path)


def configure_node(node) -> None:  # xdist hook (controller side)
    deadline = run_deadline(node.config)
    if deadline:
        node.workerinput["wirecheck_deadline"] = deadline
    inv = getattr(node.config, "_wc_inventory", None)
    if inv is not None:
        data = {"hosts": inv.hosts, "groups": inv.groups, "all_vars": inv.all_vars, "connection": inv.connection,
                "path": inv.path}
        try:
            text = json.dumps(data)
            if json.loads(text) == data:     # else a value JSON cannot carry as it is (a date, an int key)
                node.workerinput["wirecheck_inventory"] = text
        except (TypeError, ValueError):
            pass     # the worker reads the inventory itself
    shared = node.config.stash.get(SHARED_KEY, None)
    if shared:
        node.workerinput["wirecheck_run_dir"] = shared


def check_deadline(item: pytest.Item) -> None:
    deadline = run_deadline(item.config)
    if deadline and time.time() >= deadline:
        item.session.shouldstop = "wirecheck: --max-run-time reached"
        raise RunTimeLimit(f"not run: the run reached --max-run-time ({item.config.option.max_run_time:g} s)")


class Alarm:
    """Interrupts a running check when the run's deadline passes (main thread only)."""

    def __init__(self, item: pytest.Item):
        self.deadline = run_deadline(item.config)
        self.limit = item.config.option.max_run_time
        self.item = item

    def __enter__(self):
        import signal
        import threading
        if not self.deadline or threading.current_thread() is not threading.main_thread():
            self.deadline = None
            return self

        def expired(signum, frame):
            self.item.session.shouldstop = "wirecheck: --max-run-time reached"
            raise RunTimeLimit(f"stopped: the run reached --max-run-time ({self.limit:g} s)")
        self.previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, max(0.01, self.deadline - time.time()))
        return self

    def __exit__(self, *exc):
        if self.deadline:
            import signal
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return False


def unconfigure(config: pytest.Config) -> None:
    PREFETCHER.stop()
    PRIMER.stop()
    site = config.stash.get(SITE_KEY, None)
    if site:
        each_target(site.targets, _close)


def _close(target: Any) -> None:
    try:
        target.close()
    except Exception:  # noqa: BLE001 - closing is best effort
        pass


def each_target(targets, fn) -> None:
    """fn(target) for every target: in threads when there are several (each host has its own
    connection, so they do not wait on one another)."""
    if len(targets) == 1:
        fn(targets[0])
        return
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(targets)))) as pool:
        list(pool.map(fn, targets))


def group_items(config: pytest.Config, items: list[pytest.Item]) -> None:
    """xdist groups: a host's checks go together to one worker (its facts are measured once there, and
    its port probe runs once: two listeners on one host would fight over its ports); each fleet or
    site check (no target of its own) is a group of one, so the slow ones (probes from every host to
    every other) can run side by side on different workers.  The groups reach the controller's
    scheduler through the run directory (see pytest_collection_finish)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        target = callspec.params.get("target") if callspec else None
        GROUP_OF[item.nodeid] = f"host:{target.name}" if target is not None else f"check:{item.nodeid}"
    # the checks that read a measurement started in the background (the port probes) go last, so that
    # the others run while it is taken instead of after it
    waits = frozenset().union(*(pf.requirements for pf in PREFETCHES.values()))
    if waits:
        from .catalog import requirement_of

        def late(item: pytest.Item) -> bool:
            req = requirement_of(item)
            return req is not None and req.id in waits
        items.sort(key=late)


CONTROL: dict[str, Any] = {}


def prime_paths(site: Site, target: Any) -> tuple[str, ...]:
    """The file systems a host snapshot includes: every path a disk or sizing check of the profile asks
    about (DEMO-SYS-DISK's paths; the data paths of the production sizing rows), with --param applied."""
    paths = {"/"}
    user = target.user or getattr(target.transport, "user", None)
    for req in default_catalog():
        if site.profile not in req.profiles:
            continue
        params = {**req.params, **site.overrides.get(req.id, {})}
        if req.id == "DEMO-SYS-DISK":
            paths.update(str(p).format(user=user) for p in params.get("paths", ["/"]) if user or "{user}" not in str(p))
        if params.get("data_path"):
            paths.add(str(params["data_path"]))
    return tuple(sorted(paths))


_PRIME_LOCKS: dict[int, threading.Lock] = {}
_PRIME_LOCKS_LOCK = threading.Lock()


def prime_one(target: Any, site: Site) -> None:
    """The host's snapshot, taken once; a caller that comes while another thread takes it waits for it."""
    with _PRIME_LOCKS_LOCK:
        lock = _PRIME_LOCKS.setdefault(id(target), threading.Lock())
    with lock:
        if getattr(target, "_wc_primed", False):
            return
        target._wc_primed = True
        paths = prime_paths(site, target)
        try:
            target.facts.host_snapshot(paths)
        except Exception:  # noqa: BLE001 - priming only; the checks themselves report what fails
            pass


def prime_all(site: Site) -> None:
    each_target(site.targets, lambda t: prime_one(t, site))


class Primer:
    """Priming of every target in the background: in an xdist controller while the workers start, in
    a serial run while the first checks run."""

    def __init__(self) -> None:
        self.pool: Any = None
        self.futures: list[Any] = []

    def start(self, site: Site, targets: Iterable[Any] | None = None) -> None:
        from concurrent.futures import ThreadPoolExecutor
        chosen = list(site.targets if targets is None else targets)
        if self.pool is not None or not chosen:
            return
        self.pool = ThreadPoolExecutor(max_workers=min(16, len(chosen)), thread_name_prefix="wirecheck-prime")
        self.futures = [self.pool.submit(prime_one, t, site) for t in chosen]

    def stop(self) -> None:
        """Before the targets are closed: drop what has not started (a run stopped early), wait for what
        has (each command has its own time limit; 30 s is a backstop)."""
        if self.pool is None:
            return
        from concurrent.futures import wait
        self.pool.shutdown(wait=False, cancel_futures=True)
        wait([f for f in self.futures if not f.cancelled()], timeout=30)   # a cancelled one never "completes"
        self.pool, self.futures = None, []


PRIMER = Primer()
_PRIMED_ALL = [False]


# --- measurements of a host that several checks read, taken before the first of them asks ---------

@dataclass(frozen=True)
class Prefetch:
    """``measure(target, site, the target's selected requirements among them)`` of every target with a
    selected check of ``requirements``, started in
    the background as soon as the run knows its checks, at most ``limit`` at once per process.
    ``measure`` must itself make sure it runs once per run and target (see ``once``): a check that
    asks while it runs waits for it, and under pytest-xdist every worker starts the same list."""

    name: str
    requirements: frozenset[str]
    measure: Callable[[Any, Site, frozenset[str]], Any]
    limit: int = 4
    #: what to start at once in a thread when any host is measured (e.g. a slow import)
    warm: Callable[[Site], Any] | None = None
    #: sort key of the hosts: the longest measurements first
    priority: Callable[[Any, Site], Any] | None = None
    #: a host whose measurement is light (e.g. a probe of a few ports) is measured in a pool of its own,
    #: ``light_limit`` at once, instead of queueing behind the heavy ones
    light: Callable[[Any, Site], bool] | None = None
    light_limit: int = 8


PREFETCHES: dict[str, Prefetch] = {}


def register_prefetch(name: str, requirements: Iterable[str], measure: Callable[[Any, Site, frozenset[str]], Any],
                      limit: int = 4, warm: Callable[[Site], Any] | None = None,
                      priority: Callable[[Any, Site], Any] | None = None,
                      light: Callable[[Any, Site], bool] | None = None, light_limit: int = 8) -> None:
    """Called by a suite module at import (e.g. the port checks: their one probe per host)."""
    PREFETCHES[name] = Prefetch(name, frozenset(requirements), measure, limit, warm, priority, light, light_limit)


#: requirement ID -> functions (target, spec) -> [(command, sudo, timeout)]: the commands its check
#: runs on a target, registered by the suite module beside the check (which builds its command
#: with the same function)
COMMANDS: dict[str, list[Callable[[Any, Any], list[tuple[str, bool, float | None]]]]] = {}


def register_commands(requirement_id: str, commands: Callable[[Any, Any], list[tuple[str, bool, float | None]]]) -> None:
    """The commands a check will run on each of its targets: run before it asks, in one round trip per
    host with the other checks' (Target.prefetch)."""
    COMMANDS.setdefault(requirement_id, []).append(commands)


#: requirement ID -> functions (site, spec) -> {target name: [(command, sudo, timeout)]}: the commands
#: a fleet check (no target of its own) runs on some of the hosts, asked in those hosts' batches
FLEET_COMMANDS: dict[str, list[Callable[[Any, Any], dict[str, list[tuple[str, bool, float | None]]]]]] = {}


def register_fleet_commands(requirement_id: str,
                            commands: Callable[[Any, Any], dict[str, list[tuple[str, bool, float | None]]]]) -> None:
    """As register_commands, for a fleet check: its commands on each host it asks."""
    FLEET_COMMANDS.setdefault(requirement_id, []).append(commands)


def host_commands(target: Any, site: Site, requirements: Iterable[str],
                  fleet: Iterable[str] = ()) -> list[tuple[str, bool, float | None]]:
    """The commands the host's selected checks will run on it: their registered commands, and the
    Python of its host and fleet checks in one interpreter (pyjobs)."""
    from . import pyjobs
    from .catalog import Spec, default_catalog
    catalog = default_catalog()
    wanted: list[tuple[str, bool, float | None]] = []
    jobs: list[pyjobs.PyJob] = []

    def spec_of(rid: str) -> Spec:
        return Spec(catalog[rid], site.overrides.get(rid, {}))
    for rid in sorted(set(requirements)):
        for fn in COMMANDS.get(rid, []):
            try:
                wanted += fn(target, spec_of(rid))
            except Exception:  # noqa: BLE001 - a command that cannot be built: the check says why
                continue
        for job in pyjobs.HOST_JOBS.get(rid, []):
            try:
                jobs += [j for j in [job(target, spec_of(rid))] if j is not None]
            except Exception:  # noqa: BLE001 - as above
                continue
    for rid in sorted(set(fleet)):
        for fleet_commands in FLEET_COMMANDS.get(rid, []):
            try:
                wanted += fleet_commands(site, spec_of(rid)).get(target.name, [])
            except Exception:  # noqa: BLE001 - a fleet check with nothing to ask (not applicable...)
                continue
        for fleet_jobs in pyjobs.FLEET_JOBS.get(rid, []):
            try:
                jobs += [j for j in [fleet_jobs(site, spec_of(rid)).get(target.name)] if j is not None]
            except Exception:  # noqa: BLE001 - a fleet check with nothing to ask (not applicable...)
                continue
    return wanted + pyjobs.plan(target, jobs)


def prefetch_commands(target: Any, site: Site, requirements: Iterable[str], fleet: Iterable[str] = ()) -> None:
    wanted = host_commands(target, site, requirements, fleet)
    if not wanted:
        return
    key = f"commands:{target.name}:" + hashlib.sha256(repr(wanted).encode()).hexdigest()[:16]
    target.prefetch(wanted, batch=lambda todo: once(key, lambda: target.transport.run_batch(todo)))


#: command batches a process runs at once (each a few commands side by side on its host)
COMMAND_BATCHES = 6


class Prefetcher:
    def __init__(self) -> None:
        self.pools: list[Any] = []
        self.futures: list[Any] = []

    def start(self, site: Site, items: list[pytest.Item]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from . import pyjobs
        from .catalog import requirement_of
        pyjobs.reset()
        selected: dict[str, tuple[Any, set[str]]] = {}
        fleet: set[str] = set()
        for item in items:
            callspec = getattr(item, "callspec", None)
            target = callspec.params.get("target") if callspec else None
            req = requirement_of(item)
            if target is not None and req is not None:
                selected.setdefault(target.name, (target, set()))[1].add(req.id)
            elif req is not None and (req.id in pyjobs.FLEET_JOBS or req.id in FLEET_COMMANDS):
                fleet.add(req.id)
        if fleet:       # a fleet check's Python on each host goes with the host's own commands
            for target in site.targets:
                selected.setdefault(target.name, (target, set()))
        # the hosts whose measurements take longest (the whole UDP range to probe) get their commands
        # first, and a few at a time, so that those measurements can start early
        order = list(selected.values())
        for pf in PREFETCHES.values():
            if pf.priority is not None:
                order.sort(key=lambda tr, pf=pf: _priority(pf, tr[0], site) if tr[1] & pf.requirements else float("inf"))
        commands = ThreadPoolExecutor(max_workers=max(1, min(COMMAND_BATCHES, len(selected))),
                                      thread_name_prefix="wirecheck-commands")
        self.pools.append(commands)
        batches: dict[str, Any] = {}
        asked = set(COMMANDS) | set(pyjobs.HOST_JOBS)
        for target, rids in order:
            if rids & asked or fleet:
                batches[target.name] = commands.submit(_quietly, prefetch_commands, target, site, rids & asked, fleet)
        self.futures += list(batches.values())
        for pf in PREFETCHES.values():
            mine = [target for target, rids in selected.values() if rids & pf.requirements]
            if not mine:
                continue
            if pf.warm is not None:
                warm = threading.Thread(target=_quietly, args=(pf.warm, site), name=f"wirecheck-{pf.name}-warm", daemon=True)
                warm.start()
            if pf.priority is not None:
                mine.sort(key=lambda t, pf=pf: _priority(pf, t, site))
            light = [t for t in mine if _is_light(pf, t, site)]
            for hosts, limit in (([t for t in mine if t not in light], pf.limit), (light, pf.light_limit)):
                if not hosts:
                    continue
                pool = ThreadPoolExecutor(max_workers=max(1, min(limit, len(hosts))), thread_name_prefix=f"wirecheck-{pf.name}")
                self.pools.append(pool)
                # a host's measurement after its commands: a probe must not see our own commands' sockets on
                # the host (a DNS lookup's UDP port would read as a port in use)
                self.futures += [pool.submit(_after, batches.get(t.name), pf.measure, t, site,
                                             frozenset(selected[t.name][1] & pf.requirements)) for t in hosts]

    def stop(self) -> None:
        """Drop what has not started; wait for what has (each measurement has its own time limits;
        60 s is a backstop), so that nothing measures a host after the run closed its connection."""
        from concurrent.futures import wait
        for pool in self.pools:
            pool.shutdown(wait=False, cancel_futures=True)
        wait([f for f in self.futures if not f.cancelled()], timeout=60)   # a cancelled one never "completes"
        self.pools, self.futures = [], []


def quiet_host(target: Any, site: Site) -> None:
    """Before a measurement that must not see this run's own activity on the host (the port probe: a
    command's DNS lookup holds a UDP port for a moment): the host's snapshot and its batch of check
    commands are done."""
    prime_one(target, site)
    wait = getattr(target, "wait_prefetched", None)
    if wait is not None:
        wait()


def _after(first: Any, fn: Callable[..., Any], *args: Any) -> None:
    if first is not None:
        from concurrent.futures import wait
        wait([first])
    _quietly(fn, *args)


def _priority(pf: Prefetch, target: Any, site: Site) -> Any:
    try:
        return pf.priority(target, site)      # type: ignore[misc]
    except Exception:  # noqa: BLE001 - no order known: last
        return float("inf")


def _is_light(pf: Prefetch, target: Any, site: Site) -> bool:
    try:
        return bool(pf.light is not None and pf.light(target, site))
    except Exception:  # noqa: BLE001 - not known: heavy (the limited pool)
        return False


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - the check that reads it reports what failed (it asks again)
        pass


PREFETCHER = Prefetcher()


def start_prefetch(session: pytest.Session) -> None:
    """After collection (every process that runs checks): the hosts' snapshots (serial runs; an xdist
    controller started them at configure) and the registered measurements of the selected checks."""
    config = session.config
    if config.option.collectonly or not session.items or xdist_controller(config):
        return
    site = config.stash.get(SITE_KEY, None)
    if site is None:
        return
    if not hasattr(config, "workerinput"):
        targets: dict[str, Any] = {}
        for item in session.items:
            callspec = getattr(item, "callspec", None)
            target = callspec.params.get("target") if callspec else None
            if target is not None:
                targets.setdefault(target.name, target)
        if len(targets) > 1:
            PRIMER.start(site, targets.values())
    PREFETCHER.start(site, session.items)


_ONCE: dict[str, Any] = {}
_ONCE_LOCKS: dict[str, threading.Lock] = {}
_ONCE_GUARD = threading.Lock()


class Busy(Exception):  # noqa: N818
    """once(..., wait=False): another thread or process of the run is measuring this now."""


def once(key: str, fn: Callable[[], Any], wait: bool = True) -> Any:
    """fn() once per run for key: the first thread (and, under pytest-xdist, the first process of the
    run) to ask runs it, the others wait for it and get the same value (processes through a pickle in
    the run directory).  What fn raises is not kept: the next caller runs fn itself.  With
    wait=False a caller that would wait raises Busy instead (a prefetch leaves the host to whoever
    measures it)."""
    with _ONCE_GUARD:
        lock = _ONCE_LOCKS.setdefault(key, threading.Lock())
    if not lock.acquire(blocking=wait):
        raise Busy(key)
    try:
        if key in _ONCE:
            return _ONCE[key]
        store = shared_dir()
        if store is None:
            _ONCE[key] = fn()
            return _ONCE[key]
        path = os.path.join(store, "once-" + hashlib.sha256(key.encode()).hexdigest()[:24])
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise Busy(key) from None
            with contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
                _ONCE[key] = pickle.load(fh)   # noqa: S301 - written by this run, in its private directory
                return _ONCE[key]
            value = fn()
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                with open(tmp, "wb") as fh:
                    pickle.dump(value, fh)
                os.replace(tmp, path)
            except (pickle.PicklingError, TypeError, AttributeError):
                with contextlib.suppress(OSError):
                    os.unlink(tmp)   # kept in this process only; another process measures for itself
            _ONCE[key] = value
            return value
        finally:
            os.close(fd)
    finally:
        lock.release()


def prime(item: pytest.Item, site: Site) -> None:
    """Before a target's first check: one SSH command that fills most fact caches (os-release, cores,
    memory, addresses, routes, sysctls, the filesystems the disk checks ask about), instead of one round
    trip per fact. Best effort: a check whose fact is missing measures it itself and reports errors.

    In a serial run every target is connected and primed at once, in threads (still one connection per
    host).  Under xdist the controller has done that while the workers started: a worker finds the
    host's master connection and reads its snapshot from the run directory.  A fleet check (no target
    of its own) reads every host's."""
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("target") if callspec else None
    if target is None:
        if hasattr(item.config, "workerinput") and not _PRIMED_ALL[0] and site.targets:
            _PRIMED_ALL[0] = True
            prime_all(site)
        return
    serial = not hasattr(item.config, "workerinput") and not getattr(item.config.option, "numprocesses", None)
    if serial and not _PRIMED_ALL[0] and len(site.targets) > 1:
        _PRIMED_ALL[0] = True
        prime_all(site)
    prime_one(target, site)

