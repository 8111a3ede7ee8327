"""Send mode of the wirecheck agent: the probe host's side of ``--probe-from``, and the prober's own
sending (imported by ports.py).

Sends the token-tagged datagrams (``udp``, with the ICMP errors that came back; batched with
sendmmsg(2) where the C library has it), TCP connections (``tcp``, staggered attempts per port),
echo round trips (``echo``) and the closed-vs-filtered probes (``classify``) on behalf of the
prober. Closed vs filtered is read from what the kernel reports to ordinary sockets (IP_RECVERR:
ICMP type and code per destination port; a TCP RST), so no raw socket and no root is needed for it.

Standard library only. On a probe host this text is sent ahead of udp_listener.py's (which holds
the shared helpers and the entry point) as one program: it is never copied to disk.
"""

import errno
import json
import os
import select
import socket
import struct
import sys
import time

if __name__ != "wirecheck_agent":   # the prober imports it; as the agent, udp_listener.py's text follows
    from wirecheck.probes.udp_listener import (
        ACK,
        MAGIC,
        emit,
        from_ranges,
        local_addresses,
        make_payload,
        parse_payload,
        peak_rss_kib,
        read_line,
    )



def sender_socket():
    """A UDP socket bound below the usual ephemeral range: when the listener runs on this same host
    it holds every port of 32768-65535, and an unbound socket would find no source port left."""
    import random

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(64):
        try:
            s.bind(("0.0.0.0", random.randint(10000, 32000)))
            return s
        except OSError:
            continue
    return s


def send_udp(address, ports, token, burst, gap, size=0, df=False, icmp=None):
    """One token-tagged datagram per port; ``size`` pads the payload, ``df`` forbids fragmentation.
    With ``icmp`` (a dict), the ICMP errors that came back while sending are noted in it,
    ``{port: [type, code]}``: the first few answers of a REJECT rule, before the target's kernel
    rate-limits them (the socket then reports each once as a send error: that datagram is sent again)."""
    s = sender_socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    if df:
        s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10), getattr(socket, "IP_PMTUDISC_DO", 2))
    if icmp is not None:
        s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    sent = 0
    errors = {}
    ports = list(ports)
    mmsg = sendmmsg_function()
    step = burst or len(ports) or 1
    try:
        for lo in range(0, len(ports), step):
            chunk = ports[lo:lo + step]
            if mmsg is not None:
                n, errs = send_batch(mmsg, s, address, chunk, token, size, retry=icmp is not None)
            else:
                n, errs = send_each(s, address, chunk, token, size, retry=icmp is not None)
            sent += n
            for text, count in errs.items():
                errors[text] = errors.get(text, 0) + count
            if burst and lo + step < len(ports):
                time.sleep(gap)
    finally:
        if icmp is not None:
            for port, itype, code in icmp_errors(s):
                icmp[port] = [itype, code]
        s.close()
    return sent, errors


def send_each(s, address, ports, token, size, retry):
    """sendto() per port; a first failure may be an ICMP error of an earlier datagram, reported once:
    with ``retry`` that datagram is sent again. Returns (sent, {error text: count})."""
    sent = 0
    errors = {}
    for port in ports:
        for again in (retry, False):
            try:
                s.sendto(make_payload(token, port, size), (address, port))
                sent += 1
            except OSError as exc:
                if again:
                    continue
                text = os.strerror(exc.errno) if exc.errno else str(exc)
                errors[text] = errors.get(text, 0) + 1
            break
    return sent, errors


_MMSG = []


def sendmmsg_function():
    """libc's sendmmsg(2) through ctypes, or None (no ctypes, no such function): then sendto per port."""
    if not _MMSG:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.sendmmsg
            fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
            _MMSG.append((fn, ctypes) if struct.calcsize("P") == 8 else None)
        except (ImportError, OSError, AttributeError):
            _MMSG.append(None)
    return _MMSG[0]


def batch_buffers(ctypes, address, ports, token, size):
    """The buffers of one sendmmsg(2) call for ``ports`` (64-bit Linux layout of struct mmsghdr: 64
    bytes, with a sockaddr_in and an iovec of its own per datagram): (headers, [buffers to keep]).

    Every datagram has the same length: make_payload's text with the port zero-padded to the widest
    port's digits (parse_payload reads it the same), so each buffer is filled a column at a time by
    slice assignment, not a datagram at a time (32,768 datagrams: 35 ms of this machine's CPU before, 15 ms now)."""
    from array import array

    n = len(ports)
    width = len(str(max(ports)))
    head = b"%s%s:" % (MAGIC, token)
    length = max(size, len(head) + width + 1)
    data = bytearray(b"x") * (length * n)
    for j, byte in enumerate(head):
        data[j::length] = bytes((byte,)) * n
    same_width = min(ports) >= 10 ** (width - 1)          # e.g. 32768-65535: no padding to add
    digits = ("".join(map(str, ports)) if same_width else "".join([str(p).zfill(width) for p in ports])).encode()
    for k in range(width):
        data[len(head) + k::length] = digits[k::width]
    data[len(head) + width::length] = b":" * n
    big_endian = array("H", ports)
    if sys.byteorder == "little":
        big_endian.byteswap()
    port_bytes = big_endian.tobytes()
    names = bytearray(16 * n)
    for j, byte in enumerate(struct.pack("=H", socket.AF_INET) + b"\0\0" + socket.inet_aton(address)):
        names[j::16] = bytes((byte,)) * n
    names[2::16] = port_bytes[0::2]
    names[3::16] = port_bytes[1::2]
    at_data = ctypes.addressof((ctypes.c_char * len(data)).from_buffer(data))
    at_names = ctypes.addressof((ctypes.c_char * len(names)).from_buffer(names))
    iovs = array("Q", bytes(16 * n))
    iovs[0::2] = array("Q", range(at_data, at_data + length * n, length))
    iovs[1::2] = array("Q", [length]) * n
    at_iovs = ctypes.addressof((ctypes.c_char * (16 * n)).from_buffer(iovs))
    hdrs = array("Q", bytes(64 * n))
    hdrs[0::8] = array("Q", range(at_names, at_names + 16 * n, 16))
    hdrs[1::8] = array("Q", [16 if sys.byteorder == "little" else 16 << 32]) * n    # msg_namelen (u32)
    hdrs[2::8] = array("Q", range(at_iovs, at_iovs + 16 * n, 16))
    hdrs[3::8] = array("Q", [1]) * n
    return hdrs, [data, names, iovs]


def send_batch(mmsg, s, address, ports, token, size, retry):
    """One sendmmsg(2) call for ``ports`` (buffers: batch_buffers), as send_each: one system call instead
    of one per datagram. A failed datagram stops the call there; it is sent again once when ``retry``."""
    fn, ctypes = mmsg
    n = len(ports)
    if not n:
        return 0, {}
    hdrs, keep = batch_buffers(ctypes, address, ports, token, size)
    sent = done = 0
    errors = {}
    retried = -1
    fd, base = s.fileno(), ctypes.addressof((ctypes.c_char * (64 * n)).from_buffer(hdrs))
    while done < n:
        r = fn(fd, base + 64 * done, n - done, 0)
        if r > 0:
            done += r
            sent += r
            continue
        err = ctypes.get_errno()
        if retry and retried != done:       # perhaps an ICMP error of an earlier datagram, reported once
            retried = done
            continue
        text = os.strerror(err) if err else "sendmmsg failed"
        errors[text] = errors.get(text, 0) + 1
        done += 1
    del keep
    return sent, errors


def send_udp_parallel(address, ports, token, burst, gap, size=0, df=False, threads=2, icmp=None):
    """send_udp from ``threads`` threads (the kernel's share of the work then uses several CPUs)."""
    ports = list(ports)
    if threads <= 1 or len(ports) < 4096:
        return send_udp(address, ports, token, burst, gap, size, df, icmp)
    import threading

    step = -(-len(ports) // threads)
    results = []

    def run(chunk):
        results.append(send_udp(address, chunk, token, burst, gap, size, df, icmp))

    workers = [threading.Thread(target=run, args=(ports[i:i + step],)) for i in range(0, len(ports), step)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    errors = {}
    for _sent, errs in results:
        for text, count in errs.items():
            errors[text] = errors.get(text, 0) + count
    return sum(r[0] for r in results), errors


def udp_echo(address, ports, token, timeout, tries=3):
    """Round trip to ports whose listener echoes: {port: True if the echo came back}."""
    s = sender_socket()
    got = {p: False for p in ports}
    try:
        for _ in range(tries):
            waiting = [p for p in ports if not got[p]]
            if not waiting:
                break
            for port in waiting:
                try:
                    s.sendto(make_payload(token, port), (address, port))
                except OSError:
                    pass
            end = time.monotonic() + timeout / tries
            while time.monotonic() < end and not all(got.values()):
                r, _w, _x = select.select([s], [], [], max(0.0, end - time.monotonic()))
                if not r:
                    break
                try:
                    data = s.recv(2048)
                except OSError:
                    continue
                if data.startswith(ACK):
                    meant = parse_payload(data[len(ACK):], token)
                    if meant in got:
                        got[meant] = True
    finally:
        s.close()
    return got


#: ICMP errors the kernel reports on a socket (IP_RECVERR): closed vs filtered without raw sockets
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
SO_EE_ORIGIN_ICMP = 2
ICMP_TEXT = {
    0: "net unreachable",
    1: "host unreachable",
    3: "port unreachable",
    9: "net administratively prohibited",
    10: "host administratively prohibited",
    13: "communication administratively prohibited",
}
OPEN = "open"
CLOSED = "closed"
FILTERED_REJECTED = "filtered (rejected)"
FILTERED_DROPPED = "filtered (dropped: no reply)"
NO_REPLY = "no reply (dropped by a firewall, or a service that ignores the probe)"


def icmp_verdict(itype, code):
    """``closed (ICMP port unreachable)`` (nothing listens, or a REJECT that mimics it), else
    ``filtered (rejected) (ICMP ...)``."""
    if itype == 3 and code == 3:
        return CLOSED + " (ICMP port unreachable)"
    if itype == 3:
        return f"{FILTERED_REJECTED} (ICMP {ICMP_TEXT.get(code, f'code {code}')})"
    return f"{FILTERED_REJECTED} (ICMP type {itype} code {code})"


def icmp_errors(s):
    """The ICMP errors the kernel queued on ``s`` (IP_RECVERR): [(destination port of the packet that
    caused it, ICMP type, ICMP code)]. Never blocks."""
    out = []
    for _ in range(256):
        try:
            _data, anc, _flags, addr = s.recvmsg(64, 512, socket.MSG_ERRQUEUE)
        except OSError:
            break
        for level, kind, data in anc:
            if level == socket.IPPROTO_IP and kind == IP_RECVERR and len(data) >= 7:
                _err, origin, itype, code = struct.unpack_from("=IBBB", data)
                if origin == SO_EE_ORIGIN_ICMP:
                    out.append((addr[1] if addr else None, itype, code))
    return out


def classify_udp(address, ports, wait, copies=2, gap=0.05):
    """Closed vs filtered for UDP ``ports`` from what comes back: ``copies`` datagrams per port
    (``gap`` apart), then one ``wait`` for all. Per port: ``closed (ICMP port unreachable)``,
    ``filtered (rejected) (ICMP ...)``, ``open (answered)`` or ``no reply ...``. The kernel reports the
    ICMP errors (IP_RECVERR), so this needs no root and no raw socket. ICMP errors are rate-limited
    by the target's kernel (about 6 back to back, then 1 per second per peer): classify samples."""
    ports = sorted(set(ports))
    out = {}
    if not ports:
        return out
    s = sender_socket()
    s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    s.setblocking(False)

    def take(until):
        while True:
            for port, itype, code in icmp_errors(s):
                if port in ports and port not in out:
                    out[port] = icmp_verdict(itype, code)
            while True:
                try:
                    _data, addr = s.recvfrom(2048)
                except BlockingIOError:
                    break
                except OSError:  # an ICMP error pending on the socket: it is on the error queue too
                    continue
                if addr[0] == address and addr[1] in ports and addr[1] not in out:
                    out[addr[1]] = OPEN + " (answered)"
            left = until - time.monotonic()
            if left <= 0 or len(out) == len(ports):
                return
            select.select([s], [], [], min(left, 0.05))

    try:
        for copy in range(copies):
            if copy:
                take(time.monotonic() + gap)
            for port in ports:
                if port in out:
                    continue
                for _try in range(4):
                    try:
                        s.sendto(b"wirecheck-classify", (address, port))
                        break
                    except OSError:  # the error of an earlier ICMP answer, reported here once
                        continue
        take(time.monotonic() + wait)
    finally:
        s.close()
    for port in ports:
        out.setdefault(port, NO_REPLY)
    return out


def connect_tcp(address, ports, token, timeout, quiet=(), banner_wait=1.0, attempts=3, stagger=0.25):
    """Non-blocking connects to every port at once; returns {port: [state, seconds, detail, verdict]}.

    Loss is not a blocked port: a port that has not answered gets a new connection attempt from
    another source port every ``stagger`` seconds (``attempts`` in all, within ``timeout``), beside
    the kernel's own SYN retransmission, so a timeout means several SYNs all went unanswered. The
    first attempt that connects or is refused decides. ``verdict`` is closed vs filtered from what
    came back: ``open (SYN/ACK)``, ``closed (RST)``, the ICMP error (IP_RECVERR) or
    ``filtered (dropped: no reply)``.
    The token goes to our listener's ports only; on ``quiet`` ports (an existing service) we just
    read what the service says first (an SSH banner, say) for up to ``banner_wait`` seconds.
    """
    import selectors

    sel = selectors.DefaultSelector()
    started = time.monotonic()
    deadline = started + timeout
    result = {}
    tried = {port: 0 for port in ports}
    connecting = {}  # socket -> port
    reading = {}  # socket -> [port, bytes read, banner deadline]

    def attempt(port):
        tried[port] += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        s.setblocking(False)
        rc = s.connect_ex((address, port))
        if rc not in (0, errno.EINPROGRESS):
            if not any(p == port for p in connecting.values()):
                result[port] = [state_for_errno(rc), 0.0, os.strerror(rc), ""]
            s.close()
            return
        connecting[s] = port
        sel.register(s, selectors.EVENT_WRITE, port)

    def drop_attempts(port):
        for s in [s for s, p in connecting.items() if p == port]:
            sel.unregister(s)
            del connecting[s]
            s.close()  # still in SYN-SENT: nothing is sent; a late SYN/ACK gets the kernel's RST

    def finish(s):
        port = reading.pop(s)[0]
        sel.unregister(s)
        close_abortive(s)
        return port

    for port in ports:
        attempt(port)
    while connecting or reading:
        now = time.monotonic()
        for s in [s for s, st in reading.items() if st[2] <= now]:
            st = reading[s]
            result[st[0]][2] = first_line(st[1]) or "connected, no reply"
            finish(s)
        if now >= deadline:
            break
        # the next attempt of each port still waiting (another source port, ``stagger`` after the last)
        waiting = set(connecting.values())
        due = {p: started + stagger * tried[p] for p in waiting if tried[p] < attempts}
        if any(t <= now for t in due.values()):
            for port, t in sorted(due.items()):
                if t <= now:
                    attempt(port)
            continue
        times = [st[2] for st in reading.values()] + [t for t in due.values() if t < deadline]
        if connecting:
            times.append(deadline)
        if not times:
            break
        left = max(0.0, min(times) - now)
        for key, _ev in sel.select(left):
            s = key.fileobj
            port = key.data
            took = round(time.monotonic() - started, 4)
            if s in connecting:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                sel.unregister(s)
                del connecting[s]
                if err:
                    icmp = icmp_errors(s)
                    s.close()
                    if port in result:
                        continue
                    if icmp:
                        verdict = icmp_verdict(icmp[0][1], icmp[0][2])
                    elif err == errno.ECONNREFUSED:
                        verdict = CLOSED + " (RST)"
                    else:
                        verdict = ""
                    result[port] = [state_for_errno(err), took, os.strerror(err), verdict]
                    drop_attempts(port)
                    continue
                if port in result:  # another attempt of this port connected first
                    close_abortive(s)
                    continue
                drop_attempts(port)
                if port not in quiet:
                    try:
                        s.send(make_payload(token, port))
                    except OSError:
                        pass
                reading[s] = [port, b"", time.monotonic() + banner_wait]
                sel.register(s, selectors.EVENT_READ, port)
                result[port] = ["open", took, "connected", OPEN + " (SYN/ACK)"]
            elif s in reading:
                try:
                    data = s.recv(512)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                st = reading[s]
                st[1] += data
                if not data or b"\n" in st[1] or len(st[1]) >= 256:
                    result[port][2] = first_line(st[1]) or "connected, no reply"
                    finish(s)
    for s, port in list(connecting.items()):
        sel.unregister(s)
        s.close()
        if port not in result:
            n = tried[port]
            result[port] = ["timed out", round(timeout, 4),
                            f"no answer within {timeout:.1f} s ({n} connection attempt{'s' if n > 1 else ''})",
                            FILTERED_DROPPED]
    for s, st in list(reading.items()):
        result[st[0]][2] = first_line(st[1]) or "connected, no reply"
        finish(s)
    sel.close()
    return result


def close_abortive(s):
    """Close with RST (SO_LINGER 0): the probe leaves no TIME-WAIT socket behind on either side."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def first_line(data):
    return data.split(b"\n", 1)[0].decode("ascii", "replace").strip()


def state_for_errno(err):
    if err == errno.ECONNREFUSED:
        return "refused"
    if err in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM):
        return "unreachable"
    if err == errno.ETIMEDOUT:
        return "timed out"
    return "error"


def send_main(cfg, buf=b""):
    deadline = time.monotonic() + float(cfg.get("deadline", 60))
    token = cfg["token"].encode()
    emit({"ev": "ready", "pid": os.getpid(), "addresses": local_addresses()})
    while True:
        line, buf = read_line(0, buf, deadline)
        if line is None:
            return 0
        msg = json.loads(line)
        cmd = msg.get("cmd")
        if cmd == "udp":
            t0 = time.monotonic()
            icmp = {} if msg.get("icmp") else None
            sent, errors = send_udp_parallel(msg["address"], from_ranges(msg["ports"]), token,
                                    int(msg.get("burst", 0)), float(msg.get("gap", 0)), int(msg.get("size", 0)),
                                    bool(msg.get("df")), icmp=icmp)
            emit({"ev": "sent", "sent": sent, "errors": errors, "seconds": time.monotonic() - t0,
                  "icmp": {str(k): v for k, v in (icmp or {}).items()}})
        elif cmd == "echo":
            res = udp_echo(msg["address"], [int(p) for p in msg["ports"]], token, float(msg["timeout"]))
            emit({"ev": "echo", "result": {str(k): v for k, v in res.items()}})
        elif cmd == "tcp":
            res = connect_tcp(msg["address"], [int(p) for p in msg["ports"]], token, float(msg["timeout"]),
                              [int(p) for p in msg.get("quiet", [])], attempts=int(msg.get("attempts", 3)),
                              stagger=float(msg.get("stagger", 0.25)))
            emit({"ev": "tcp", "result": {str(k): v for k, v in res.items()}})
        elif cmd == "classify":
            res = classify_udp(msg["address"], [int(p) for p in msg["ports"]], float(msg["wait"]))
            emit({"ev": "classified", "result": {str(k): v for k, v in res.items()}})
        elif cmd == "quit":
            emit({"ev": "done", "peak_rss_kib": peak_rss_kib()})
            return 0
