"""Temporary port listener that wirecheck runs *on the target* to prove reachability.

This file is self-contained (standard library only). It is never copied to the target: the prober
starts ``python3 -c <BOOTSTRAP>`` over the target's own connection and sends this source (with its
bytecode, used where the target's Python has the prober's magic number), then one JSON configuration
line, on stdin. Nothing is written to the target's disk.

Protocol (JSON lines):

* stdin, first line after the code: the configuration
  ``{"token": hex, "udp": [[lo, hi], ...], "tcp": [ports], "echo_udp": [ports], "deadline": seconds,
  "bind": "0.0.0.0", "max_per_worker": int}``
* stdout ``{"ev": "ready", ...}`` once every port is bound (or found in use), with the in-use ports
  and their owners where readable.
* stdin ``{"cmd": "report"}`` -> stdout ``{"ev": "report", "udp": ranges, "tcp": ports, ...}``
  (cumulative set of ports on which a datagram/connection carrying the run's token arrived;
  ``"brief": true`` leaves the UDP ports out: 32,768 of them cost a tenth of a second or more).
* windowed mode (``"window": N`` in the configuration): the range ports are not bound at start;
  stdin ``{"cmd": "bind", "udp": ranges}`` binds them (-> ``{"ev": "bound", "bound_udp", "in_use_udp",
  "errors"}``) and ``{"cmd": "release", "udp": ranges}`` reads what arrived on them and closes them
  (-> ``{"ev": "released"}``); ``{"cmd": "collect", "expect": ranges, "release": ranges, "wait": s,
  "settle": s}`` waits on the target until every expected port has its datagram (or ``wait`` has passed
  and nothing new came for ``settle``), then releases -> ``{"ev": "collected", "udp": ranges}`` (the
  expected ports that got theirs); with ``"keep": k`` (and ``"min_run"``) the lowest port of up to k
  silent runs of the released ports stays bound (``"kept": ports``), until a ``release`` names it. The prober keeps at most two windows bound at a time, so the target's
  own outgoing UDP (DNS lookups) and a TURN server's relay allocations always find free ports: with
  every port of 32768-65535 held, the kernel has no ephemeral port left (sendto: EAGAIN).
* stdin ``{"cmd": "quit"}`` -> stdout ``{"ev": "done", "peak_rss_kib": ...}``, then exit.

The listener exits, closing every socket, on ``quit``, on stdin EOF (the SSH connection dropped or
the pytest process died), on SIGTERM/SIGHUP/SIGINT and on its own hard deadline, whatever happens
first. UDP ports are bound by forked worker processes so that no process exceeds its open-file
limit; workers die with their parent (control-socket EOF, PR_SET_PDEATHSIG).  A probe of a few ports
(THREAD_WORKER_MAX) has its one worker in a thread of the agent instead.

With udp_sender.py's text ahead of it, the same program has a ``send`` mode used on a probe host
(``--probe-from``): see that module.

Raw mode (``"raw": true`` with a window, as root): the range is not bound at all. One raw IPv4
socket receives every datagram of the run (a BPF filter keeps only those carrying MAGIC and the
token); Linux copies datagrams to raw sockets after netfilter's INPUT hooks, so what arrives there
got through the firewall. Ports already in use are read from /proc/net/udp (confirmed by bind) and
``{"cmd": "inuse", "udp": ranges}`` looks again. ``collect`` then waits on the raw socket; ``bind``
and ``release`` still hold single ports (the closed-vs-filtered samples). Without root, or when the
raw socket is refused, the ready message says why (``raw_error``) and windows are used.
"""

import _socket
import errno
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
MAGIC = b"WCP1"
ACK = b"WCPACK"


def to_ranges(ports):
    """Sorted iterable of ints -> [[lo, hi], ...]."""
    out = []
    for p in sorted(set(ports)):
        if out and out[-1][1] == p - 1:
            out[-1][1] = p
        else:
            out.append([p, p])
    return out


def from_ranges(ranges):
    ports = []
    for lo, hi in ranges:
        ports.extend(range(int(lo), int(hi) + 1))
    return ports


def peak_rss_kib():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def set_pdeathsig():
    """Ask the kernel to SIGKILL this process when its parent dies (Linux only, best effort)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort; stdin/socket EOF is the primary exit path
        pass


def parse_payload(data, token):
    """Return the port the prober meant (from a token-tagged payload) or None for foreign data."""
    if not data.startswith(MAGIC + token + b":"):
        return None
    rest = data[len(MAGIC) + len(token) + 1:]
    digits = rest.split(b":", 1)[0]
    try:
        return int(digits)
    except ValueError:
        return None


def make_payload(token, port, size=0):
    body = b"%s%s:%d:" % (MAGIC, token, port)
    if size > len(body):
        body += b"x" * (size - len(body))
    return body


SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33


def open_raw(token, rcvbuf=64 << 20):
    """One raw IPv4 socket that sees every UDP datagram this host accepts, instead of a bound socket
    per port: (socket, None), or (None, why not) when it cannot be had (not root, a kernel without
    raw sockets). Linux copies a datagram to raw sockets in ip_local_deliver_finish, after the
    netfilter INPUT hooks: one seen here got through the firewall as one for a bound socket would.
    A classic BPF filter keeps only datagrams whose payload starts with MAGIC and the run's token
    (a TURN server's media is not copied to us); nothing is bound, so no port is taken."""
    try:
        import ctypes

        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    except (OSError, ImportError) as exc:
        return None, f"raw socket refused: {exc}"
    try:
        prefix = MAGIC + token
        words = struct.unpack(f"!{len(prefix) // 4}I", prefix[:len(prefix) // 4 * 4])
        n = len(words)
        code = [(0xB1, 0, 0, 0)]                          # ldxb 4*([0]&0xf): X = IP header length
        for i, word in enumerate(words):
            code.append((0x40, 0, 0, 8 + 4 * i))          # ld [x + 8 + 4i]: a word of the UDP payload
            code.append((0x15, 0, 2 * (n - i) - 1, word))  # jeq #word, next, drop
        code += [(0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0)]   # ret keep; ret drop
        prog = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *ins) for ins in code))
        s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(code), ctypes.addressof(prog)))
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.setblocking(False)
        # datagrams queued before the filter was attached are told apart by the payload check
    except (OSError, struct.error, ValueError) as exc:
        s.close()
        return None, f"raw socket filter refused: {exc}"
    return s, None


def udp_ports_in_use(ports, bind="0.0.0.0"):
    """Ports of ``ports`` held by a socket on this host (bind() refuses them with EADDRINUSE): the
    candidates are read from /proc/net/udp{,6}, each is confirmed by a bind that is closed at once."""
    wanted = set(ports)
    listed = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as fh:
                next(fh, None)
                for line in fh:
                    f = line.split(None, 2)
                    if len(f) > 1:
                        port = int(f[1].rsplit(":", 1)[1], 16)
                        if port in wanted:
                            listed.add(port)
        except (OSError, ValueError, IndexError):
            continue
    out = []
    for port in sorted(listed):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((bind, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                out.append(port)
        finally:
            s.close()
    return out


def icmp_ratelimit_ms():
    """Milliseconds per ICMP destination-unreachable this host's kernel sends to one peer once its burst
    of 6 is spent (0: not rate-limited), from /proc/sys/net/ipv4/icmp_ratelimit and icmp_ratemask."""
    try:
        with open("/proc/sys/net/ipv4/icmp_ratemask") as fh:
            if not int(fh.read()) & (1 << 3):
                return 0
        with open("/proc/sys/net/ipv4/icmp_ratelimit") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 1000


# --------------------------------------------------------------------------------------------------
# worker: binds its share of the ports and records token-tagged arrivals


class Worker:
    def __init__(self, ctl, cfg, udp_ports, tcp_ports, raw=None):
        self.ctl = ctl
        self.rss = True  # report this process's peak memory when done (not for a thread worker)
        self.raw = raw  # the raw socket (raw mode): every datagram of the range arrives here
        self.raw_seen = {}  # source + destination address (8 bytes of the IP header) -> datagrams
        self.token = cfg["token"].encode()
        self.deadline = cfg["deadline_at"]
        self.echo = set(cfg.get("echo_udp", []))
        # ports read as datagrams arrive (epoll), not by sweeps: echo ports and the path-MTU port
        self.watch = set(cfg.get("watch_udp", [])) | self.echo
        self.bind = cfg.get("bind", "0.0.0.0")
        self.udp_ports = udp_ports
        self.tcp_ports = tcp_ports
        self.ep = select.epoll()
        self.by_fd = {}  # fd -> (kind, port, sock), for the sockets watched with epoll
        self.udp_socks = []  # every bound UDP socket, held until the end
        self.pending = {}  # port -> socket: range sockets on which nothing has arrived yet
        self.pktinfo = set()  # sockets that report the destination address (IP_PKTINFO)
        self.bound_udp = []
        self.in_use_udp = []
        self.bound_tcp = []
        self.in_use_tcp = []
        self.errors = {}
        self.got_udp = set()
        self.got_tcp = set()
        self.dst = {}
        self.src = {}
        self.remap = {}
        self.max_len = 0
        self.foreign = 0
        self.ctl_buf = b""
        self.sock_of = {}  # port -> bound range socket (released by "release")

    def open_sockets(self):
        self.bind_udp(self.udp_ports)
        self.bind_tcp(self.tcp_ports)
        if self.raw is not None:
            self.by_fd[self.raw.fileno()] = ("raw", 0, self.raw)
            self.ep.register(self.raw.fileno(), select.EPOLLIN)

    def drain_raw(self):
        """Read every datagram queued on the raw socket (IP header first); returns the ports that
        arrived for the first time. The destination port and addresses come from the headers."""
        prefix = MAGIC + self.token + b":"
        plen = len(prefix)
        recv = self.raw.recv
        got = self.got_udp
        seen = self.raw_seen
        new = []
        while True:
            try:
                d = recv(4096)
            except OSError:  # BlockingIOError: nothing queued
                return new
            i = (d[0] & 15) * 4 + 8                 # the UDP payload
            if d[i:i + plen] != prefix:
                self.foreign += 1
                continue
            try:
                meant = int(d[i + plen:d.index(b":", i + plen)])
            except ValueError:
                self.foreign += 1
                continue
            port = d[i - 6] << 8 | d[i - 5]         # the UDP destination port, after any DNAT
            if meant != port:
                self.remap[str(meant)] = port
            if meant not in got:
                got.add(meant)
                new.append(meant)
            key = d[12:20]                          # source and destination address
            seen[key] = seen.get(key, 0) + 1
            if len(d) - i > self.max_len:
                self.max_len = len(d) - i

    def addresses(self):
        """(dst, src) counts: the bound sockets' and the raw socket's."""
        dst, src = dict(self.dst), dict(self.src)
        for key, n in self.raw_seen.items():
            for table, addr in ((src, socket.inet_ntoa(key[:4])), (dst, socket.inet_ntoa(key[4:]))):
                table[addr] = table.get(addr, 0) + n
        return dst, src

    def bind_udp(self, ports):
        """Bind ``ports``; returns (bound, in_use, errors) for these ports."""
        bound, in_use, errors = [], [], {}
        # Range sockets are not watched with epoll: reports sweep the ones still waiting (cheaper
        # than an event per datagram, and it leaves the CPUs to the kernel while the prober sends).
        # Only every 16th asks for IP_PKTINFO: the receiving address is sampled, not taken per port.
        nonblock_dgram = socket.SOCK_DGRAM | getattr(socket, "SOCK_NONBLOCK", 0)
        # the C-level socket type: 16,000 of them are made here, without socket.socket's Python layer
        make = getattr(_socket, "socket", socket.socket)
        for i, port in enumerate(ports):
            if port in self.sock_of:
                continue
            s = make(socket.AF_INET, nonblock_dgram)
            try:
                s.bind((self.bind, port))
            except OSError as exc:
                s.close()
                if exc.errno == errno.EADDRINUSE:
                    in_use.append(port)
                else:
                    errors[f"udp/{port}"] = os.strerror(exc.errno or 0)
                continue
            if not socket.SOCK_NONBLOCK:
                s.setblocking(False)
            if i % 16 == 0 or port in self.watch:
                s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                self.pktinfo.add(s)
            self.udp_socks.append(s)
            self.sock_of[port] = s
            bound.append(port)
            if port in self.watch:
                self.by_fd[s.fileno()] = ("udp", port, s)
                self.ep.register(s.fileno(), select.EPOLLIN)
            elif port not in self.got_udp:
                self.pending[port] = s
        self.bound_udp.extend(bound)
        self.in_use_udp.extend(in_use)
        self.errors.update(errors)
        return bound, in_use, errors

    def release_udp(self, ports):
        """Read what already arrived on ``ports``, then close their sockets (the ports are free again)."""
        self.sweep()
        for port in ports:
            s = self.sock_of.pop(port, None)
            if s is None:
                continue
            self.pending.pop(port, None)
            self.pktinfo.discard(s)
            s.close()
        if len(self.sock_of) < len(self.udp_socks) // 2:
            self.udp_socks = list(self.sock_of.values())

    def collect(self, expect, wait, settle, cap=5.0):
        """Wait here, on the target, until every port of ``expect`` this worker holds has its datagram,
        or ``wait`` has passed and nothing new arrived for ``settle`` (at most ``cap``)."""
        if self.raw is not None:
            return self.collect_raw(expect, wait, settle, cap)
        mine = [p for p in expect if p in self.sock_of]
        start = last_new = time.monotonic()
        seen = len(self.got_udp)
        while True:
            self.sweep(mine)
            self.dispatch(self.ep.poll(0))      # the watched ports (echo, path MTU) and TCP
            now = time.monotonic()
            if all(p in self.got_udp for p in mine):
                break
            if len(self.got_udp) != seen:
                seen, last_new = len(self.got_udp), now
            if (now - start >= wait and now - last_new >= settle) or now - start >= cap:
                break
            time.sleep(0.002)
        return [p for p in expect if p in self.got_udp]

    def collect_raw(self, expect, wait, settle, cap):
        """collect() in raw mode: every expected port is awaited on the raw socket."""
        left = set(expect)
        left.difference_update(self.got_udp)
        start = last_new = time.monotonic()
        while left:
            time.sleep(0.002)                     # a batch per look, not a wake-up per datagram
            new = self.drain_raw()
            self.sweep()
            self.dispatch(self.ep.poll(0))
            now = time.monotonic()
            if new:
                left.difference_update(new)
                last_new = now
            if (now - start >= wait and now - last_new >= settle) or now - start >= cap:
                break
        left.difference_update(self.got_udp)      # arrived on a bound port (echo, path MTU, samples)
        return [p for p in expect if p not in left]

    def bind_tcp(self, ports):
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.bind, port))
                s.listen(64)
            except OSError as exc:
                s.close()
                if exc.errno == errno.EADDRINUSE:
                    self.in_use_tcp.append(port)
                else:
                    self.errors[f"tcp/{port}"] = os.strerror(exc.errno or 0)
                continue
            s.setblocking(False)
            self.by_fd[s.fileno()] = ("listen", port, s)
            self.ep.register(s.fileno(), select.EPOLLIN)
            self.bound_tcp.append(port)

    def send_ctl(self, obj):
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        self.ctl.setblocking(True)
        self.ctl.sendall(data)
        self.ctl.setblocking(False)

    def count(self, table, key):
        table[key] = table.get(key, 0) + 1

    def on_udp(self, port, s):
        while True:
            try:
                data, anc, _flags, addr = s.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            meant = parse_payload(data, self.token)
            if meant is None:
                self.foreign += 1
                continue
            self.got_udp.add(meant)
            self.pending.pop(port, None)
            if meant != port:
                self.remap[str(meant)] = port
            if len(data) > self.max_len:
                self.max_len = len(data)
            for level, kind, cdata in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(cdata) >= 12:
                    self.count(self.dst, socket.inet_ntoa(cdata[8:12]))
            self.count(self.src, addr[0])
            if port in self.echo:
                try:
                    s.sendto(ACK + data, addr)
                except OSError:
                    pass

    def on_accept(self, port, s):
        while True:
            try:
                conn, addr = s.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            conn.setblocking(False)
            self.by_fd[conn.fileno()] = ("conn", port, conn)
            self.ep.register(conn.fileno(), select.EPOLLIN)

    def on_conn(self, fd, port, conn):
        try:
            data = conn.recv(256)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        meant = parse_payload(data, self.token) if data else None
        if meant is not None:
            self.got_tcp.add(meant)
            try:
                self.count(self.dst, conn.getsockname()[0])
                self.count(self.src, conn.getpeername()[0])
                conn.send(ACK + b"\n")
                # wait for the prober to close first, so no TIME-WAIT socket stays on the target
                return
            except OSError:
                pass
        elif data:
            self.foreign += 1
        self.ep.unregister(fd)
        del self.by_fd[fd]
        conn.close()

    def poll(self, timeout):
        events = self.ep.poll(timeout)
        if any(fd == self.ctl.fileno() for fd, _ev in events) and not self.on_ctl():
            return False
        self.dispatch(events)
        return True

    def dispatch(self, events):
        """Handle epoll events of the watched sockets (not the control channel); True if there were any."""
        busy = False
        for fd, _ev in events:
            if fd == self.ctl.fileno():
                continue
            busy = True
            entry = self.by_fd.get(fd)
            if entry is None:
                continue
            kind, port, s = entry
            if kind == "raw":
                time.sleep(0.002)                 # let a batch queue up: one look reads many
                self.drain_raw()
            elif kind == "udp":
                self.on_udp(port, s)
            elif kind == "listen":
                self.on_accept(port, s)
            else:
                self.on_conn(fd, port, s)
        return busy

    def sweep(self, ports=None):
        """Read every range socket still waiting for its datagram (one datagram per call is enough:
        a foreign one leaves the socket waiting, and the next sweep reads on); ``ports``: only those."""
        if self.raw is not None:
            self.drain_raw()
        prefix = MAGIC + self.token + b":"
        plen = len(prefix)
        got = self.got_udp
        src = self.src
        pending = self.pending
        pktinfo = self.pktinfo
        items = list(pending.items()) if ports is None else [(p, pending[p]) for p in ports if p in pending]
        for port, s in items:
            if s in pktinfo:
                self.on_udp(port, s)
                continue
            try:
                data, addr = s.recvfrom(2048)
            except OSError:  # BlockingIOError: nothing here yet
                continue
            if data[:plen] != prefix:
                self.foreign += 1
                continue
            meant = parse_payload(data, self.token)
            if meant is None:
                self.foreign += 1
                continue
            got.add(meant)
            del pending[port]
            if meant != port:
                self.remap[str(meant)] = port
            if len(data) > self.max_len:
                self.max_len = len(data)
            host = addr[0]
            src[host] = src.get(host, 0) + 1

    def drain(self):
        """Process everything already queued (bounded), so a report reflects what has arrived."""
        self.sweep()
        stop = time.monotonic() + 0.5
        while time.monotonic() < stop:
            if not self.dispatch(self.ep.poll(0)):
                return

    def on_ctl(self):
        try:
            chunk = self.ctl.recv(65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            chunk = b""
        if not chunk:
            return False
        self.ctl_buf += chunk
        while b"\n" in self.ctl_buf:
            line, self.ctl_buf = self.ctl_buf.split(b"\n", 1)
            msg = json.loads(line)
            cmd = msg.get("cmd")
            if cmd == "report":
                self.drain()
                dst, src = self.addresses()
                self.send_ctl({
                    "ev": "report", "udp": [] if msg.get("brief") else to_ranges(self.got_udp),
                    "tcp": sorted(self.got_tcp),
                    "dst": dst, "src": src, "remap": self.remap, "max_len": self.max_len,
                    "foreign": self.foreign,
                })
            elif cmd == "bind":
                bound, in_use, errors = self.bind_udp(from_ranges(msg.get("udp", [])))
                self.send_ctl({"ev": "bound", "bound_udp": to_ranges(bound), "in_use_udp": in_use,
                               "errors": errors})
            elif cmd == "release":
                self.release_udp(from_ranges(msg.get("udp", [])))
                self.send_ctl({"ev": "released"})
            elif cmd == "collect":
                got = self.collect(from_ranges(msg.get("expect", [])), float(msg.get("wait", 0.05)),
                                   float(msg.get("settle", 0.03)), float(msg.get("cap", 5.0)))
                self.release_udp(from_ranges(msg.get("release", [])))
                self.send_ctl({"ev": "collected", "udp": to_ranges(got)})
            elif cmd == "quit":
                return False
        return True

    def run(self):
        self.ctl.setblocking(False)
        self.open_sockets()
        self.ep.register(self.ctl.fileno(), select.EPOLLIN)
        self.send_ctl({
            "ev": "ready", "bound_udp": to_ranges(self.bound_udp), "in_use_udp": self.in_use_udp,
            "bound_tcp": self.bound_tcp, "in_use_tcp": self.in_use_tcp, "errors": self.errors,
        })
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                break
            if not self.poll(min(left, 1.0)):
                break
        try:
            self.send_ctl({"ev": "done", "peak_rss_kib": peak_rss_kib() if self.rss else 0})
        except OSError:
            pass
        # the sockets close when worker_main() ends the process (os._exit): the kernel closes
        # every descriptor at once, faster than 16,000 Python close() calls


def worker_main(ctl, cfg, udp_ports, tcp_ports, raw=None):
    set_pdeathsig()
    code = 0
    worker = None
    try:
        # Held in a local until os._exit: were the Worker freed first, CPython would format an
        # "unclosed socket" warning (getsockname + getpeername) for each of its 16,000 sockets.
        worker = Worker(ctl, cfg, udp_ports, tcp_ports, raw)
        worker.run()
    except BaseException:  # noqa: BLE001 - a worker must never outlive an error
        code = 1
    finally:
        os._exit(code if worker is not None or code else 1)


#: at most this many ports held at once (in raw mode: besides the raw socket, which the worker reads):
#: the one worker is a thread of the agent, not a forked process (a fork, a death signal set through
#: ctypes and a process exit cost the target more than the probe of a database VM's TCP 22 and one
#: UDP port itself: 47 -> 38 ms of a lab host's CPU; a whole-range probe in raw mode 132 -> 122 ms)
THREAD_WORKER_MAX = 64


def thread_worker(ctl, cfg, udp_ports, tcp_ports, raw):
    try:
        worker = Worker(ctl, cfg, udp_ports, tcp_ports, raw)
        worker.rss = False       # this process's memory: the agent reports it once
        # its sockets stay open until the agent exits, as a forked worker's do until it exits: a
        # connection the prober has not closed yet must not be closed from this end first (that would
        # leave a TIME-WAIT socket on the target)
        THREAD_WORKERS.append(worker)
        worker.run()
    except BaseException:  # noqa: BLE001 - the parent sees the control socket close: a dead worker
        ctl.close()


THREAD_WORKERS = []


# --------------------------------------------------------------------------------------------------
# parent: shards the ports, multiplexes the control channel


def tcp_listeners(ports):
    """{inode: port} of the listening TCP sockets (IPv4 and IPv6) on ``ports``, asked of the kernel over
    sock_diag netlink with a LISTEN state filter: the kernel walks only its listening hash, where
    /proc/net/tcp{,6} walks the whole established hash too (262,144 buckets on a 16 GiB host, a few
    ms of the target's CPU per read).  Raises OSError where sock_diag cannot answer."""
    wanted = set(ports)
    found = {}
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4)     # NETLINK_SOCK_DIAG
    try:
        nl.settimeout(2.0)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
            # inet_diag_req_v2 (family, protocol, ext, pad, states: 1 << TCP_LISTEN, empty sockid)
            req = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 1 << 10) + bytes(48)
            # nlmsghdr: SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP
            nl.send(struct.pack("=IHHII", 16 + len(req), 20, 0x301, seq, 0) + req)
            done = False
            while not done:
                data = nl.recv(1 << 16)
                if not data:
                    raise OSError("sock_diag: no answer")
                off = 0
                while off + 16 <= len(data):
                    length, kind, _flags, got_seq, _pid = struct.unpack_from("=IHHII", data, off)
                    if length < 16:
                        raise OSError("sock_diag: malformed answer")
                    if got_seq == seq:
                        if kind == 3:                                   # NLMSG_DONE
                            done = True
                        elif kind == 2:                                 # NLMSG_ERROR
                            code = -struct.unpack_from("=i", data, off + 16)[0]
                            raise OSError(code, "sock_diag: " + os.strerror(code))
                        elif length >= 16 + 72:                         # inet_diag_msg
                            port = struct.unpack_from("!H", data, off + 20)[0]
                            inode = struct.unpack_from("=I", data, off + 16 + 68)[0]
                            if port in wanted and inode:
                                found[str(inode)] = port
                    off += (length + 3) & ~3
    finally:
        nl.close()
    return found


def socket_owners(ports, proto):
    """Map port -> "pid N (comm)" for sockets bound on ``ports`` (reads /proc, best effort): for TCP the
    listening socket's owner (sock_diag; /proc/net/tcp, its LISTEN lines first, where sock_diag cannot
    answer or nothing listens), for UDP any socket bound there; of several processes holding one socket,
    the first in /proc's order."""
    wanted = set(ports)
    if not wanted:
        return {}
    inodes = {}
    if proto == "tcp":
        try:
            inodes = tcp_listeners(wanted)
        except OSError:
            inodes = {}
    rest = wanted - set(inodes.values())
    listening = {}     # TCP from /proc: a port's listening sockets, when it has any, name its owner
    for table in ((f"/proc/net/{proto}", f"/proc/net/{proto}6") if rest else ()):
        try:
            with open(table) as fh:
                next(fh, None)
                for line in fh:
                    f = line.split()
                    if len(f) < 10:
                        continue
                    port = int(f[1].rsplit(":", 1)[1], 16)
                    if port in rest and f[9] != "0":
                        inodes.setdefault(f[9], port)
                        if proto == "tcp" and f[3] == "0A":
                            listening[f[9]] = port
        except OSError:
            continue
    if listening:
        listened = set(listening.values())
        inodes = {i: p for i, p in inodes.items() if i in listening or p not in listened}
    owners = {p: "owner not readable" for p in wanted}
    if not inodes:
        return owners
    left = set(inodes)
    for pid in os.listdir("/proc"):
        if not left:
            break
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in left:
                left.discard(link[8:-1])
                port = inodes[link[8:-1]]
                if owners[port] != "owner not readable":
                    continue
                try:
                    with open(f"/proc/{pid}/comm") as fh:
                        comm = fh.read().strip()
                except OSError:
                    comm = "?"
                owners[port] = f"pid {pid} ({comm})"
    return owners


def read_line(fd, buf, deadline):
    """Read one line from a raw fd; returns (line or None on EOF/deadline, rest)."""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, buf
        r, _w, _x = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return None, buf
        buf += chunk
    line, rest = buf.split(b"\n", 1)
    return line, rest


def emit(obj):
    os.write(1, (json.dumps(obj, separators=(",", ":")) + "\n").encode())


def listen_main(cfg, buf=b""):
    cfg["deadline_at"] = time.monotonic() + float(cfg.get("deadline", 60))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    except (ValueError, OSError):
        pass
    udp = from_ranges(cfg.get("udp", []))
    tcp = [int(p) for p in cfg.get("tcp", [])]
    window = int(cfg.get("window", 0) or 0)
    per_worker = max(64, min(int(cfg.get("max_per_worker", 19000)), soft - 100))
    raw = raw_error = None
    ranged = []
    if window:
        # only the watched/echo ports now; the range comes window by window ("bind"/"release"), or
        # arrives on one raw socket (raw mode, as root): then no port of it is ever bound
        keep = set(cfg.get("watch_udp", [])) | set(cfg.get("echo_udp", []))
        ranged = [p for p in udp if p not in keep]
        udp = [p for p in udp if p in keep]
        if cfg.get("raw"):
            if os.geteuid() != 0:
                raw_error = "not root (the raw socket needs CAP_NET_RAW)"
            else:
                raw, raw_error = open_raw(cfg["token"].encode())
        held_at_once = len(udp) + len(tcp) + (0 if raw else 2 * window)
    else:
        held_at_once = len(udp) + len(tcp)
    n = max(1, -(-held_at_once // per_worker))
    if held_at_once >= 4096:
        n = max(n, min(os.cpu_count() or 1, 4))
    # ports are dealt out in turn, so that any window is shared by every worker
    shards = [udp[i::n] for i in range(n)]
    workers = []  # (pid or None for a thread, ctl socket)
    threaded = n == 1 and held_at_once <= THREAD_WORKER_MAX
    for i in range(n):
        parent_end, child_end = socket.socketpair()
        if threaded:
            import _thread
            _thread.start_new_thread(thread_worker, (child_end, cfg, shards[i], tcp, raw))
            workers.append((None, parent_end))
            continue
        pid = os.fork()
        if pid == 0:
            parent_end.close()
            for _p, other in workers:
                other.close()
            os.close(0)
            os.close(1)
            worker_main(child_end, cfg, shards[i], tcp if i == 0 else [], raw if i == 0 else None)
        child_end.close()
        workers.append((pid, parent_end))
    if raw is not None and not threaded:
        raw.close()   # worker 0 reads it

    bufs = {s.fileno(): b"" for _p, s in workers}

    def gather(expect_ev):
        replies = []
        for _pid, s in workers:
            line, bufs[s.fileno()] = read_line(s.fileno(), bufs[s.fileno()], cfg["deadline_at"])
            if line is None:
                return None
            msg = json.loads(line)
            if msg.get("ev") != expect_ev:
                return None
            replies.append(msg)
        return replies

    def stop_workers():
        for _pid, s in workers:
            try:
                s.sendall(b'{"cmd":"quit"}\n')
            except OSError:
                pass
        done = gather("done") or []
        for pid, s in workers:
            s.close()
            if pid is None:          # a thread: it ends at "quit", or with the process
                continue
            for _ in range(200):
                wpid, _st = os.waitpid(pid, os.WNOHANG)
                if wpid:
                    break
                time.sleep(0.01)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
                os.waitpid(pid, 0)
        return done

    ready = gather("ready")
    if ready is None:
        stop_workers()
        emit({"ev": "error", "message": "listener workers did not start"})
        return 2
    in_use_udp = sorted(p for m in ready for p in m["in_use_udp"])
    if raw is not None:
        in_use_udp = sorted(set(in_use_udp) | set(udp_ports_in_use(ranged, cfg.get("bind", "0.0.0.0"))))
    in_use_later = []
    in_use_tcp = sorted(p for m in ready for p in m["in_use_tcp"])
    errors = {}
    for m in ready:
        errors.update(m["errors"])
    emit({
        "ev": "ready", "pid": os.getpid(), "workers": len(workers), "nofile": soft,
        "bound_udp": to_ranges(p for m in ready for p in from_ranges(m["bound_udp"])),
        "bound_tcp": sorted(p for m in ready for p in m["bound_tcp"]),
        "in_use_udp": in_use_udp, "in_use_tcp": in_use_tcp,
        "errors": errors, "addresses": local_addresses(),
        "raw": raw is not None, "raw_error": raw_error, "icmp_ratelimit_ms": icmp_ratelimit_ms(),
    })
    code = 0
    while True:
        line, buf = read_line(0, buf, cfg["deadline_at"])
        if line is None:  # stdin EOF or hard deadline
            stop_workers()
            return 0
        msg = json.loads(line)
        cmd = msg.get("cmd")
        if cmd == "ping":  # the prober times the control channel with this
            emit({"ev": "pong"})
        elif cmd == "inuse":  # raw mode: which of these ports a socket of this host holds now
            still = udp_ports_in_use(from_ranges(msg.get("udp", [])), cfg.get("bind", "0.0.0.0"))
            in_use_later.extend(still)
            emit({"ev": "inuse", "in_use_udp": still})
        elif cmd == "report":
            for _pid, s in workers:
                s.sendall(b'{"cmd":"report","brief":true}\n' if msg.get("brief") else b'{"cmd":"report"}\n')
            replies = gather("report")
            if replies is None:
                stop_workers()
                emit({"ev": "error", "message": "listener worker died"})
                return 2
            merged = {"ev": "report", "udp": [], "tcp": [], "dst": {}, "src": {}, "remap": {},
                      "max_len": 0, "foreign": 0}
            got = []
            for m in replies:
                got.extend(from_ranges(m["udp"]))
                merged["tcp"].extend(m["tcp"])
                for key in ("dst", "src"):
                    for addr, cnt in m[key].items():
                        merged[key][addr] = merged[key].get(addr, 0) + cnt
                merged["remap"].update(m["remap"])
                merged["max_len"] = max(merged["max_len"], m["max_len"])
                merged["foreign"] += m["foreign"]
            merged["udp"] = to_ranges(got)
            merged["tcp"] = sorted(set(merged["tcp"]))
            emit(merged)
        elif cmd == "collect":
            keep = int(msg.get("keep", 0) or 0)
            for _pid, s in workers:
                s.sendall((json.dumps(dict(msg, release=[]) if keep else msg) + "\n").encode())
            replies = gather("collected")
            if replies is None:
                stop_workers()
                emit({"ev": "error", "message": "listener worker died"})
                return 2
            got = [p for m in replies for p in from_ranges(m["udp"])]
            kept = []
            if keep:
                # the lowest port of each silent run of at least min_run ports stays bound (a sample
                # for closed vs filtered); the rest of the window is freed as usual
                window_ports = from_ranges(msg.get("release", []))
                arrived = set(got)
                # only ports bound for the round count (the prober expects those): a port in use by
                # another socket is silent too, but it is not ours to keep, and it breaks a run
                expected = set(from_ranges(msg.get("expect", [])))
                for lo, hi in to_ranges(p for p in window_ports if p in expected and p not in arrived):
                    if hi - lo + 1 >= int(msg.get("min_run", 8)) and len(kept) < keep:
                        kept.append(lo)
                free = to_ranges(p for p in window_ports if p not in kept)
                for _pid, s in workers:
                    s.sendall((json.dumps({"cmd": "release", "udp": free}) + "\n").encode())
                if gather("released") is None:
                    stop_workers()
                    emit({"ev": "error", "message": "listener worker died"})
                    return 2
            emit({"ev": "collected", "udp": to_ranges(got), "kept": kept})
        elif cmd in ("bind", "release"):
            ports = from_ranges(msg.get("udp", []))
            for i, (_pid, s) in enumerate(workers):
                part = ports[i::len(workers)] if cmd == "bind" else ports
                s.sendall((json.dumps({"cmd": cmd, "udp": to_ranges(part)}) + "\n").encode())
            replies = gather("bound" if cmd == "bind" else "released")
            if replies is None:
                stop_workers()
                emit({"ev": "error", "message": "listener worker died"})
                return 2
            if cmd == "release":
                emit({"ev": "released"})
                continue
            got_in_use = sorted(p for m in replies for p in m["in_use_udp"])
            in_use_later.extend(got_in_use)
            errs = {}
            for m in replies:
                errs.update(m["errors"])
            emit({"ev": "bound", "bound_udp": to_ranges(p for m in replies for p in from_ranges(m["bound_udp"])),
                  "in_use_udp": got_in_use, "errors": errs})
        elif cmd == "quit":
            done = stop_workers()
            in_use_udp = sorted(set(in_use_udp) | set(in_use_later))
            # Owners are looked up only now: /proc/net/udp is slow to read while our sockets exist.
            emit({"ev": "done", "peak_rss_kib": peak_rss_kib() + sum(m.get("peak_rss_kib", 0) for m in done),
                  "workers": len(workers),
                  "owners_udp": {str(k): v for k, v in socket_owners(in_use_udp, "udp").items()},
                  "owners_tcp": {str(k): v for k, v in socket_owners(in_use_tcp, "tcp").items()}})
            return code


def local_addresses():
    """IPv4 addresses of this host's interfaces (from /proc/net/fib_trie, best effort)."""
    found = []
    try:
        with open("/proc/net/fib_trie") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return found
    for i, line in enumerate(lines):
        if "/32 host LOCAL" in line and i > 0:
            addr = lines[i - 1].split()[-1]
            if addr not in found and not addr.startswith("127."):
                found.append(addr)
    return found


def main():
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(3))
    line, rest = read_line(0, CONFIG_PREFIX, time.monotonic() + 30)
    if line is None:
        return 2
    cfg = json.loads(line)
    if cfg.get("mode", "listen") == "send":
        # send mode: the prober sends udp_sender.py's text ahead of this one (see ports.agent_source)
        return globals()["send_main"](cfg, rest)
    return listen_main(cfg, rest)


# The bootstrap hands over bytes it already read past the code (normally none) in CONFIG_PREFIX.
CONFIG_PREFIX = globals().get("CONFIG_PREFIX", b"")

if __name__ == "__main__" or globals().get("WIRECHECK_AGENT"):
    sys.exit(main())
