"""'Nothing left on the target': what a probe or run added to a lab host's footprint (processes,
sockets, files) and has not removed again."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.lab.core import LabHost


def host_footprint(host: LabHost) -> dict[str, list]:
    """What a probe could leave on a lab host: the processes in its network namespace, its UDP/TCP
    sockets, and the files in its writable places."""
    rows = [line.split() for line in host.exec("ss -Hauntp").stdout.splitlines()]
    # the engine's own SSH sessions end with sshd closing first: TIME-WAIT on :22 is the kernel's
    # memory of a closed connection (no process holds it), not something the probe left
    rows = [r for r in rows if not (r[1] == "TIME-WAIT" and r[4].endswith(":22"))]
    # netid, state, local, peer, process (queue sizes left out: a service's accept queue may hold
    # the probe's connection until the service accepts it)
    sockets = sorted(" ".join(r[:2] + r[4:]) for r in rows)
    listing = host.exec("ls -A /tmp /var/tmp /dev/shm /home/wire /root 2>/dev/null").stdout.splitlines()
    pids = subprocess.run(["ip", "netns", "pids", host.netns], capture_output=True, text=True, timeout=10)
    return {"pids": sorted(pids.stdout.split()), "sockets": sockets,
            # lab hosts share /dev/shm with the runner, where other labs keep their working directories
            "files": sorted(n for n in listing if not n.startswith("wirecheck-lab"))}


def assert_clean_after(host: LabHost, before: dict[str, list], what: str, timeout: float = 10.0,
                       step: float = 0.2) -> None:
    """The host's footprint has nothing that ``before`` (its ``host_footprint`` before the probe) did
    not have, within ``timeout``."""
    assert_nothing_added(lambda: host_footprint(host), before, what, timeout, step)


def assert_nothing_added(take: Callable[[], dict[str, list]], before: dict[str, list], what: str,
                         timeout: float = 10.0, step: float = 0.2) -> None:
    """Wait up to ``timeout`` until ``take()`` shows nothing that ``before`` did not have, then assert
    so, naming what was left. What was there before and has gone since (an earlier test's SSH
    session still closing when ``before`` was taken) is not the probe's and does not count."""
    def added() -> dict[str, list]:
        now = take()
        return {k: sorted(set(now[k]) - set(before[k])) for k in before}
    deadline = time.monotonic() + timeout
    extra = added()
    while any(extra.values()) and time.monotonic() < deadline:
        time.sleep(step)
        extra = added()
    assert not any(extra.values()), f"{what} left on the target: {({k: v for k, v in extra.items() if v})}"
