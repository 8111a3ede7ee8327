"""The run directory: where one run's SSH control sockets live and its processes share what they measured.

The masters' control sockets live in one private directory per run (``/tmp/wc-ssh-*``).  A small
reaper (``sh``, in its own session) holds the read end of a pipe whose write end only this process
has: however this process ends (normal exit, Ctrl-C, SIGKILL), the reaper sees end-of-file, tells
every master still there to exit and removes the directory.  Under pytest-xdist the workers share
the controlling process's directory (``share_run_dir``); ``shared_dir`` is where processes of one
run leave each other what they measured.  See wirecheck.transport for how commands use it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import subprocess
import tempfile
import threading

_REAPER_SCRIPT = r"""
cat >/dev/null 2>&1
for s in "$1"/*; do
  [ -S "$s" ] && ssh -F /dev/null -o ControlPath="$s" -O exit wirecheck >/dev/null 2>&1
done
rm -rf -- "$1"
"""
_RUN: dict[str, object] = {}
_RUN_LOCK = threading.Lock()


def run_dir() -> str:
    """This process's private directory for control sockets, with its reaper (see the module text)."""
    with _RUN_LOCK:
        if _RUN.get("pid") != os.getpid():          # first use, or a forked child: a directory of its own
            path = tempfile.mkdtemp(prefix="wc-ssh-")
            reaper = subprocess.Popen(["/bin/sh", "-c", _REAPER_SCRIPT, "wirecheck-reaper", path],
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
            _RUN.clear()
            _RUN.update(pid=os.getpid(), dir=path, reaper=reaper)
        return str(_RUN["dir"])


def enable_sharing() -> str:
    """In the process that owns the run directory (an xdist controller): let other processes of the
    run use it (``share_run_dir``) and keep what is measured there (``shared_dir``).  Returns it."""
    path = run_dir()
    with _RUN_LOCK:
        _RUN["sharing"] = True
    return path


def share_run_dir(path: str) -> None:
    """In an xdist worker: use the run directory of the controlling process (its masters, its reaper,
    what it measured) instead of one of its own.  The controller's reaper cleans it up."""
    if not os.path.isdir(path):
        return
    with _RUN_LOCK:
        _RUN.clear()
        _RUN.update(pid=os.getpid(), dir=path, sharing=True, guest=True)


def shared_dir() -> str | None:
    """The run directory when several processes share it, else None (nothing to share with)."""
    with _RUN_LOCK:
        if _RUN.get("sharing") and _RUN.get("pid") == os.getpid():
            return str(_RUN["dir"])
    return None


def is_guest() -> bool:
    """True in a process that uses another process's run directory (its masters are not ours to end)."""
    with _RUN_LOCK:
        return bool(_RUN.get("guest")) and _RUN.get("pid") == os.getpid()


@contextlib.contextmanager
def file_lock(path: str):
    """An exclusive lock on path (created if need be), between threads and processes alike."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)




@contextlib.contextmanager
def session_slot(base: str, slots: int):
    """One of ``slots`` places for a command over a master, between threads and processes: a free one
    if there is, else wait for one (chosen by process and thread, which spreads the waiters)."""
    for i in range(slots):
        fd = os.open(f"{base}.slot{i}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield
        finally:
            os.close(fd)
        return
    with file_lock(f"{base}.slot{(os.getpid() + threading.get_ident()) % slots}"):
        yield


def release_run_dir() -> None:
    """Close the reaper's pipe and wait for it: masters told to exit, the directory gone (at exit)."""
    with _RUN_LOCK:
        reaper = _RUN.pop("reaper", None)
        if _RUN.get("pid") != os.getpid():
            return
        _RUN.clear()
    if isinstance(reaper, subprocess.Popen):
        try:
            if reaper.stdin:
                reaper.stdin.close()
            reaper.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            pass


atexit.register(release_run_dir)
