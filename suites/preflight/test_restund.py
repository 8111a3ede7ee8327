"""Calling hosts before the install: restund VMs and SFT nodes (restund.md › Architecture, Amount of users
and file descriptors; installing restund › TLS; sft.md › Firewall rules).

Conditional requirements: without [restund] hosts (or SFT nodes) in the inventory they are not_applicable.
The acceptance suite (suites/acceptance/test_security.py) reuses the helpers here."""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Any

from wirecheck import cannot_measure, expect, fail, not_applicable, record, requirement

# --- CALL-RESTUND-HOSTS ------------------------------------------------------------------------


def restund_address(target) -> str:
    """The address clients use for a restund host: restund_network_interface's address is not known
    before the install, so the inventory's public address (or ansible_host/the target address)."""
    for key in ("restund_public_ip", "public_ip", "restund_peer_udp_advertise_addr", "ansible_host"):
        if target.vars.get(key):
            return str(target.vars[key])
    return target.address


def shared_addresses(site) -> dict[str, list[str]]:
    """Public addresses given to more than one restund host (a load balancer spreading one address)."""
    by: dict[str, list[str]] = {}
    for t in site.targets_with_role("restund"):
        addr = restund_address(t)
        try:
            addr = socket.gethostbyname(addr) if not _is_ip(addr) else addr
        except OSError:
            pass
        by.setdefault(addr, []).append(t.name)
    return {a: names for a, names in by.items() if len(names) > 1}


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@requirement("CALL-RESTUND-HOSTS")
def test_restund_host_can_serve(target, site, spec):
    """Before the install: the kernel lets restund raise its file-descriptor limit far enough
    (LimitNOFILE cannot exceed fs.nr_open), and no two restund hosts share one public address."""
    need = int(spec.min_nofile)
    nr_open = (target.facts.sysctl_ints("fs.nr_open") or [None])[0]
    file_max = (target.facts.sysctl_ints("fs.file-max") or [None])[0]
    if nr_open is None or file_max is None:
        cannot_measure("the kernel has no fs.nr_open / fs.file-max")
    shared = shared_addresses(site)
    record(fs_nr_open=int(nr_open), fs_file_max=int(file_max), address=restund_address(target),
           needed_descriptors=need, note="restund's own limit (LimitNOFILE) is checked after the install")
    expect(int(nr_open), "fs.nr_open (ceiling of a process's open files)", method="/proc/sys/fs/nr_open",
           soft=True).at_least(need)
    expect(int(file_max), "fs.file-max", method="/proc/sys/fs/file-max", soft=True).at_least(need)
    expect(shared, "restund hosts sharing a public address", method="inventory addresses").is_empty(
        "one public address per restund host (no load balancing between restund servers)",
        "; ".join(f"{a} is the address of {', '.join(n)}" for a, n in shared.items()))


# --- TLS-RESTUND-CERT --------------------------------------------------------------------------

def restund_tls_wanted(site) -> bool:
    return any(k.startswith("restund_tls") and v not in (None, "", False) for k, v in site.vars.items())


def _names_match(pattern: str, name: str) -> bool:
    if pattern.startswith("*."):
        return "." in name and name.split(".", 1)[1] == pattern[2:] and fnmatch.fnmatch(name, pattern)
    return pattern.lower() == name.lower()


PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.S)


def inspect_pem(text: str) -> dict[str, Any]:
    """Certificates, whether one private key matches the first certificate, and that certificate's
    DNS names; never the key itself."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pems = [(m.group(1), m.group(0)) for m in PEM_BLOCK.finditer(text)]
    certs = [x509.load_pem_x509_certificate(b.encode()) for kind, b in pems if kind == "CERTIFICATE"]
    keys = [b for kind, b in pems if kind.endswith("PRIVATE KEY")]
    out: dict[str, Any] = {"certificates": len(certs), "private_keys": len(keys), "key_matches": False,
                           "dns_names": [], "not_after": None}
    if certs:
        c = certs[0]
        try:
            san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            out["dns_names"] = san.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            pass
        out["not_after"] = c.not_valid_after_utc.isoformat()
        out["subject"] = c.subject.rfc4514_string()
    if certs and len(keys) == 1:
        pem = keys[0].encode()
        try:
            key = serialization.load_pem_private_key(pem, password=None)
            pub = serialization.PublicFormat.SubjectPublicKeyInfo
            out["key_matches"] = key.public_key().public_bytes(serialization.Encoding.PEM, pub) == \
                certs[0].public_key().public_bytes(serialization.Encoding.PEM, pub)
        except (ValueError, TypeError) as exc:
            out["key_error"] = type(exc).__name__
    return out


def _restund_or_skip(site) -> list:
    hosts = site.targets_with_role("restund")
    if not hosts:
        not_applicable("no [restund] hosts in the inventory: restund VMs are not used")
    return hosts


@requirement("TLS-RESTUND-CERT")
def test_restund_tls_material_placed(site, spec, control):
    hosts = _restund_or_skip(site)
    path = Path(str(spec.pem_path))
    if not path.exists():
        if not restund_tls_wanted(site):
            not_applicable(f"restund TLS is not wanted: no {path} on the control machine and no restund_tls_* "
                           "variable in the inventory")
        fail(f"{path} does not exist on the control machine, but the inventory asks for restund TLS",
             observed="missing", expected=f"{path} with certificate and key", method=f"stat {path}")
    try:
        info = inspect_pem(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as exc:
        fail(f"{path} cannot be read as PEM: {exc}", observed="unreadable", expected="certificate and key")
        raise  # not reached
    mode = oct(os.stat(path).st_mode & 0o777)
    names = [f"{t.name}.{site.domain}" for t in hosts if site.domain and not _is_ip(t.name)]
    uncovered = [n for n in names if not any(_names_match(p, n) for p in info["dns_names"])]
    record(file=str(path), mode=mode, **{k: v for k, v in info.items()}, restund_names=names or None)
    problems = []
    if info["certificates"] < 1:
        problems.append("no certificate in the file")
    if info["private_keys"] != 1:
        problems.append(f"{info['private_keys']} private keys in the file (need exactly one)")
    elif info["certificates"] and not info["key_matches"]:
        problems.append("the private key does not belong to the certificate")
    if uncovered:
        problems.append(f"the certificate's names ({', '.join(info['dns_names']) or 'none'}) do not cover "
                        + ", ".join(uncovered))
    expect(problems, str(path), method=f"PEM parsed on the control machine ({path})").is_empty(
        "one certificate, its key, names covering the restund hosts", "; ".join(problems))


# --- CALL-SFT-FIREWALL -------------------------------------------------------------------------

def is_sft_node(target) -> bool:
    if {"sft", "sftd", "sft_node"} & set(target.roles):
        return True
    labels = target.vars.get("node_labels")
    return "sftd" in str(labels or "")


def parse_ufw(text: str) -> tuple[str, dict[str, str], list[tuple[str, str, str]]]:
    """`ufw status verbose` -> (status, default policies, rules as (to, action, from))."""
    status = "unknown"
    defaults: dict[str, str] = {}
    rules = []
    in_table = False
    for line in text.splitlines():
        if line.startswith("Status:"):
            status = line.split(":", 1)[1].strip()
        elif line.startswith("Default:"):
            for part in line.split(":", 1)[1].split(","):
                m = re.match(r"\s*(\w+) \((\w+)\)", part)
                if m:
                    defaults[m.group(2)] = m.group(1)
        elif line.startswith("--"):
            in_table = True
        elif in_table and line.strip():
            cols = re.split(r"\s{2,}", line.strip())
            if len(cols) >= 3:
                rules.append((cols[0], cols[1], cols[2]))
    return status, defaults, rules


def _ufw_ports(to: str) -> tuple[str | None, list[tuple[int, int]]] | None:
    """'22/tcp', '3478', '32768:60999/udp', '80,443/tcp' -> (proto or None, ranges); None for no port."""
    to = to.replace(" (v6)", "")
    m = re.fullmatch(r"(?:\S+ )?([\d,:]+)(?:/(tcp|udp))?", to)
    if not m:
        return None
    ranges = []
    for part in m.group(1).split(","):
        lo, _, hi = part.partition(":")
        ranges.append((int(lo), int(hi or lo)))
    return m.group(2), ranges


def ufw_allows_in(rules, proto: str, lo: int, hi: int) -> bool:
    covered: list[tuple[int, int]] = []
    for to, action, _src in rules:
        if action != "ALLOW IN" and action != "ALLOW":
            continue
        got = _ufw_ports(to)
        if got and got[0] in (None, proto):
            covered += got[1]
    port = lo
    for a, b in sorted(covered):
        if a <= port <= b:
            port = b + 1
    return port > hi



def sft_firewall(target, spec, site) -> None:
    from suites.preflight.test_network import judge_firewall

    if not is_sft_node(target):
        not_applicable("not an SFT node (no [sft] group and no node_labels wire.com/role=sftd for this host)")
    from suites.preflight.test_ports import port_range

    lo, hi = port_range(spec.udp_range)
    inbound = [("udp", lo, hi)] + [("tcp", int(p), int(p)) for p in spec.tcp_ports]
    outbound = [("udp", lo, hi)]
    problems: list[str] = []
    methods = []
    ufw, how = target.facts.ufw_status()
    ufw_active = ufw is not None and parse_ufw(ufw)[0] == "active"
    if ufw_active:
        # ufw's own chains (conntrack, addrtype, rate limits) are ufw's business: judge its rule list
        methods.append(how)
        _status, defaults, rules = parse_ufw(ufw or "")
        record(ufw_defaults=defaults)
        problems += [f"ufw does not allow {p}/{a}" + (f"-{b}" if b != a else "") + " in"
                     for p, a, b in inbound if not ufw_allows_in(rules, p, a, b)]
        if defaults.get("outgoing") != "allow":
            problems.append(f"ufw default outgoing policy is {defaults.get('outgoing')}")
    record(inbound=[f"{p}/{a}-{b}" if a != b else f"{p}/{a}" for p, a, b in inbound], outbound=f"udp/{lo}-{hi}")
    undecided, probe_words = judge_firewall(target, site, inbound, outbound=outbound, ufw_active=ufw_active,
                                            problems=problems, methods=methods)
    if problems:
        fail("host firewall blocks SFT traffic: " + "; ".join(problems[:12])
             + (f" (+{len(problems) - 12} more)" if len(problems) > 12 else ""),
             observed=problems, expected=f"UDP {lo}-{hi} in and out, TCP {', '.join(map(str, spec.tcp_ports))} in",
             method="; ".join(methods))
    if undecided:
        cannot_measure("cannot judge the SFT node's firewall, and the port probe did not measure it: "
                       + "; ".join(undecided[:6]) + (f" (+{len(undecided) - 6} more)" if len(undecided) > 6 else ""))
    expect(problems, "SFT ports blocked by the host firewall", method="; ".join(methods)).is_empty(
        f"none: UDP {lo}-{hi} in and out, TCP {', '.join(map(str, spec.tcp_ports))} in; {probe_words}")


@requirement("CALL-SFT-FIREWALL")
def test_sft_node_firewall(target, spec, site):
    sft_firewall(target, spec, site)
