"""Reachability of the Kubernetes API from a vantage point (EXT): TCP connects, the endpoints to try and
the judge that the API is not public.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..k8s import (
    Judgement,
)

# ====================================================================== reachability (EXT)


@dataclass(frozen=True)
class Reach:
    host: str
    port: int
    open: bool
    detail: str


def tcp_reach(host: str, port: int, timeout: float = 3.0) -> Reach:
    """One TCP connect with a timeout: open, refused, unreachable or timed out."""
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return Reach(host, port, True, f"connected in {1000 * (time.monotonic() - start):.0f} ms")
    except TimeoutError:
        return Reach(host, port, False, f"no answer within {timeout:g} s")
    except ConnectionRefusedError:
        return Reach(host, port, False, "connection refused")
    except OSError as exc:
        why = errno.errorcode.get(exc.errno or 0, "") or str(exc)
        return Reach(host, port, False, f"not reachable ({why})")


def api_endpoints(kubeconfig_server: str | None, node_addresses: Sequence[str], port: int) -> list[tuple[str, int]]:
    """The API server addresses to try: the kubeconfig's server URL, and every control-plane address."""
    from urllib.parse import urlsplit

    out: list[tuple[str, int]] = []
    if kubeconfig_server:
        u = urlsplit(kubeconfig_server)
        if u.hostname:
            out.append((u.hostname, u.port or 443))
    for a in node_addresses:
        if (a, port) not in out:
            out.append((a, port))
    return out


def judge_api_not_public(reaches: Sequence[Reach], vantage: str) -> Judgement:
    method = f"TCP connect from {vantage} to the API server address(es)"
    expected = "every connect refused or timed out (API reachable only via VPN/bastion/admin networks)"
    opened = [r for r in reaches if r.open]
    observed = "; ".join(f"{r.host}:{r.port} {r.detail}" for r in reaches) or "no API address known"
    if not reaches:
        return Judgement(False, observed, expected, method, message="no API server address to probe",
                         measurable=False)
    return Judgement(ok=not opened, observed=observed, expected=expected, method=method,
                     message="; ".join(f"the API server answers on {r.host}:{r.port} from {vantage}" for r in opened))


def is_public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return True  # a name: assume it is what the internet sees
