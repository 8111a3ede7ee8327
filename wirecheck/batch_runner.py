"""The batch runner: runs *on the target* (``python3 -I -S -c <this source> LC CMD TIMEOUT LIMIT ROOT ...``).

Self-contained (standard library modules that need no site, Python 3.6 or later); never copied to
disk: wirecheck.batch sends this text as the batch script's Python branch.  Every command starts at
once as ``/bin/sh -c CMD`` in a session of its own, stdin from /dev/null, stdout and stderr read
through pipes; each is timed with the monotonic clock.  At its time limit a command's process group
gets SIGTERM, two seconds later SIGKILL (what coreutils' ``timeout -k 2`` does); a second after that
the runner stops waiting for it.  Then, per command, the record wirecheck.batch.parse_batch reads::

    @@wc-batch I RC START_NS END_NS
    <stdout, base64>
    @@wc-batch-stderr
    <stderr, base64>

and ``@@wc-batch-end`` after the last one.  A signal (SIGTERM, SIGHUP, SIGINT) or the reader of its
stdout going away (the SSH connection closed) ends every command still running, then the runner:
nothing it started is left behind.  A command whose ROOT is 1 runs under ``sudo -n``: what it
started as root, this user may not signal (sudo passes a signal on to its child only), so the
signal for its group also goes through ``sudo -n`` (sudo there lets the command itself run, so it
lets kill run).  LIMIT is the sh branch's (whole seconds for coreutils' timeout).

The commands get the environment the batch's shell had: LC is ``x`` and the shell's LC_CTYPE, or
empty when it had none (Python 3.7 and later set LC_CTYPE when they start in the C locale, PEP 538).
"""

import binascii
import os
import select
import sys
import time

try:                      # the C module: `signal` imports enum, a quarter of the runner's start-up
    import _signal as signal
except ImportError:       # Python before 3.5: signal is the C module
    import signal

GRACE_TERM = 2.0     # SIGTERM -> SIGKILL, as `timeout -k 2`
GRACE_KILL = 1.0     # SIGKILL -> stop waiting for pipes something outside the group still holds
HELPER_WAIT = 3.0    # the longest the runner waits for a `sudo -n kill` it started
#: signals the runner handles or ignores, back to their defaults in a command
DEFAULTS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
NAMES = {signal.SIGTERM: "TERM", signal.SIGKILL: "KILL"}
STOPPING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Stop(Exception):
    pass


def _stop(*_):
    raise Stop()


def _status(st):
    return os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)


def _spawn(argv, stdin, stdout, stderr, env):
    """argv in a new session: posix_spawn (vfork: no copy of this interpreter) where the Python has
    it with setsid (3.8 and later), else fork and exec."""
    if hasattr(os, "posix_spawn"):
        try:
            return os.posix_spawn(argv[0], argv, env, setsid=True, setsigdef=DEFAULTS, setsigmask=(),
                                  file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
                                                (os.POSIX_SPAWN_DUP2, stderr, 2)])
        except NotImplementedError:      # a C library without POSIX_SPAWN_SETSID
            pass
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            os.dup2(stdin, 0)
            os.dup2(stdout, 1)
            os.dup2(stderr, 2)
            for sig in DEFAULTS:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid


class Runner:
    def __init__(self, args):
        self.env = dict(os.environ)
        if args[0]:
            self.env["LC_CTYPE"] = args[0][1:]
        else:
            self.env.pop("LC_CTYPE", None)
        self.null = os.open(os.devnull, os.O_RDWR)
        self.args = args[1:]
        self.cmds, self.owner, self.helpers = [], {}, []
        self.poll = select.poll()

    def start(self):
        # the stopping signals wait while a command starts: a command started is a command known
        # (end_all ends it), and its pipes are watched
        signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
        try:
            for n in range(0, len(self.args) - 3, 4):
                c = Command(self.args[n], float(self.args[n + 1]), self.args[n + 3] == "1", self)
                self.cmds.append(c)
                for fd in c.fds:
                    self.owner[fd] = c
                    self.poll.register(fd, select.POLLIN)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING)

    def signal(self, c, sig):
        """sig to c's process group; through sudo too when c runs under sudo and its group is there."""
        try:
            os.killpg(c.pid, sig)
        except ProcessLookupError:
            return                        # the group is gone (so its number is not someone else's)
        except OSError:
            pass                          # EPERM: only root's processes are left in it
        if c.root:
            line = f"exec sudo -n -- /bin/sh -c 'kill -s {NAMES[sig]} -- -{c.pid}'"
            pid = _spawn(["/bin/sh", "-c", line], self.null, self.null, self.null, self.env)
            self.helpers.append((pid, time.monotonic() + HELPER_WAIT))

    def reap_helpers(self):
        """Reap the sudo kills that ended; one that hangs is not waited for past HELPER_WAIT."""
        now, left = time.monotonic(), []
        for pid, until in self.helpers:
            try:
                done = os.waitpid(pid, os.WNOHANG)[0]
            except ChildProcessError:
                done = True
            if not done and now < until:
                left.append((pid, until))
        self.helpers = left

    def close(self, fd):
        if self.owner.pop(fd, None) is not None:
            self.poll.unregister(fd)
            os.close(fd)

    def step(self, now):
        """Reap, end what is past its limit; the next moment something is due (None: all done)."""
        self.reap_helpers()
        wake = None
        for c in self.cmds:
            if c.end is not None:
                continue
            c.reap()
            if c.rc is not None and not any(fd in self.owner for fd in c.fds):
                c.end = now
                continue
            if c.term is None:
                due = c.deadline
                if now >= due:
                    self.signal(c, signal.SIGTERM)
                    c.term, due = now, now + GRACE_TERM
            elif c.kill is None:
                due = c.term + GRACE_TERM
                if now >= due:
                    self.signal(c, signal.SIGKILL)
                    c.kill, due = now, now + GRACE_KILL
            else:
                due = c.kill + GRACE_KILL
                if now >= due:       # its pipes are held outside its group: stop waiting
                    for fd in c.fds:
                        self.close(fd)
                    c.rc = 137 if c.rc is None else c.rc
                    c.end = now
                    continue
            wake = due if wake is None else min(wake, due)
        if wake is None and self.helpers:
            wake = now + 0.05
        return wake

    def run(self):
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in STOPPING:
            signal.signal(sig, _stop)
        self.poll.register(wake_r, select.POLLIN)
        self.poll.register(1, 0)          # only POLLERR/POLLHUP: whoever reads our output has gone
        try:
            self.start()
            while True:
                wake = self.step(time.monotonic())
                if wake is None:
                    break
                for fd, _ev in self.poll.poll(max(0, int((wake - time.monotonic()) * 1000) + 1)):
                    if fd == 1:
                        raise Stop()
                    if fd == wake_r:
                        try:
                            os.read(wake_r, 512)
                        except BlockingIOError:
                            pass
                        continue
                    data = os.read(fd, 65536)
                    if data:
                        self.owner[fd].fds[fd].append(data)
                    else:
                        self.close(fd)
        except BaseException:
            self.end_all()
            raise
        out = sys.stdout.buffer
        for i, c in enumerate(self.cmds):
            out.write(c.record(i))
        out.write(b"@@wc-batch-end\n")
        out.flush()

    def end_all(self):
        """SIGTERM to every command not finished, SIGKILL a second later to those still there."""
        for sig in STOPPING:
            signal.signal(sig, signal.SIG_IGN)
        live = [c for c in self.cmds if c.end is None]
        for c in live:
            self.signal(c, signal.SIGTERM)
        until = time.monotonic() + 1.0
        while (live or self.helpers) and time.monotonic() < until:
            for c in live:
                c.reap()
            live = [c for c in live if c.rc is None]
            self.reap_helpers()
            time.sleep(0.02)
        for c in self.cmds:
            if c.end is None:
                self.signal(c, signal.SIGKILL)
        while self.helpers:
            self.reap_helpers()
            time.sleep(0.02)


class Command:
    def __init__(self, line, timeout, root, runner):
        out, err = os.pipe(), os.pipe()
        self.root = root
        self.start = time.monotonic()
        self.deadline = self.start + timeout
        self.pid = _spawn(["/bin/sh", "-c", line], runner.null, out[1], err[1], runner.env)
        os.close(out[1])
        os.close(err[1])
        self.fds = {out[0]: [], err[0]: []}
        self.out, self.err = out[0], err[0]
        self.rc = None
        self.end = None
        self.term = self.kill = None

    def reap(self):
        if self.rc is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.rc = _status(st)

    def record(self, i):
        out, err = b"".join(self.fds[self.out]), b"".join(self.fds[self.err])
        head = f"\n@@wc-batch {i} {self.rc} {int(self.start * 1e9)} {int(self.end * 1e9)}\n".encode()
        return head + binascii.b2a_base64(out) + b"@@wc-batch-stderr\n" + binascii.b2a_base64(err)


if __name__ == "__main__":
    try:
        Runner(sys.argv[1:]).run()
    except Stop:
        sys.exit(143)
