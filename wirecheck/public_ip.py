"""The public address of a Wire-in-a-Box node when ``wire_ip`` is empty, found as Wire's playbook finds it.

wire-server-deploy's ``ansible/wiab-demo/verify_wire_ip.yml`` (run by ``deploy_wiab.yml`` whatever the
tags) does, for ``wire_ip`` undefined or ``""``:

1. read ``{{ ansible_user_dir }}/wire_vars/wire_ip`` on the deploy node, kept from an earlier run;
2. else ask ``https://api.ipify.org`` *from the deploy node* (``uri`` module, 3 retries) for the
   node's public address, then check that TCP 3478 on that address reaches a temporary listener on
   the node (``nc``, from the control machine) -- and stop the whole deployment when it does not.

wirecheck does step 1 and step 2's question the same way (from the node, ``--public-ip-url``, bounded
by ``--public-ip-timeout``); the reachability half is DEMO-NET-WIRE-IP's port probe.  An address that
cannot be determined is a finding (the playbook would stop), a node that cannot be reached is not a
measurement.  Determined once per run (shared with the xdist workers through the run directory).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import threading
from dataclasses import asdict, dataclass

from .transport import TransportError, file_lock, shared_dir

DEFAULT_URL = "https://api.ipify.org"
DEFAULT_TIMEOUT = 10.0
WIRE_IP_FILE = "wire_vars/wire_ip"      # under the login user's home (ansible_user_dir)


@dataclass
class PublicIp:
    """What is known of the address clients use: ``address`` and where it came from, or why not."""

    address: str | None
    source: str            # "--wire-ip", "inventory wire_ip", "~/wire_vars/wire_ip on NODE", "URL from NODE"
    problem: str = ""      # the address cannot be determined (a finding)
    unmeasured: str = ""   # the node could not be asked (not a finding: an error)

    @property
    def known(self) -> bool:
        return self.address is not None


_CACHE: dict[str, PublicIp] = {}
_LOCK = threading.Lock()


def _ipv4(text: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        return None


def ask_node(target, url: str = DEFAULT_URL, timeout: float = DEFAULT_TIMEOUT) -> PublicIp:
    """Steps 1 and 2 of verify_wire_ip.yml on ``target`` (no cache)."""
    node = target.name
    try:
        kept = target.run(f'cat -- "$HOME"/{WIRE_IP_FILE} 2>/dev/null', timeout=10)
        if kept.rc == 0 and _ipv4(kept.stdout):
            return PublicIp(_ipv4(kept.stdout), f"~/{WIRE_IP_FILE} on {node} (kept by an earlier deploy_wiab run)")
        q = shlex.quote(url)
        t = f"{timeout:g}"
        res = target.run(
            f"if command -v curl >/dev/null 2>&1; then curl -fsS --max-time {t} {q}; "
            f"elif command -v wget >/dev/null 2>&1; then wget -q -O - -T {t} -t 1 {q}; "
            "else echo 'neither curl nor wget on the node' >&2; exit 127; fi", timeout=timeout + 10)
    except TransportError as exc:
        return PublicIp(None, f"{url} from {node}", unmeasured=f"cannot ask {node}: {exc}")
    if res.rc in (126, 127):          # the shell could not run the command at all: nothing was asked
        why = (res.stderr.strip().splitlines() or [f"exit {res.rc}"])[-1][:200]
        return PublicIp(None, f"{url} from {node}", unmeasured=f"{node} could not ask {url}: {why}")
    found = _ipv4(res.stdout)
    if res.rc == 0 and found:
        return PublicIp(found, f"{url} from {node}")
    why = (res.stderr.strip().splitlines() or [f"exit {res.rc}"])[-1][:200] if res.rc != 0 else \
        f"the answer {res.stdout.strip()[:80]!r} is not an IPv4 address"
    return PublicIp(None, f"{url} from {node}",
                    problem=f"wire_ip is empty and {node} cannot determine its public address: {url} "
                            f"within {timeout:g} s: {why}; Wire's verify_wire_ip.yml stops the deployment "
                            "here. Set wire_ip in the inventory to the address clients reach the node on")


def effective_wire_ip(site) -> PublicIp:
    """The address DNS and the port probes compare against: --wire-ip / the inventory's wire_ip, else (demo)
    what the deploy node determines as Wire's playbook would.  Once per run."""
    if site.wire_ip:
        return PublicIp(site.wire_ip, "--wire-ip" if site.option("wire_ip") else "inventory wire_ip")
    if site.profile != "demo":
        return PublicIp(None, "", unmeasured="the ingress IP is not known (supply it with --wire-ip)")
    nodes = [t for t in site.targets if "deploy_node" in t.roles]
    if not nodes:
        return PublicIp(None, "", unmeasured="no deploy_node target to determine wire_ip from "
                                             "(supply it with --wire-ip)")
    node = nodes[0]
    url = str(site.option("public_ip_url") or os.environ.get("WIRECHECK_PUBLIC_IP_URL") or DEFAULT_URL)
    timeout = float(site.option("public_ip_timeout") or DEFAULT_TIMEOUT)
    key = f"{node.name}|{url}"
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        store = shared_dir()
        path = os.path.join(store, "public-ip-" + "".join(c if c.isalnum() else "_" for c in key)[:100]) \
            if store else None
        lock = file_lock(path + ".lock") if path else contextlib.nullcontext()
        with lock:
            if path and os.path.exists(path):
                with open(path, encoding="utf-8") as fh:
                    found = PublicIp(**json.load(fh))
            else:
                found = ask_node(node, url, timeout)
                if path and not found.unmeasured:
                    with open(path, "w", encoding="utf-8") as fh:
                        json.dump(asdict(found), fh)
        _CACHE[key] = found
        return found
