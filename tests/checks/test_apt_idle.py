"""IMP-APT-IDLE on a real SSH test host, both ways: a process holding a lock on an apt/dpkg lock file
(fcntl as apt and dpkg take it, or flock) is a finding (a warning: the requirement is a should) naming the file and the holder; the same
file unlocked, or open but not locked, passes.  The lock files are pointed at the host's private /tmp
with --param so that the machine's own apt is never touched."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.support.wc import host_args, run_suite

LOCK = "/tmp/wc-test-lock-frontend"
OTHER = "/tmp/wc-test-lists-lock"


@pytest.fixture(scope="module")
def node(lab_module):
    host = lab_module.add_host("aptidle", user="wire", sudo=True)
    host.exec(f"touch {LOCK} {OTHER}")
    return host


def _run(node, tmp_path):
    return run_suite([*host_args(node), "-k", "test_apt_idle",
                      "--param", f"IMP-APT-IDLE.locks={LOCK},{OTHER}"], tmp_path)


def _hold(node, how: str) -> subprocess.Popen:
    """A process inside the host that takes the lock (or only opens the file) and says so."""
    code = {"fcntl": f"import fcntl,sys,time; f=open({LOCK!r},'w'); fcntl.lockf(f, fcntl.LOCK_EX); "
                     "print('held', flush=True); sys.stdin.read()",
            "flock": f"import fcntl,sys,time; f=open({LOCK!r},'w'); fcntl.flock(f, fcntl.LOCK_EX); "
                     "print('held', flush=True); sys.stdin.read()",
            "open": f"import sys; f=open({LOCK!r},'w'); print('held', flush=True); sys.stdin.read()"}[how]
    proc = node.popen(["python3", "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _release(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)


def test_idle_host_passes(node, tmp_path):
    run = _run(node, tmp_path)
    res = run.result("IMP-APT-IDLE")
    assert res["status"] == "pass", res
    assert "/proc/locks" in str(res)


@pytest.mark.parametrize("how", ["fcntl", "flock"])
def test_a_held_lock_is_found_naming_file_and_holder(node, tmp_path, how):
    holder = _hold(node, how)
    try:
        run = _run(node, tmp_path)
    finally:
        _release(holder)
    res = run.result("IMP-APT-IDLE")
    assert res["status"] == "warn", res       # IMP-APT-IDLE is a should: a finding is a warning
    text = str(res)
    assert f"{LOCK} held by pid" in text and "python3" in text
    assert OTHER not in text.split("apt/dpkg is busy")[-1]      # the unlocked file is not named


def test_a_file_open_but_not_locked_is_not_busy(node, tmp_path):
    holder = _hold(node, "open")
    try:
        run = _run(node, tmp_path)
    finally:
        _release(holder)
    assert run.result("IMP-APT-IDLE")["status"] == "pass"


def test_a_running_dpkg_is_found_by_its_name(node, tmp_path):
    """No lock held, but a process the kernel names dpkg is running (a copy of sleep under that name,
    so the host's real dpkg never runs): a finding that names it; once it has ended, the host passes."""
    node.exec("cp /bin/sleep /tmp/dpkg")
    proc = node.popen(["/tmp/dpkg", "60"])
    try:
        run = _run(node, tmp_path)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    res = run.result("IMP-APT-IDLE")
    assert res["status"] == "warn", res
    assert re.search(r"apt/dpkg is busy: pid \d+ is running: /tmp/dpkg 60", res["message"]), res["message"]
    assert _run(node, tmp_path / "after").result("IMP-APT-IDLE")["status"] == "pass"


def test_a_dpkg_of_another_network_namespace_is_not_this_hosts(node, lab_module, tmp_path):
    """A process named dpkg in another network namespace (here another test host; on a real machine a
    container with its own root file system) does not use this host's dpkg database: the host passes,
    while the host it runs in has it as a finding."""
    other = lab_module.add_host("aptother", user="wire", sudo=True)
    other.exec(f"touch {LOCK} {OTHER}")
    other.exec("cp /bin/sleep /tmp/dpkg")
    proc = other.popen(["/tmp/dpkg", "60"])
    try:
        here = _run(node, tmp_path / "here").result("IMP-APT-IDLE")
        there = _run(other, tmp_path / "there").result("IMP-APT-IDLE")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert here["status"] == "pass", here
    assert there["status"] == "warn" and "/tmp/dpkg 60" in there["message"], there


def test_a_dpkg_that_has_ended_but_is_not_yet_reaped_is_not_running(node, tmp_path):
    """A process named dpkg that has exited while its parent has not yet waited for it (a zombie: it
    runs nothing and holds no lock, and its network namespace can no longer be read) is not apt/dpkg
    activity.  A CI run warned on a test host while another test's fake dpkg was being stopped: the
    zombie's unreadable namespace was counted as this host's."""
    node.exec("cp /bin/sleep /tmp/dpkg")
    parent = node.popen(["python3", "-c",
                         "import subprocess,sys; c=subprocess.Popen(['/tmp/dpkg','0']); "
                         "print(c.pid, flush=True); sys.stdin.read()"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid = parent.stdout.readline().strip()
        for _ in range(100):        # the child has exited and waits, unreaped, for its parent
            stat = node.exec(f"cat /proc/{pid}/stat").stdout
            if stat.split(")")[-1].split()[0] == "Z":
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the child never became a zombie: {stat}")
        res = _run(node, tmp_path).result("IMP-APT-IDLE")
    finally:
        _release(parent)
    assert res["status"] == "pass", res
