"""Ports for the tests' own servers (dnsmasq, nginx, coturn, kube-apiserver, etcd).

A port is taken below the kernel's ephemeral range (32768 up): other tests hold windows of, or the
whole of, 32768-65535 on 0.0.0.0 for the port-reachability checks, and their listener answers every
datagram it gets from the wildcard address. A server port picked from the ephemeral range (as a
`bind(0)` picks it) can be held by such a listener before the server binds it; a query to the server's
127.x address is then answered from 127.0.0.1 (a CI run failed on exactly that). The kernel never
hands out ports below the range on its own, so only another explicit pick can collide, and the port
is checked free for TCP and UDP on the address first.
"""

from __future__ import annotations

import random
import socket

LOW, HIGH = 20000, 30000


def free_port(address: str = "127.0.0.1") -> int:
    """A port in 20000-29999 free for both TCP and UDP on `address`."""
    for port in random.sample(range(LOW, HIGH), 200):
        try:
            with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                t.bind((address, port))
                u.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port on {address} in {LOW}-{HIGH - 1}")
