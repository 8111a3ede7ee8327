"""A real cgroup with a CPU quota for tests: v2 (``cpu.max``) where the machine has the cgroup v2 cpu
controller, else v1 (``cpu.cfs_quota_us``). Processes moved into it (a lab host's sshd) and
everything they start afterwards run under the quota."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


class CgroupUnavailable(Exception):
    pass


def _own_path(pid: int, v2: bool) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hid, ctrls, path = line.split(":", 2)
        if (v2 and hid == "0") or (not v2 and "cpu" in ctrls.split(",")):
            return path
    raise CgroupUnavailable(f"process {pid} has no {'v2' if v2 else 'v1 cpu'} cgroup")


@contextlib.contextmanager
def cpu_quota_cgroup(quota_us: int, period_us: int = 100_000) -> Iterator[tuple[Path, str]]:
    """Yields (directory, the file that holds the quota). Removed afterwards (the caller moves its
    processes out first, or they have ended)."""
    name = f"wirecheck-test-{uuid.uuid4().hex[:8]}"
    if (ROOT / "cgroup.controllers").is_file() and "cpu" in (ROOT / "cgroup.controllers").read_text().split():
        if "cpu" not in (ROOT / "cgroup.subtree_control").read_text().split():
            try:
                (ROOT / "cgroup.subtree_control").write_text("+cpu")
            except OSError as exc:
                raise CgroupUnavailable(f"cannot enable the cgroup v2 cpu controller: {exc}") from None
        d, quota_file, content = ROOT / name, "cpu.max", f"{quota_us} {period_us}"
    elif (ROOT / "cpu" / "cpu.cfs_quota_us").is_file():
        d, quota_file, content = ROOT / "cpu" / name, "cpu.cfs_quota_us", str(quota_us)
    elif (ROOT / "cpu,cpuacct" / "cpu.cfs_quota_us").is_file():
        d, quota_file, content = ROOT / "cpu,cpuacct" / name, "cpu.cfs_quota_us", str(quota_us)
    else:
        raise CgroupUnavailable("no cgroup v2 cpu controller and no cgroup v1 cpu hierarchy on this machine")
    try:
        d.mkdir()
    except OSError as exc:
        raise CgroupUnavailable(f"cannot create {d}: {exc}") from None
    try:
        if quota_file == "cpu.cfs_quota_us":
            (d / "cpu.cfs_period_us").write_text(str(period_us))
        (d / quota_file).write_text(content)
        yield d, quota_file
    finally:
        for _ in range(100):      # processes of ended sessions leave the cgroup a moment later
            try:
                d.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def move(pid: int, cgroup: Path) -> None:
    (cgroup / "cgroup.procs").write_text(str(pid))


def move_back(pid: int, original: Path) -> None:
    with contextlib.suppress(OSError):
        (original / "cgroup.procs").write_text(str(pid))


def current_cgroup_dir(pid: int, like: Path) -> Path:
    """The directory of pid's cgroup in the hierarchy `like` lives in."""
    v2 = like.parent == ROOT
    mount = ROOT if v2 else like.parent
    rel = _own_path(pid, v2).lstrip("/")
    return mount / rel if rel else mount
