"""Production hosts after the install: security settings (infrastructure.md › Security), restund VMs'
firewall and limits, restund TLS material cleaned up, SFT node firewall."""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import subprocess
from pathlib import Path

from suites.preflight import test_restund as pre
from suites.preflight.test_ports import probe_reach
from wirecheck import cannot_measure, expect, fail, not_applicable, not_evaluated, record, requirement
from wirecheck.probes.ports import format_ranges

# --- PROD-SEC-UPDATES --------------------------------------------------------------------------

UPDATES_CMD = ("dpkg-query -W -f='${Status}\\n' unattended-upgrades 2>/dev/null || echo not-installed; echo @conf; "
               "apt-config dump APT::Periodic 2>/dev/null; echo @timer; "
               "systemctl is-enabled apt-daily-upgrade.timer 2>/dev/null || "
               "{ test -e /etc/systemd/system/timers.target.wants/apt-daily-upgrade.timer && echo enabled; } || echo disabled")


@requirement("PROD-SEC-UPDATES")
def test_automatic_security_updates(target, spec):
    if spec.offline:
        not_applicable("the cluster is offline (PROD-SEC-UPDATES.offline=true): it cannot fetch updates itself")
    res = target.run_marked(UPDATES_CMD, "automatic updates", timeout=30)
    parts = dict.fromkeys(("pkg", "conf", "timer"), "")
    key = "pkg"
    for line in res.stdout.splitlines():
        if line.startswith("@"):
            key = line[1:]
            continue
        parts[key] += line + "\n"
    installed = parts["pkg"].strip() == "install ok installed"
    conf = dict(re.findall(r'^(APT::Periodic::[\w-]+) "([^"]*)";', parts["conf"], re.M))
    timer = parts["timer"].strip().splitlines()[-1] if parts["timer"].strip() else "unknown"
    record(unattended_upgrades=parts["pkg"].strip() or "not installed", apt_periodic=conf,
           apt_daily_upgrade_timer=timer)
    problems = []
    if not installed:
        problems.append("unattended-upgrades is not installed")
    if conf.get("APT::Periodic::Unattended-Upgrade", "0") in ("0", ""):
        problems.append('APT::Periodic::Unattended-Upgrade is not "1" (apt-config dump)')
    if conf.get("APT::Periodic::Update-Package-Lists", "0") in ("0", ""):
        problems.append('APT::Periodic::Update-Package-Lists is not "1"')
    if timer not in ("enabled", "static", "enabled-runtime"):
        problems.append(f"apt-daily-upgrade.timer is {timer}")
    expect(problems, "automatic security updates",
           method="dpkg-query unattended-upgrades; apt-config dump APT::Periodic; apt-daily-upgrade.timer").is_empty(
        "unattended-upgrades installed and enabled, apt-daily-upgrade.timer enabled", "; ".join(problems))


# --- PROD-SEC-SSH ------------------------------------------------------------------------------

@requirement("PROD-SEC-SSH")
def test_sshd_hardened(target, spec):
    res = target.run("sshd -T 2>&1 || /usr/sbin/sshd -T 2>&1", sudo=True, timeout=20)
    settings = {k: v.strip() for k, _, v in (line.partition(" ") for line in res.stdout.splitlines())
                if k and k.isalnum() and k.islower() and v}
    if "passwordauthentication" not in settings:
        cannot_measure(f"`sshd -T` (as root) gave no effective configuration: {res.stdout.strip()[-200:]}")
    seen = {k: settings.get(k) for k in ("passwordauthentication", "permitrootlogin", "kbdinteractiveauthentication",
                                         "permitemptypasswords", "pubkeyauthentication")}
    record(sshd=seen)
    problems = []
    if seen["passwordauthentication"] != "no":
        problems.append(f"PasswordAuthentication {seen['passwordauthentication']}")
    if seen["permitrootlogin"] not in spec.permit_root_login:
        problems.append(f"PermitRootLogin {seen['permitrootlogin']} (allowed: {', '.join(spec.permit_root_login)})")
    if seen["permitemptypasswords"] not in (None, "no"):
        problems.append(f"PermitEmptyPasswords {seen['permitemptypasswords']}")
    expect(problems, "sshd settings", method="sshd -T (effective configuration, as root)").is_empty(
        "PasswordAuthentication no, PermitRootLogin " + "|".join(spec.permit_root_login), "; ".join(problems))


# --- PROD-SEC-SECRETS --------------------------------------------------------------------------

def _encrypted(path: Path) -> str | None:
    head = path.read_bytes()[:4096]
    if head.startswith(b"\x00GITCRYPT"):
        return "git-crypt"
    text = path.read_text(encoding="utf-8", errors="replace")
    if re.search(r"^sops:\s*$", text, re.M) and ("ENC[" in text or "mac:" in text):
        return "sops"
    if text.startswith("$ANSIBLE_VAULT;"):
        return "ansible-vault"
    return None


def _tracked(root: Path, files: list[Path]) -> set[Path]:
    if not (root / ".git").exists():
        return set()
    res = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--", *[str(f.relative_to(root)) for f in files]],
                         capture_output=True, timeout=30, check=False)
    return {root / p for p in res.stdout.decode(errors="replace").split("\0") if p}


@requirement("PROD-SEC-SECRETS")
def test_secrets_files_protected(site, spec, control):
    root = site.option("wire_server_deploy")
    if not root:
        not_evaluated("the deployment directory holding the secrets files is not known",
                      option="--wire-server-deploy DIR")
    base = Path(root)
    if not base.is_dir():
        fail(f"--wire-server-deploy {root}: no such directory", observed="missing", expected="a directory")
    files = sorted({p for pattern in spec.patterns for p in base.glob(pattern) if p.is_file()})
    if not files:
        cannot_measure(f"no secrets file found under {base} ({', '.join(spec.patterns)})")
    tracked = _tracked(base, files)
    state: dict[str, dict[str, str | bool | None]] = {}
    problems = []
    for f in files:
        rel = str(f.relative_to(base))
        mode = os.stat(f).st_mode & 0o777
        enc = _encrypted(f)
        state[rel] = {"mode": oct(mode), "encrypted": enc, "tracked_in_git": f in tracked}
        if mode & 0o077:
            problems.append(f"{rel} has mode {oct(mode)} (readable beyond its owner)")
        if f in tracked and not enc:
            problems.append(f"{rel} is committed to git unencrypted")
    record(directory=str(base), files=state)
    expect(problems, "secrets files", method="stat; git ls-files; sops/git-crypt/vault headers").is_empty(
        "mode <= 0600, and encrypted wherever committed", "; ".join(problems))


# --- CALL-RESTUND-FIREWALL ---------------------------------------------------------------------

@requirement("CALL-RESTUND-FIREWALL")
def test_restund_firewall(target, site, spec):
    text, how = target.facts.ufw_status()
    if text is None:
        fail("ufw is not installed (the restund role manages the firewall with ufw)", observed="no ufw",
             expected="ufw active", method=how)
    status, defaults, rules = pre.parse_ufw(text or "")
    rng = target.facts.sysctl("net.ipv4.ip_local_port_range")
    lo, hi = (int(x) for x in (rng or "32768 60999").split())
    required = [("tcp", p, p) for p in spec.tcp_ports] + [("udp", p, p) for p in spec.udp_ports] + \
        [("tcp", lo, hi), ("udp", lo, hi)]
    problems = []
    if status != "active":
        problems.append(f"ufw is {status}")
    if defaults.get("incoming") not in ("deny", "reject"):
        problems.append(f"default incoming policy is {defaults.get('incoming')}, need deny")
    if defaults.get("outgoing") != "allow":
        problems.append(f"default outgoing policy is {defaults.get('outgoing')}, need allow")
    closed = [f"{p}/{a}" + (f"-{b}" if b != a else "") for p, a, b in required if not pre.ufw_allows_in(rules, p, a, b)]
    if closed:
        problems.append("not allowed in: " + ", ".join(closed))
    # reachability from traffic: the run's port probe of this host, for the ports it covers
    reach = probe_reach(target, site, [("tcp", p, p) for p in spec.tcp_ports] + [("udp", p, p) for p in spec.udp_ports]
                        + [("udp", lo, hi)])
    if reach.blocked:
        problems.append("the port probe measured " + " and ".join(reach.text(p, v) for p, v in reach.blocked.items())
                        + " blocked")
    record(port_probe={"error": reach.error} if reach.error else {
        "blocked": {p: format_ranges(v) for p, v in reach.blocked.items()} or "none",
        "not_measured": {p: format_ranges(v) for p, v in reach.unmeasured.items()} or "none"})
    deny_out = [to for to, action, _ in rules if action in ("DENY OUT", "REJECT OUT")]
    allow_out = [to for to, action, _ in rules if action == "ALLOW OUT"]
    allowed_cidrs = target.vars.get("restund_allowed_private_network_cidrs") or \
        site.vars.get("restund_allowed_private_network_cidrs") or []
    if isinstance(allowed_cidrs, str):
        allowed_cidrs = [c.strip() for c in allowed_cidrs.strip("[]").replace("'", "").split(",") if c.strip()]
    for block in spec.private_blocks:
        if not any(_covers(d, block) for d in deny_out):
            problems.append(f"egress to {block} not denied")
    for cidr in allowed_cidrs:
        first_allow = next((i for i, r in enumerate(rules) if r[1] == "ALLOW OUT" and _covers(r[0], cidr)), None)
        first_deny = next((i for i, r in enumerate(rules) if r[1] in ("DENY OUT", "REJECT OUT") and _covers(r[0], cidr)),
                          None)
        if first_allow is None or (first_deny is not None and first_deny < first_allow):
            problems.append(f"allowed private network {cidr} is not allowed out before the private-range deny")
    record(ufw_status=status, defaults=defaults, ip_local_port_range=f"{lo}-{hi}", deny_out=deny_out,
           allow_out=allow_out, allowed_private_cidrs=allowed_cidrs or None,
           note="restund-to-restund UDP is not probed here")
    expect(problems, "restund firewall", method=f"{how}; port probe of this run").is_empty(
        f"ufw active, deny in / allow out, {len(required)} port rules, private egress denied; the port probe "
        "reached every port it measured", "; ".join(problems))


def _covers(rule_to: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_network(str(cidr), strict=False).subnet_of(
            ipaddress.ip_network(rule_to.replace(" (v6)", "").split()[0], strict=False))
    except (ValueError, TypeError):
        return False


# --- CALL-RESTUND-HOSTS (after install) ---------------------------------------------------------

@requirement("CALL-RESTUND-HOSTS")
def test_restund_limits(target, site, spec):
    names = " ".join(shlex.quote(str(n)) for n in spec.process_names)
    # only processes in this host's network namespace (restund runs with the host network): a machine
    # that runs several network namespaces must not judge one host by another's restund
    res = target.run_marked(f"me=$(readlink /proc/self/ns/net); for n in {names}; do for p in $(pgrep -x \"$n\"); do "
                            "[ \"$(readlink /proc/$p/ns/net)\" = \"$me\" ] || continue; echo \"@$n $p\"; "
                            "grep '^Max open files' /proc/$p/limits; done; done", "restund processes", sudo=True,
                            timeout=20)
    procs: dict[str, int] = {}
    current = None
    for line in res.stdout.splitlines():
        if line.startswith("@"):
            current = line[1:]          # "name pid"
        elif current and line.startswith("Max open files"):
            soft = line.split()[3]
            procs[current] = min(procs.get(current, 10**9), 10**9 if soft == "unlimited" else int(soft))
    shared = pre.shared_addresses(site)
    record(processes=procs or "none", address=pre.restund_address(target))
    if not procs:
        fail(f"no {' or '.join(spec.process_names)} process runs on this host", observed="not running",
             expected="restund running", method="pgrep -x")
    need = int(spec.min_nofile)
    low = {p: n for p, n in procs.items() if n < need}
    expect(low, "restund's open-file limit", method="/proc/<pid>/limits (Max open files, soft)", soft=True).is_empty(
        f">= {need:,} (64000 allocations x 2)", "; ".join(f"{p}: Max open files {n:,}, need >= {need:,}"
                                                         for p, n in low.items()))
    expect(shared, "restund hosts sharing a public address", method="inventory addresses").is_empty(
        "one public address per restund host",
        "; ".join(f"{a} is the address of {', '.join(n)}" for a, n in shared.items()))


# --- TLS-RESTUND-CERT (after install) -----------------------------------------------------------

@requirement("TLS-RESTUND-CERT")
def test_restund_tls_material_removed(site, spec, control):
    hosts = pre._restund_or_skip(site)
    path = str(spec.pem_path)
    left = []
    if os.path.exists(path):
        left.append("control machine")
    for t in hosts:
        res = t.run(f"test -e {shlex.quote(path)} && echo present || echo absent", sudo=True, timeout=15)
        answer = res.stdout.strip()
        if res.rc != 0 or answer not in ("present", "absent"):
            cannot_measure(f"cannot tell whether {path} is on {t.name} (exit {res.rc}): "
                           f"{(res.stderr.strip().splitlines() or [repr(answer[:80])])[-1]}")
        if answer == "present":
            left.append(t.name)
    record(file=path, checked=["control machine", *[t.name for t in hosts]])
    expect(left, f"{path} still present", method=f"test -e {path} on the control machine and the restund hosts"
           ).is_empty("deleted everywhere after the install",
                      f"{path} (certificate and private key) is still on: {', '.join(left)}")


# --- CALL-SFT-FIREWALL (after install) ----------------------------------------------------------

@requirement("CALL-SFT-FIREWALL")
def test_sft_node_firewall_after_install(target, spec, site):
    pre.sft_firewall(target, spec, site)
