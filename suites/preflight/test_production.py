"""Production hosts and fleet (planning.md › Production installation, vm-table, ansible-VMs.md,
docs_ubuntu_22.04.md, wire-server-deploy ansible/inventory/offline/99-static).

Targets come from the operator's INI inventory: its groups are the roles (cassandra, minio,
elasticsearch, kube-node/kube-master/k8s-cluster, etcd, restund, postgresql, assethost, admin).
Host checks take ``target`` (one xdist group per host: one SSH connection per host); fleet checks
take ``site`` and fan out over the inventory with a thread pool.

Sizing rules (PROD-VM-*): the docs' table says "GB"; hypervisors allocate VM memory and disks in
binary units, so "4 GB" is read as 4 GiB, and a tolerance (catalog ``memory_tolerance_pct``,
``disk_tolerance_pct``) covers what the kernel reserves (MemTotal of a 4 GiB VM is ~3.8 GiB) and
file-system overhead. A host in several sized groups is held to the **sum** of their rows: the
docs size one VM per component, and their per-physical-server totals (PROD-PHYS-SERVERS: 11 cores
/ 18 GB / 590 GB) are sums of the rows, so a VM that carries two components must carry both loads.
Kubernetes groups (kube-master, kube-node, k8s-cluster) are one row; etcd has no allocation of its
own; cassandra_seed and elasticsearch_master are subsets of their groups.

This module also holds the measuring code the acceptance suite re-runs (suites/acceptance/test_production.py).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import re
import select
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any

from wirecheck import cannot_measure, expect, not_applicable, not_evaluated, record, requirement, sizing
from wirecheck.catalog import default_catalog
from wirecheck.coordination import register_commands, register_fleet_commands
from wirecheck.fleet import machines
from wirecheck.machines import Machine, count_machines, machine_of, merged_names
from wirecheck.outcome import Outcome
from wirecheck.pyjobs import PyJob, register_fleet_jobs, run_job
from wirecheck.transport import TransportError

GIB = 1024**3
KIB_PER_GIB = 1024**2
K8S_GROUPS = ("kube-node", "kube-master", "k8s-cluster")
# inventory group -> (component, the requirement holding its row of the sizing table)
SIZED = {
    "cassandra": ("cassandra", "PROD-VM-CASSANDRA"),
    "minio": ("minio", "PROD-VM-MINIO"),
    "elasticsearch": ("elasticsearch", "PROD-VM-ELASTICSEARCH"),
    "kube-node": ("kubernetes", "PROD-VM-KUBERNETES"),
    "kube-master": ("kubernetes", "PROD-VM-KUBERNETES"),
    "k8s-cluster": ("kubernetes", "PROD-VM-KUBERNETES"),
    "restund": ("restund", "PROD-VM-RESTUND"),
    "admin": ("admin", "PROD-VM-ADMIN"),
    "assethost": ("assethost", "PROD-VM-ASSET"),
    "postgresql": ("postgresql", "PROD-VM-POSTGRESQL"),
}
SIZING_RULE = ("a host in several groups must carry the sum of their table rows (the docs size one VM per "
               "component; their per-server totals are sums of the rows)")
UNIT_RULE = ("the table's GB read as GiB (hypervisors allocate in binary units); MemTotal may fall short by "
             "{m}% (kernel reservations), file systems by {d}% (file-system overhead)")


class MustBroken(Outcome, AssertionError):
    """A MUST part of a requirement whose catalog level is SHOULD is broken: fail, whatever the level."""

    status = "fail"


# --- helpers ---------------------------------------------------------------------------------------

def params(site, rid: str) -> dict[str, Any]:
    """A requirement's catalog parameters with the run's --param overrides applied."""
    return {**default_catalog()[rid].params, **site.overrides.get(rid, {})}


def data_paths(site) -> tuple[str, ...]:
    return tuple(sorted({str(params(site, rid)["data_path"]) for _, rid in SIZED.values()}))


def snapshot(target, site) -> dict[str, Any]:
    return target.facts.host_snapshot(data_paths(site))


def net_snapshot(target, site) -> dict[str, Any]:
    """The snapshot, for checks that read the host's addresses (which need `ip` from iproute2)."""
    snap = snapshot(target, site)
    if snap.get("ip_missing"):
        cannot_measure("`ip -j addr` printed nothing on the host (is iproute2 installed?)")
    return snap


def node_address(t) -> str:
    """The address other machines use to talk to this one: `ip=` (99-static), else ansible_host."""
    return str(t.vars.get("ip") or t.address)


def components_of(roles) -> dict[str, str]:
    """Sized components of a host: component -> requirement ID."""
    return {SIZED[r][0]: SIZED[r][1] for r in roles if r in SIZED}


def fan_out(targets, fn: Callable[[Any], Any], workers: int = 16) -> dict[str, Any]:
    """fn(target) for every target in parallel; a target that cannot be reached maps to its TransportError."""
    def one(t):
        try:
            return fn(t)
        except (TransportError, Outcome) as exc:
            return exc
    targets = list(targets)
    if not targets:
        return {}
    with ThreadPoolExecutor(max_workers=min(workers, len(targets))) as pool:
        return dict(zip([t.name for t in targets], pool.map(one, targets), strict=True))


def unreachable(results: dict[str, Any]) -> list[str]:
    return [f"{name}: {res}" for name, res in results.items() if isinstance(res, Exception)]


def release_list(value: Any) -> list[str]:
    """Accepted releases from the catalog, an inventory list or a comma-separated --param."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = str(value).split(",")
    out = []
    for v in items:
        out.append(f"{v:.2f}" if isinstance(v, float) else str(v).strip())
    return [v for v in out if v]


# --- PROD-VM-*: sizing per role ----------------------------------------------------------------------

def record_machine(m: Machine) -> None:
    record(machine={"names": m.names, "identified_by": m.identity.how, "roles": sorted(m.roles)})
    if m.merged:
        record(merged_names=f"{', '.join(m.names)} are one machine ({m.identity.how}): it carries the roles of "
                            "all these names")


def sizing_roles(site, target) -> tuple[list[str], Machine | None]:
    """The roles a host's machine carries: those of every inventory name that is the same machine."""
    sized = [t for t in site.targets if components_of(t.roles)] if target in site.targets else []
    if target not in sized:
        sized.append(target)
    m = machine_of(target.name, machines(site, sized))
    record_machine(m)
    return sorted(m.roles), m


def judge_size(site, rid: str, roles, snap: dict[str, Any]) -> None:
    """Cores, memory and disk of one machine against the sum of the rows of its sized components,
    compared exactly in the measured unit (cores, KiB, bytes) less the catalog's stated allowance."""
    comps = components_of(roles)
    if rid not in comps.values():   # the control machine checked as the admin host
        comps = {"admin": rid}
    rows = {c: params(site, r) for c, r in comps.items()}
    mine = params(site, rid)
    mem_tol, disk_tol = mine["memory_tolerance_pct"], mine["disk_tolerance_pct"]
    need_cores = sum(int(p["cores"]) for p in rows.values())
    need_gib = sum(Fraction(str(p["memory_gb"])) for p in rows.values())
    record(components={c: {"cores": p["cores"], "memory_GiB": p["memory_gb"], "disk_GiB": p["disk_gb"],
                           "data_path": p["data_path"]} for c, p in rows.items()},
           colocation_rule=SIZING_RULE if len(rows) > 1 else "one component on this host",
           units=UNIT_RULE.format(m=mem_tol, d=disk_tol))
    combo = "+".join(rows)
    cores = snap["cpu"]
    if isinstance(cores, Exception):
        raise cores
    if cores.detail:
        record(cpu_limits=cores.detail["limits"])
    expect(cores.value, f"CPU cores for {combo}", method=cores.method, soft=True).at_least(need_cores)
    kib = snap["meminfo"].get("MemTotal")
    if kib is None:
        cannot_measure("/proc/meminfo on the host has no MemTotal line")
    floor = sizing.with_allowance(sizing.gib_in_kib(need_gib), mem_tol)
    floor_kib = math.ceil(floor)
    record(memory={"MemTotal_KiB": kib, "need_GiB": float(need_gib), "floor_KiB": floor_kib})
    shown = f"{sizing.gib_text(kib, sizing.KIB_PER_GIB)} GiB"
    expect(kib, "memory", method="/proc/meminfo MemTotal", unit="KiB", soft=True).satisfies(
        lambda k: sizing.at_least(k, floor),
        f">= {float(need_gib):g} GiB for {combo} (MemTotal >= {floor_kib:,} KiB)",
        f"memory: {shown} MemTotal ({kib:,} KiB), need {float(need_gib):g} GiB for {combo} "
        f"(MemTotal >= {floor_kib:,} KiB = {sizing.gib_text(floor, sizing.KIB_PER_GIB, up=True)} GiB with the "
        f"{float(mem_tol):g}% kernel allowance)")
    by_mount: dict[str, dict[str, Any]] = {}
    for comp, p in rows.items():
        du = snap["disks"].get(str(p["data_path"]))
        if du is None:
            cannot_measure(f"df did not report the file system holding {p['data_path']} on the host")
        fs = by_mount.setdefault(du.mount, {"size_bytes": du.size, "size_GiB": round(du.size / GIB, 1),
                                            "source": du.source, "holds": [], "need_GiB": Fraction(0)})
        fs["holds"].append(f"{comp} {p['data_path']}")
        fs["need_GiB"] += Fraction(str(p["disk_gb"]))
    for mount, fs in by_mount.items():
        need = fs["need_GiB"]
        dfloor = sizing.with_allowance(sizing.gib_in_bytes(need), disk_tol)
        fs["need_GiB"], fs["floor_bytes"] = float(need), math.ceil(dfloor)
        expect(fs["size_bytes"], f"disk {mount}", method="df -B1", unit="bytes", soft=True).satisfies(
            lambda b, dfloor=dfloor: sizing.at_least(b, dfloor),
            f">= {float(need):g} GiB ({', '.join(fs['holds'])}; size >= {math.ceil(dfloor):,} bytes)",
            f"disk: file system {mount} holding {', '.join(fs['holds'])} is "
            f"{sizing.gib_text(fs['size_bytes'], sizing.BYTES_PER_GIB, places=1)} GiB ({fs['size_bytes']:,} bytes), "
            f"need {float(need):g} GiB (>= {math.ceil(dfloor):,} bytes = "
            f"{sizing.gib_text(dfloor, sizing.BYTES_PER_GIB, places=1, up=True)} GiB with the "
            f"{float(disk_tol):g}% file-system allowance)")
    record(filesystems=by_mount)


def size_check(target, site, rid: str) -> None:
    snap = snapshot(target, site)
    roles, _ = sizing_roles(site, target)
    judge_size(site, rid, roles, snap)


@requirement("PROD-VM-CASSANDRA")
def test_vm_size_cassandra(target, site):
    size_check(target, site, "PROD-VM-CASSANDRA")


@requirement("PROD-VM-MINIO")
def test_vm_size_minio(target, site):
    size_check(target, site, "PROD-VM-MINIO")


@requirement("PROD-VM-ELASTICSEARCH")
def test_vm_size_elasticsearch(target, site):
    size_check(target, site, "PROD-VM-ELASTICSEARCH")


@requirement("PROD-VM-KUBERNETES")
def test_vm_size_kubernetes(target, site):
    size_check(target, site, "PROD-VM-KUBERNETES")


@requirement("PROD-VM-RESTUND")
def test_vm_size_restund(target, site):
    size_check(target, site, "PROD-VM-RESTUND")


@requirement("PROD-VM-ADMIN")
def test_vm_size_admin(target, site):
    size_check(target, site, "PROD-VM-ADMIN")


@requirement("PROD-VM-ASSET")
def test_vm_size_asset(target, site):
    size_check(target, site, "PROD-VM-ASSET")


@requirement("PROD-VM-POSTGRESQL")
def test_vm_size_postgresql(target, site):
    size_check(target, site, "PROD-VM-POSTGRESQL")


@requirement("PROD-VM-ADMIN")
def test_vm_size_admin_is_control(site, control):
    """Without an [admin] group the control machine running wirecheck is the admin host."""
    if site.targets_with_role("admin"):
        not_applicable("the inventory names an [admin] host; it is checked there")
    record(admin_host="the control machine (no [admin] group in the inventory)")
    judge_size(site, "PROD-VM-ADMIN", ["admin"], snapshot(control, site))


# --- operating system and host basics ----------------------------------------------------------------

def judge_os(osr: dict[str, str], accepted: list[str], spec, source: str, today: dt.date) -> None:
    vid, distro = osr.get("VERSION_ID", ""), osr.get("ID", "")
    name = osr.get("PRETTY_NAME") or f"{distro} {vid}"
    eos = dict(spec.end_of_standard_support or {})
    record(os_release={k: osr.get(k) for k in ("ID", "VERSION_ID", "VERSION_CODENAME", "PRETTY_NAME")},
           accepted_releases=accepted, accepted_from=source)
    ended = eos.get(vid)
    note = ""
    if ended and dt.date.fromisoformat(str(ended)) <= today:
        note = f"; Ubuntu {vid} is past its end of standard support ({ended})"
        record(end_of_standard_support=f"Ubuntu {vid}: standard support ended {ended}")
    expect((distro, vid), "operating system", method="/etc/os-release").satisfies(
        lambda o: o[0] == spec.distro and o[1] in accepted, f"{spec.distro} {' or '.join(accepted)}",
        f"{name} (ID={distro}, VERSION_ID={vid}), need {spec.distro} {' or '.join(accepted)} ({source}){note}")


@requirement("PROD-OS")
def test_os_release(target, site, spec):
    site_value = target.vars.get(spec.site_var) or site.vars.get(spec.site_var)
    if "accepted" in site.overrides.get("PROD-OS", {}):
        accepted, source = release_list(spec.accepted), "--param PROD-OS.accepted"
    elif site_value:
        accepted, source = release_list(site_value), f"inventory {spec.site_var}"
    else:
        accepted, source = release_list(spec.accepted), "catalog default (the offline bundle is built for jammy)"
    judge_os(snapshot(target, site)["os_release"], accepted, spec, source, dt.date.today())


@requirement("IMP-ARCH-PROD")
def test_architecture(target, site, spec):
    arch = snapshot(target, site)["arch"]
    expect(arch.value, "architecture", method=arch.method).equals(spec.arch)


@requirement("PROD-GPG")
def test_gpg(target, site, spec):
    found = snapshot(target, site)["gpg"]
    record(gpg=found)
    expect(found or "", "gpg", method="gpg --version").is_true(   # "" (snapshot ran, printed nothing): absent
        "gpg installed", f"{spec.program} is not installed on the host (gpg --version failed)")


@requirement("IMP-SWAP-OFF")
def test_swap_off(target, site):
    swaps = snapshot(target, site)["swaps"]
    active = [f"{s[0]} ({s[1]}, {int(s[2]) // 1024} MiB)" for s in swaps if len(s) >= 3 and s[2].isdigit()]
    expect(active, "active swap", method="/proc/swaps").is_empty(
        "no swap", "swap is on: " + ", ".join(active))


def _module_loaded(snap: dict[str, Any], name: str) -> tuple[bool, str]:
    if name in snap["modules"]:
        return True, f"/sys/module/{name}"
    if name == "br_netfilter" and "net.bridge.bridge-nf-call-iptables" in snap["sysctl"]:
        return True, "/proc/sys/net/bridge/bridge-nf-call-iptables exists (br_netfilter active)"
    return False, f"/sys/module/{name} missing"


@requirement("IMP-KMOD-SYSCTL")
def test_kernel_modules_and_sysctls(target, site, spec):
    snap = snapshot(target, site)
    mods = {m: _module_loaded(snap, m) for m in spec.modules}
    record(modules={m: how for m, (_, how) in mods.items()},
           sysctls={k: snap["sysctl"].get(k) for k in spec.sysctls})
    expect([m for m, (ok, _) in mods.items() if not ok], "kernel modules", method="/sys/module",
           soft=True).is_empty(", ".join(spec.modules) + " loaded",
                               "not loaded: " + ", ".join(m for m, (ok, _) in mods.items() if not ok))
    for key, want in spec.sysctls.items():
        expect(snap["sysctl"].get(key), key, method=f"/proc/sys/{key.replace('.', '/')}", soft=True).equals(str(want))


def _limits(target, site, spec) -> None:
    snap = snapshot(target, site)
    mmc, nr_open = snap["sysctl"].get("vm.max_map_count"), snap["sysctl"].get("fs.nr_open")
    record(note="before install the services' own limits (systemd LimitNOFILE/LimitMEMLOCK, set by Wire's roles) "
                "do not exist yet; this checks the kernel settings that cap them")
    expect(int(mmc) if mmc else None, "vm.max_map_count", method="/proc/sys/vm/max_map_count", soft=True
           ).at_least(spec.min_max_map_count)
    expect(int(nr_open) if nr_open else None, "fs.nr_open (ceiling of any nofile limit)",
           method="/proc/sys/fs/nr_open", soft=True).at_least(spec.min_nofile)


@requirement("IMP-ES-LIMITS")
def test_elasticsearch_limits(target, site, spec):
    _limits(target, site, spec)


@requirement("IMP-CASSANDRA-LIMITS")
def test_cassandra_limits(target, site, spec):
    _limits(target, site, spec)
    swaps = snapshot(target, site)["swaps"]
    expect([s[0] for s in swaps], "active swap", method="/proc/swaps", soft=True).is_empty("no swap")


# --- network of each host ------------------------------------------------------------------------------

def _local(snap) -> dict[str, tuple[str, dict[str, Any]]]:
    """address -> (interface, addr_info) of the host's non-loopback addresses."""
    out = {}
    for link in snap["addr"]:
        for a in link.get("addr_info", []):
            if a.get("family") in ("inet", "inet6") and a.get("scope") != "host":
                out[a["local"]] = (link.get("ifname", "?"), a)
    return out


def _dhcp_ifaces(netplan_lines: list[str]) -> set[str]:
    """Interfaces netplan configures with dhcp4: true (grep -Hn lines of /etc/netplan/*.yaml)."""
    out, current = set(), None
    for line in netplan_lines:
        text = line.split(":", 2)[-1] if line.count(":") >= 2 else line
        m = re.match(r"^\s*([A-Za-z0-9_.-]+):\s*$", text)
        if m:
            current = m.group(1)
        elif re.match(r"^\s*dhcp4:\s*(true|yes)\s*$", text, re.I) and current:
            out.add(current)
    return out


@requirement("PROD-NET-STATIC-IP")
def test_static_addresses(target, site):
    snap = net_snapshot(target, site)
    local = _local(snap)
    wanted = []
    if target.vars.get("ip"):
        wanted.append(("ip", str(target.vars["ip"])))
    try:
        ipaddress.ip_address(target.address)
        if not target.vars.get("ip") or target.address in local:
            wanted.append(("ansible_host", target.address))
    except ValueError:
        if not target.vars.get("ip"):
            not_evaluated(f"ansible_host {target.address} is a name, and no ip= is set", option="ip=<address> "
                          "for the host in the inventory")
    dhcp = _dhcp_ifaces(snap["netplan"])
    found = {}
    for var, addr in wanted:
        iface, info = local.get(addr, (None, {}))
        found[f"{var}={addr}"] = {"interface": iface, "dynamic": bool(info.get("dynamic")),
                                  "valid_lft": info.get("valid_life_time"), "netplan_dhcp4": iface in dhcp}
    record(addresses=found, measured="the kernel's address flags (ip -j addr: `dynamic` = a lease with a "
                                     "lifetime, as DHCP installs) and netplan's dhcp4 settings; a DHCP "
                                     "reservation cannot be seen from the host and must be attested")
    problems = []
    for key, f in found.items():
        if f["interface"] is None:
            problems.append(f"{key} is not an address of the host")
        elif f["dynamic"]:
            problems.append(f"{key} on {f['interface']} is a dynamic lease (valid_lft {f['valid_lft']} s)")
        elif f["netplan_dhcp4"]:
            problems.append(f"{key}: netplan configures {f['interface']} with dhcp4")
    expect(problems, "inventory addresses", method="ip -j addr; /etc/netplan/*.yaml").is_empty(
        "permanent addresses on the host", "; ".join(problems))


def cluster_ranges(target, site, spec) -> dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = {}
    for var, default in spec.cluster_ranges.items():
        value = target.vars.get(var) or site.vars.get(var) or default
        out[var] = ipaddress.ip_network(str(value), strict=False)
    return out


@requirement("PROD-NET-AVOID-10NET")
def test_no_10net(target, site, spec):
    snap = net_snapshot(target, site)
    avoid = ipaddress.ip_network(spec.avoid)
    ranges = cluster_ranges(target, site, spec)
    nets: list[tuple[str, Any]] = []
    for link in snap["addr"]:
        for a in link.get("addr_info", []):
            if a.get("family") == "inet" and a.get("scope") != "host":
                nets.append((f"{a['local']}/{a['prefixlen']} on {link.get('ifname')}",
                             ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)))
    for r in snap["route"]:
        dst = r.get("dst")
        if dst and dst != "default" and ":" not in dst:
            nets.append((f"route {dst} via {r.get('dev')}", ipaddress.ip_network(dst if "/" in dst else f"{dst}/32",
                                                                                  strict=False)))
    record(host_networks=[w for w, _ in nets], cluster_ranges={k: str(v) for k, v in ranges.items()})
    overlaps = [f"{w} overlaps {var} {net}" for w, n in nets for var, net in ranges.items()
                if n.version == net.version and n.overlaps(net)]
    if overlaps:
        ev_msg = "collides with the cluster's ranges: " + "; ".join(overlaps)
        raise MustBroken(ev_msg)
    in10 = sorted({w.split(" on ")[0] for w, n in nets if n.version == 4 and n.subnet_of(avoid)
                   and not w.startswith("route")})
    expect(in10, "host addresses in 10.0.0.0/8", method="ip -j addr; ip -j route").is_empty(
        "no 10.x addresses (Kubernetes uses 10.x inside the cluster)",
        f"host address {', '.join(in10)} is in {avoid} (the docs advise 192.168.x.x or 172.x.x.x; no overlap with "
        f"{', '.join(str(v) for v in ranges.values())})")


@requirement("PROD-NET-IFACES")
def test_network_interface_variables(target, site, spec):
    roles = set(target.roles)
    needed = {g: v for g, v in spec.required.items() if g in roles}
    optional = {g: v for g, v in spec.optional.items() if g in roles and target.vars.get(v)}
    if not needed and not optional:
        not_applicable("the host is in no group with a *_network_interface variable")
    snap = net_snapshot(target, site)
    ifaces = {link.get("ifname"): [a["local"] for a in link.get("addr_info", []) if a.get("family") == "inet"]
              for link in snap["addr"]}
    seen, problems = {}, []
    for group, var in {**needed, **optional}.items():
        value = target.vars.get(var)
        seen[var] = {"value": value, "ipv4": ifaces.get(value) if value else None}
        if not value:
            problems.append(f"{var} is not set in the inventory (needed by helm_external.yml for [{group}])")
        elif value not in ifaces:
            problems.append(f"{var}={value}: no such interface on the host (has {', '.join(sorted(ifaces))})")
        elif not ifaces[value]:
            problems.append(f"{var}={value} has no IPv4 address")
    record(variables=seen)
    expect(problems, "network interface variables", method="inventory; ip -j addr").is_empty(
        "set and present with an IPv4 address", "; ".join(problems))


def is_private(addr: str) -> bool:
    """Not reachable from the internet: RFC 1918, ULA, shared/CGN and the other non-global ranges."""
    ip = ipaddress.ip_address(addr)
    return not ip.is_global and not ip.is_loopback


@requirement("PROD-NET-PRIVATE")
def test_private_network(target, site, spec):
    snap = net_snapshot(target, site)
    used = {"ip/ansible_host (node-to-node)": node_address(target)}
    for var in ("cassandra_network_interface", "elasticsearch_network_interface", "minio_network_interface",
                "postgresql_network_interface", "rabbitmq_network_interface"):
        iface = target.vars.get(var)
        for link in snap["addr"]:
            if iface and link.get("ifname") == iface:
                for a in link.get("addr_info", []):
                    if a.get("family") == "inet":
                        used[f"{var}={iface}"] = a["local"]
    classified = {}
    for what, addr in used.items():
        try:
            classified[what] = {"address": addr, "private": is_private(addr)}
        except ValueError:
            classified[what] = {"address": addr, "private": None}
    record(addresses=classified, measured="address classes only (IANA special-purpose registry); that database "
                                          "and etcd ports are closed on public addresses needs a probe from outside")
    public = [f"{w} {c['address']}" for w, c in classified.items() if c["private"] is False]
    expect(public, "internal traffic addresses", method="inventory ip=/ansible_host; ip -j addr").is_empty(
        "private (non-internet) addresses", "internal traffic would use public addresses: " + ", ".join(public))


# --- time ---------------------------------------------------------------------------------------------

#: timedatectl, chronyc and ntpq answers, in that order, each closed by its exit status; asked in the
#: order judge_time prefers them, and a client judge_time would not read is not asked (exit 125):
#: chronyc's tracking answer makes ntpq and timedatectl (a D-Bus call that may start timedated) moot,
#: ntpq's peer table makes timedatectl moot.  Nothing answering, all three are asked.
TIME_CMD = ("c=$(chronyc -n tracking 2>&1); cr=$?; n=; nr=125; t=; tr=125; "
            "if [ $cr -ne 0 ] || ! printf '%s\\n' \"$c\" | grep -q 'Leap status'; then "
            "n=$(ntpq -pn 2>&1); nr=$?; "
            "if [ $nr -ne 0 ] || ! printf '%s\\n' \"$n\" | grep -Eq '^[[:space:]]*remote[[:space:]]+refid'; then "
            "t=$(timedatectl show -p NTPSynchronized --value 2>&1); tr=$?; fi; fi; "
            "printf '%s\\n@rc=%s\\n%s\\n@rc=%s\\n%s\\n@rc=%s\\n' \"$t\" \"$tr\" \"$c\" \"$cr\" \"$n\" \"$nr\"")
# asked of every host before the check runs, with the other checks' commands (one round trip)
register_commands("TIME-NTP-SYNC", lambda target, spec: [(TIME_CMD, False, 15)])


def judge_time(text: str) -> dict[str, Any]:
    """From timedatectl / chronyc tracking / ntpq -pn output: synced (True/False/None), offset_ms, source."""
    parts = re.split(r"^@rc=(\d+)\n?", text, flags=re.M)
    outs = [(parts[i].strip(), int(parts[i + 1])) for i in range(0, len(parts) - 1, 2)]
    while len(outs) < 3:
        outs.append(("", 127))
    (tdc, tdc_rc), (chrony, chrony_rc), (ntpq, ntpq_rc) = outs[:3]
    tried = {"timedatectl": tdc.splitlines()[-1] if tdc else "", "chronyc": chrony.splitlines()[-1] if chrony else "",
             "ntpq": ntpq.splitlines()[-1] if ntpq else ""}
    if chrony_rc == 0 and "Leap status" in chrony:
        leap = re.search(r"Leap status\s*:\s*(.+)", chrony).group(1).strip()
        m = re.search(r"System time\s*:\s*([0-9.]+) seconds (slow|fast)", chrony)
        offset = float(m.group(1)) * 1000 if m else None
        return {"synced": leap != "Not synchronised", "offset_ms": offset, "source": "chronyc tracking",
                "detail": f"Leap status: {leap}"}
    if ntpq_rc == 0 and re.search(r"^\s*remote\s+refid", ntpq, re.M):
        for line in ntpq.splitlines():
            if line.startswith("*"):
                f = line[1:].split()
                reach = f[6] if len(f) > 6 else "0"
                offset = abs(float(f[8])) if len(f) > 8 else None
                return {"synced": reach != "0", "offset_ms": offset, "source": "ntpq -pn",
                        "detail": f"selected peer {f[0]} reach {reach}"}
        return {"synced": False, "offset_ms": None, "source": "ntpq -pn", "detail": "no selected (*) peer"}
    if tdc_rc == 0 and tdc.splitlines() and tdc.splitlines()[0] in ("yes", "no"):
        return {"synced": tdc.splitlines()[0] == "yes", "offset_ms": None,
                "source": "timedatectl show -p NTPSynchronized", "detail": f"NTPSynchronized={tdc.splitlines()[0]}"}
    return {"synced": None, "offset_ms": None, "source": None, "detail": tried}


def check_time(target, spec) -> None:
    res = target.run(TIME_CMD, timeout=15)
    j = judge_time(res.stdout)
    record(time_sync=j)
    if j["synced"] is None:
        cannot_measure("no time-synchronisation client answered (tried timedatectl, chronyc tracking, ntpq -pn): "
                       + "; ".join(f"{k}: {v or 'no output'}" for k, v in j["detail"].items()))
    expect(j["synced"], "clock synchronised", method=j["source"]).is_true(
        "synchronised", f"the clock is not synchronised ({j['source']}: {j['detail']})")
    if j["offset_ms"] is not None:
        expect(round(j["offset_ms"], 1), "clock offset", method=j["source"], unit="ms").at_most(spec.max_offset_ms)


@requirement("TIME-NTP-SYNC")
def test_time_synchronised(target, spec):
    check_time(target, spec)


# --- the control machine (admin host) ---------------------------------------------------------------------

def admin_machine(site, control):
    admins = site.targets_with_role("admin")
    return (admins[0], f"the [admin] host {admins[0].name}") if admins else (control, "the control machine")


def version_tuple(text: str) -> tuple[int, ...]:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(x) for x in m.groups() if x is not None) if m else ()


def _said_something(res, command: str, where: str) -> None:
    """A tool run with 2>&1 always prints something: its version, or why it failed. Silence (or a shell
    that could not start it: exit 126) measured nothing; exit 127 is a measured 'not installed'."""
    if res.rc == 126 or (res.rc != 127 and not res.stdout.strip()):
        cannot_measure(f"`{command}` on {where} gave no answer (exit {res.rc}): "
                       f"{(res.stderr.strip().splitlines() or ['no output'])[-1][:200]}")


def judge_docker(out: str, rc: int, min_version: str) -> tuple[bool, str]:
    """`docker version --format '{{.Client.Version}} {{.Server.Version}}'` -> (ok, what)."""
    if rc == 127 or "not found" in out:
        return False, "docker is not installed"
    fields = out.strip().splitlines()[-1].split() if out.strip() else []
    if rc != 0 or len(fields) < 2:
        return False, f"the docker daemon does not answer: {out.strip().splitlines()[-1] if out.strip() else rc}"
    server = fields[1]
    if version_tuple(server) < version_tuple(min_version):
        return False, f"Docker {server}, need >= {min_version}"
    return True, f"Docker {server}"


DOCKER_CMD = "docker version --format '{{.Client.Version}} {{.Server.Version}}' 2>&1"
HELM_CMD = "helm version --short 2>&1"
KUBECTL_CMD = "kubectl version --client -o json 2>&1"


def _on_admin_host(*commands: str):
    """The commands as asked in the [admin] host's batch (the control machine runs its own)."""
    def asked(site, spec) -> dict[str, list[tuple[str, bool, float | None]]]:
        admins = site.targets_with_role("admin")
        return {admins[0].name: [(c, False, 20) for c in commands]} if admins else {}
    return asked


register_fleet_commands("CTRL-DOCKER", _on_admin_host(DOCKER_CMD))
register_fleet_commands("CTRL-HELM-KUBECTL", _on_admin_host(HELM_CMD, KUBECTL_CMD))


@requirement("CTRL-DOCKER")
def test_docker(site, control, spec):
    host, which = admin_machine(site, control)
    res = host.run(DOCKER_CMD, timeout=20)
    _said_something(res, "docker version", which)
    ok, what = judge_docker(res.stdout, res.rc, str(spec.min_version))
    record(admin_machine=which)
    expect(what, "Docker", method="docker version (as the operator user)").satisfies(
        lambda _: ok, f"Docker >= {spec.min_version} usable without sudo", f"{what} on {which}")


def judge_helm_kubectl(helm: str, helm_rc: int, kubectl: str, kubectl_rc: int, major: int) -> list[str]:
    problems = []
    if helm_rc != 0:
        problems.append("helm is not installed" if helm_rc == 127 else f"helm version failed: {helm.strip()[-200:]}")
    elif not helm.strip().startswith(f"v{major}."):
        problems.append(f"helm {helm.strip()}, need v{major}")
    if kubectl_rc != 0:
        problems.append("kubectl is not installed" if kubectl_rc == 127 else
                        f"kubectl version --client failed: {kubectl.strip()[-200:]}")
    return problems


def check_helm_kubectl(site, control, spec, need_server: bool) -> None:
    host, which = admin_machine(site, control)
    helm = host.run(HELM_CMD, timeout=20)
    kubectl = host.run(KUBECTL_CMD, timeout=20)
    _said_something(helm, "helm version --short", which)
    _said_something(kubectl, "kubectl version --client", which)
    problems = judge_helm_kubectl(helm.stdout, helm.rc, kubectl.stdout, kubectl.rc, int(spec.helm_major))
    record(admin_machine=which, helm=helm.stdout.strip()[:100] if helm.rc == 0 else None)
    if need_server and not problems:
        if not site.kubeconfig:
            not_evaluated("helm and kubectl are there; the cluster's answer needs a kubeconfig", option="--kubeconfig")
        res = host.run(f"kubectl --kubeconfig {shlex.quote(site.kubeconfig)} version -o json 2>&1", timeout=30)
        try:
            server = json.loads(res.stdout).get("serverVersion")
        except json.JSONDecodeError:
            server = None
        if not server:
            problems.append(f"kubectl version shows no server version: {res.stdout.strip()[-200:]}")
    expect(problems, "helm and kubectl", method="helm version --short; kubectl version").is_empty(
        f"helm v{spec.helm_major} and kubectl on PATH", "; ".join(problems) + f" (on {which})")


@requirement("CTRL-HELM-KUBECTL")
def test_helm_kubectl(site, control, spec):
    check_helm_kubectl(site, control, spec, need_server=False)


@requirement("IMP-ADMIN-DISK")
def test_admin_disk(site, control, spec):
    host, which = admin_machine(site, control)
    artifact = site.vars.get(spec.site_var)
    path = site.option("wire_server_deploy") or "."
    if artifact:
        res = host.run(f"stat -c %s -- {shlex.quote(str(artifact))}", timeout=15)
        if res.rc != 0 or not res.stdout.strip().isdigit():
            cannot_measure(f"{spec.site_var}={artifact}: cannot stat it on {which}: "
                           f"{res.stderr.strip() or res.stdout.strip()[:80] or f'exit {res.rc}'}")
        size = Fraction(int(res.stdout.strip()))
        path = (str(artifact).rsplit("/", 1)[0] or "/") if "/" in str(artifact) else "."
        source = f"size of {artifact}"
    elif spec.artifact_gib:
        size, source = sizing.gib_in_bytes(spec.artifact_gib), "--param IMP-ADMIN-DISK.artifact_gib"
    else:
        not_evaluated("the offline artifact's size is unknown",
                      option=f"{spec.site_var}=<path of the tarball> in [all:vars] or --param IMP-ADMIN-DISK.artifact_gib=N")
    du = host.facts.disk(path)
    need = size * Fraction(str(spec.factor))            # bytes, exactly; GiB only in the text
    record(admin_machine=which, artifact_GiB=round(float(size) / GIB, 2), artifact_from=source, path=path,
           mount=du.mount, free_bytes=du.avail, need_bytes=math.ceil(need))
    expect(du.avail, f"free space on {du.mount} ({which})", method="df -B1", unit="bytes").satisfies(
        lambda b: sizing.at_least(b, need), f">= {sizing.gib_text(need, sizing.BYTES_PER_GIB, up=True)} GiB "
        f"({math.ceil(need):,} bytes)",
        f"free space on {du.mount} ({which}): {sizing.gib_text(du.avail, sizing.BYTES_PER_GIB)} GiB "
        f"({du.avail:,} bytes), need >= {sizing.gib_text(need, sizing.BYTES_PER_GIB, up=True)} GiB "
        f"({math.ceil(need):,} bytes: {spec.factor:g} x the artifact)")


@requirement("IMP-SSH-HOSTKEYS")
def test_host_keys_pinned(site):
    ssh_targets = [t for t in site.targets if not t.local]
    if not ssh_targets:
        not_applicable("no target is reached over SSH")

    def probe(t):
        tr = t.transport
        argv = [a for a in tr.base_argv() if a not in ("sshpass", "-e")]
        res = tr_run(argv + ["-G", "--", tr.host])
        cfg = {}
        for line in res.splitlines():
            k, _, v = line.partition(" ")
            cfg.setdefault(k.lower(), v.strip())
        strict = cfg.get("stricthostkeychecking", "ask")
        files = [f for f in cfg.get("userknownhostsfile", "~/.ssh/known_hosts").split() if f != "/dev/null"]
        key = tr.host if not tr.port or int(tr.port) == 22 else f"[{tr.host}]:{tr.port}"
        pinned = []
        for f in files:
            import os
            path = os.path.expanduser(f)
            if os.path.exists(path) and tr_run(["ssh-keygen", "-F", key, "-f", path]).strip():
                pinned.append(f)
        return {"strict": strict, "known_hosts": files, "pinned_in": pinned}
    results = fan_out(ssh_targets, probe)
    record(hosts=results)
    problems = [f"{n}: StrictHostKeyChecking={r['strict']}" for n, r in results.items()
                if r["strict"].lower() in ("no", "false", "off")]
    problems += [f"{n}: host key not in {', '.join(r['known_hosts']) or 'any known_hosts file'}"
                 for n, r in results.items() if not r["pinned_in"]]
    expect(problems, "host keys", method="ssh -G; ssh-keygen -F").is_empty(
        "every target's host key pinned and checked", "; ".join(problems))


def tr_run(argv: list[str], timeout: float = 10) -> str:
    import subprocess
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL).stdout
    except subprocess.TimeoutExpired:
        return ""


# --- fleet: the inventory as a whole -----------------------------------------------------------------------

def _inventory(site) -> None:
    if not site.inventory_path:
        not_evaluated("the fleet comes from the Ansible inventory, none given", option="--ansible-inventory")


@requirement("PROD-VM-COUNT")
def test_vm_count(site, spec):
    """Machines per group, not names: one VM listed twice counts once."""
    _inventory(site)
    ms = machines(site)
    counts = {g: len(count_machines(ms, [g])) for g in spec.minima}
    names = {g: len(site.targets_with_role(g)) for g in spec.minima}
    merged = merged_names(ms)
    record(per_group=counts, hosts=len(ms), inventory_names=len(site.targets), merged_names=merged,
           identified_by={m.label: m.identity.how for m in ms}, documented_totals=dict(spec.documented_totals),
           note="the docs' totals conflict (16, 17, 19); groups are counted against their own minima")
    short = []
    for g, n in spec.minima.items():
        if counts[g] < n and (counts[g] or g in ("cassandra", "elasticsearch", "kube-node", "etcd")):
            dup = f" ({names[g]} names, some of them one machine)" if names[g] != counts[g] else ""
            short.append(f"[{g}] has {counts[g]}{dup}, need {n}")
    expect(short, "machines per group", method="inventory groups; machine-id of each host").is_empty(
        "each group at its documented minimum", "; ".join(short)
        + (f" (one machine under several names: {'; '.join(', '.join(v) for v in merged.values())})"
           if merged else ""))


@requirement("PROD-PHYS-SERVERS")
def test_physical_servers(site, spec):
    _inventory(site)
    var = spec.host_var
    placed = {t.name: t.vars.get(var) for t in site.targets}
    if not any(placed.values()):
        not_evaluated("no VM-to-physical-server map: VMs cannot see which server they run on",
                      option=f"{var}=<server> for every host in the inventory (an operator attestation)")
    record(placement=placed, attested_by=f"inventory variable {var}")
    problems = [f"{n} has no {var}" for n, s in placed.items() if not s]
    servers = sorted({s for s in placed.values() if s})
    if len(servers) < int(spec.min_servers):
        problems.append(f"{len(servers)} physical servers ({', '.join(servers)}), need >= {spec.min_servers}")
    for g in spec.spread_groups:
        on: dict[str, list[str]] = {}
        for t in site.targets_with_role(g):
            if placed.get(t.name):
                on.setdefault(placed[t.name], []).append(t.name)
        problems += [f"[{g}] {', '.join(vms)} share server {s}" for s, vms in on.items() if len(vms) > 1]
    expect(problems, "VM placement", method=f"inventory {var}").is_empty(
        f">= {spec.min_servers} servers, each group spread over distinct servers", "; ".join(problems))


@requirement("PROD-HOSTS-DISJOINT")
def test_renaming_playbooks_disjoint(site, spec):
    _inventory(site)
    members = {name: {str(t.address) for t in site.targets_with_role(*groups)}
               for name, groups in spec.renaming.items()}
    names = {name: sorted(t.name for t in site.targets_with_role(*groups)) for name, groups in spec.renaming.items()}
    problems = []
    keys = list(members)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            shared = members[a] & members[b]
            if shared:
                problems.append(f"{a} and {b} playbooks both rename {', '.join(sorted(shared))}")
    check_names = [t for t in site.targets if set(t.roles) & set(spec.hostname_groups)]
    got = fan_out(check_names, lambda t: t.facts.identity()["hostname"])
    mismatched = {n: h for n, h in got.items() if not isinstance(h, Exception) and h != n}
    problems += [f"{n}: hostname is {h!r}, the inventory name is {n!r}" for n, h in mismatched.items()]
    record(renaming_groups=names, hostnames={n: (h if not isinstance(h, Exception) else str(h)) for n, h in got.items()})
    expect(problems, "host sets", method="inventory groups by ansible_host; hostname").is_empty(
        "cassandra, kubernetes and restund on distinct machines; names match", "; ".join(problems))
    if unreachable(got):
        cannot_measure("could not read the hostname of: " + "; ".join(unreachable(got)))


@requirement("IMP-HOSTNAME-UNIQUE")
def test_hostnames_unique(site, spec):
    got = fan_out(site.targets, lambda t: t.facts.identity())
    snaps = {n: s for n, s in got.items() if not isinstance(s, Exception)}
    problems = []
    for field in spec.unique_across:
        seen: dict[str, list[str]] = {}
        for n, s in snaps.items():
            if s.get(field):
                seen.setdefault(s[field], []).append(n)
        problems += [f"{field} {v!r} shared by {', '.join(ns)}" for v, ns in seen.items() if len(ns) > 1]
    problems += [f"{n}: hostname {s['hostname']!r} does not resolve (getent hosts)"
                 for n, s in snaps.items() if not s["hosts_entry"]]
    record(hosts={n: {"hostname": s["hostname"], "machine_id": s["machine_id"][:12] + "…" if s["machine_id"] else "",
                      "resolves_to": s["hosts_entry"]} for n, s in snaps.items()})
    expect(problems, "host identities", method="hostname; getent hosts; /etc/machine-id; DMI product_uuid").is_empty(
        "unique and resolvable", "; ".join(problems))
    if unreachable(got):
        cannot_measure("could not reach: " + "; ".join(unreachable(got)))


# --- fleet: reachability between hosts over their own SSH connections ------------------------------------

#: connects to host:port addresses side by side, one time limit for all: {address: "open" or why not}
CONNECT = r"""
import socket, threading
def connect(t, addrs):
    out = {}
    def go(hp):
        h, _, p = hp.rpartition(":")
        s = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET); s.settimeout(t)
        try: s.connect((h.strip("[]"), int(p))); out[hp] = "open"
        except socket.timeout: out[hp] = "timed out"
        except OSError as e: out[hp] = e.strerror or str(e)
        finally: s.close()
    th = [threading.Thread(target=go, args=(a,)) for a in addrs]
    [x.start() for x in th]; [x.join() for x in th]
    return out
"""

CONNECTOR = CONNECT + r"""
import sys
out = connect(float(sys.argv[1]), sys.argv[2:])
for a in sys.argv[2:]: print(a, out.get(a, "no answer"), sep="\t")
"""

#: a host's part in a reachability check, in one python3: listens on its ports (those it cannot
#: bind are said: in use) until stdin closes or its life ends, and connects to the addresses of each
#: "CONNECT timeout address..." line it reads, answering one line per address, then DONE
PEER = CONNECT + r"""
import os, select, sys, time
life = float(sys.argv[1]); socks = []; busy = []
for p in sys.argv[2:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("0.0.0.0", int(p))); s.listen(128); s.setblocking(False); socks.append(s)
    except OSError as e:
        busy.append(p); s.close()
print("READY", ",".join(str(s.getsockname()[1]) for s in socks), "BUSY", ",".join(busy), flush=True)
def answer(t, addrs):
    out = connect(t, addrs)
    sys.stdout.write("".join("%s\t%s\n" % (a, out.get(a, "no answer")) for a in addrs) + "DONE\n"); sys.stdout.flush()
end = time.time() + life; buf = b""
while time.time() < end:
    r, _, _ = select.select(socks + [0], [], [], 0.5)
    for x in r:
        if x == 0:
            data = os.read(0, 4096)
            if not data: sys.exit(0)
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                f = line.decode().split()
                if f[:1] == ["CONNECT"]:
                    threading.Thread(target=answer, args=(float(f[1]), f[2:]), daemon=True).start()
        else:
            try: x.accept()[0].close()
            except OSError: pass
"""


def start_peer(target, ports: list[int], life: float, timeout: float = 15):
    """PEER on the host, listening on ports; returns (process, ports already in use)."""
    proc = target.popen(["python3", "-c", PEER, str(life), *map(str, ports)])
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode(errors="replace") if ready else ""
    if not line.startswith("READY"):
        stop_listener(proc)
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        raise TransportError(f"{target.name}: temporary listener did not start: {line.strip() or err[-300:]}")
    fields = line.split()
    busy = fields[3].split(",") if len(fields) > 3 and fields[3] else []
    return proc, busy


def stop_listener(proc) -> None:
    try:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=5)
    except Exception:  # noqa: BLE001 - whatever happens, the process must end
        proc.kill()
        proc.wait(timeout=5)


def _connect_lines(source, text: str, addrs: list[str], rc: int | None, err: str) -> dict[str, str]:
    got = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    missing = [a for a in addrs if a not in got]
    if missing:      # every connection answers with a line; without them nothing was measured
        raise TransportError(f"{source.name}: connect probe gave no result for {', '.join(missing[:5])}"
                             f"{' …' if len(missing) > 5 else ''} (exit {rc}, output {text.strip()[:80]!r}"
                             f"{', ' + err.strip()[-200:] if err.strip() else ''})")
    return got


def connect_from(source, addrs: list[str], timeout: float) -> dict[str, str]:
    cmd = shlex.join(["python3", "-c", CONNECTOR, str(timeout), *addrs])
    res = source.run(cmd, timeout=timeout + 20)
    if res.rc != 0:
        raise TransportError(f"{source.name}: connect probe failed (exit {res.rc}): {res.stderr.strip()[-300:]}")
    return _connect_lines(source, res.stdout, addrs, res.rc, "")


def connect_via(proc, source, addrs: list[str], timeout: float) -> dict[str, str]:
    """The connects from a host whose PEER already runs (started by start_peer)."""
    import os
    import time
    try:
        proc.stdin.write(f"CONNECT {timeout} {' '.join(addrs)}\n".encode())
        proc.stdin.flush()
    except OSError as exc:      # it has ended
        raise TransportError(f"{source.name}: connect probe ended before it was asked ({exc})") from None
    fd, text, deadline = proc.stdout.fileno(), b"", time.monotonic() + timeout + 20
    while not text.endswith(b"DONE\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:     # ended or silent past the time limit: what it said is judged below
            break
        text += chunk
    return _connect_lines(source, text.decode(errors="replace"), addrs, proc.poll(), "")


def _hp(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def reachability(site, pairs: list[tuple[Any, Any, int]], timeout: float, listen: bool, life: float,
                 what: str) -> None:
    """(source, destination, port) triples: each source connects over its own SSH connection.  With
    listen, each host of the pairs runs one PEER: the destinations listen on their ports, and once all
    listen, the sources connect through their own PEER (a host that is both runs one python3)."""
    peers: dict[str, Any] = {}
    busy: dict[str, list[str]] = {}
    by_source: dict[str, tuple[Any, list[str]]] = {}
    label: dict[tuple[str, str], str] = {}
    for src, dst, port in pairs:
        hp = _hp(node_address(dst), port)
        by_source.setdefault(src.name, (src, []))[1].append(hp)
        label[(src.name, hp)] = f"{src.name} → {dst.name} ({hp})"
    try:
        got: dict[str, Any] = {}
        if listen:
            ports_of: dict[str, tuple[Any, set[int]]] = {}
            for src, dst, port in pairs:
                ports_of.setdefault(dst.name, (dst, set()))[1].add(port)
                ports_of.setdefault(src.name, (src, set()))
            started = fan_out([h for h, _ in ports_of.values()],
                              lambda h: start_peer(h, sorted(ports_of[h.name][1]), life))
            for name, res in started.items():
                if not isinstance(res, Exception):
                    peers[name] = res[0]
                    busy[name] = res[1]
                elif ports_of[name][1]:     # a destination that does not listen: nothing can be judged
                    cannot_measure(f"could not start the temporary listeners: {res}")
                else:
                    got[name] = res         # a source that cannot connect: said below
            got.update(fan_out([s for s, _ in by_source.values() if s.name in peers],
                               lambda s: connect_via(peers[s.name], s, sorted(set(by_source[s.name][1])), timeout)))
        else:
            got = fan_out([s for s, _ in by_source.values()],
                          lambda s: connect_from(s, sorted(set(by_source[s.name][1])), timeout))
    finally:
        for proc in peers.values():
            stop_listener(proc)
    failures, opened = [], 0
    for sname, res in got.items():
        if isinstance(res, Exception):
            continue
        for hp, state in res.items():
            if state == "open":
                opened += 1
            else:
                failures.append(f"{label[(sname, hp)]}: {state}")
    record(connections=len(label), open=opened, failures=failures[:50],
           method_note=("temporary listeners on the destinations (python3 on the host, gone when the check "
                        "ends); " if listen else "") + "TCP connect from each source host over its own SSH "
                        "connection", already_listening={k: v for k, v in busy.items() if v})
    expect(failures, what, method="python3 socket connect from each source host").is_empty(
        f"all {len(label)} connections open", f"{len(failures)} of {len(label)} connections fail: "
        + "; ".join(failures[:12]) + (" …" if len(failures) > 12 else ""))
    if unreachable(got):
        cannot_measure("could not probe from: " + "; ".join(unreachable(got)))


def db_port_pairs(site, spec) -> list[tuple[Any, Any, int]]:
    kube = site.targets_with_role(*K8S_GROUPS)
    pairs = []
    for group, ports in spec.from_kube.items():
        for dst in site.targets_with_role(group):
            pairs += [(src, dst, int(p)) for src in kube if src.name != dst.name for p in ports]
    for group, ports in spec.between_peers.items():
        peers = site.targets_with_role(group)
        pairs += [(a, b, int(p)) for a in peers for b in peers if a.name != b.name for p in ports]
    return pairs


def check_db_ports(site, spec, listen: bool) -> None:
    _inventory(site)
    pairs = db_port_pairs(site, spec)
    if not pairs:
        not_applicable("no Kubernetes node and database host pairs in the inventory")
    reachability(site, pairs, float(spec.timeout_s), listen, float(spec.listen_s), "database ports")


@requirement("PROD-NET-DB-PORTS")
def test_database_ports(site, spec):
    check_db_ports(site, spec, listen=True)


#: HEAD requests from a node, side by side (one time limit for all); the node's release decides the
#: APT path, so the fetcher reads it on the node
FETCHER = r"""
def main(argv, out, err):
    import shlex, threading, urllib.error, urllib.request
    t = float(argv[0])
    try:
        rel = dict(l.split("=", 1) for l in open("/etc/os-release").read().splitlines() if "=" in l)
        codename = (shlex.split(rel.get("VERSION_CODENAME", "")) or [""])[0]
    except OSError:
        codename = ""
    urls = [a.replace("{codename}", codename) for a in argv[1:]]
    got = {}
    def head(u):
        try:
            with urllib.request.urlopen(urllib.request.Request(u, method="HEAD"), timeout=t) as r: got[u] = r.status
        except urllib.error.HTTPError as e: got[u] = e.code
        except Exception as e: got[u] = getattr(e, "reason", e)
    th = [threading.Thread(target=head, args=(u,)) for u in urls]
    [x.start() for x in th]; [x.join() for x in th]
    for u in urls: out.write("%s\t%s\n" % (u, got.get(u, "no answer")))
"""


def assethost_of(site, spec) -> tuple[Any, list[Any], str]:
    """(the assethost, the nodes that fetch from it, its base URL)."""
    assets = site.targets_with_role("assethost")
    if not assets:
        not_applicable("no [assethost] in the inventory: an online installation (offline ones need it)")
    asset = assets[0]
    nodes = [t for t in site.targets if t.name != asset.name]
    if not nodes:
        not_applicable("no other hosts than the assethost")
    return asset, nodes, f"http://{_hp(node_address(asset), int(spec.port))}"


def fetch_jobs(site, spec) -> dict[str, PyJob]:
    """Each node's HEAD requests (asked in the node's batch with its other Python, wirecheck.pyjobs)."""
    _asset, nodes, base = assethost_of(site, spec)
    urls = tuple(base + p for p in spec.paths)
    job = PyJob("PROD-NET-ASSETHOST", FETCHER, (str(spec.timeout_s), *urls),
                timeout=float(spec.timeout_s) * len(urls) + 15)
    return {t.name: job for t in nodes}


register_fleet_jobs("PROD-NET-ASSETHOST", fetch_jobs)


def check_assethost(site, spec) -> None:
    _inventory(site)
    asset, nodes, base = assethost_of(site, spec)
    jobs = fetch_jobs(site, spec)

    def fetch(t):
        urls = jobs[t.name].argv[1:]
        res = run_job(t, jobs[t.name])
        got = dict(line.split("\t", 1) for line in res.stdout.splitlines() if "\t" in line)
        if res.rc != 0 or len(got) < len(urls):   # one line per URL, or the fetcher did not run
            raise TransportError(f"{t.name}: the HTTP fetcher did not run (exit {res.rc}): "
                                 f"{(res.stderr.strip().splitlines() or [repr(res.stdout.strip()[:80])])[-1]}")
        return got
    got = fan_out(nodes, fetch)
    failures = [f"{n}: {u} → {s}" for n, r in got.items() if not isinstance(r, Exception)
                for u, s in r.items() if s != "200"]
    record(assethost=f"{asset.name} ({base})", fetched={n: r for n, r in got.items() if not isinstance(r, Exception)})
    expect(failures, "offline sources", method="HTTP HEAD from every node (python3 urllib)").is_empty(
        "every node gets 200 for the APT key and the binaries", f"{len(failures)} fetches fail: "
        + "; ".join(failures[:10]) + " (run setup-offline-sources.yml; open 8080/tcp on the assethost)")
    if unreachable(got):
        cannot_measure("could not probe from: " + "; ".join(unreachable(got)))


@requirement("PROD-NET-ASSETHOST")
def test_assethost_serves(site, spec):
    check_assethost(site, spec)

