"""Hosts after the install: the host-level preflight checks again, plus what only a running installation
shows (resource headroom, log rotation, control-plane certificates, mail egress).

The measuring code of checks that exist in the preflight suite is reused from there (one place)."""

from __future__ import annotations

import datetime as dt
import shlex

from suites.preflight import test_implicit as _implicit
from suites.preflight import test_network as _network
from suites.preflight import test_ports as _ports
from wirecheck import cannot_measure, expect, fail, not_applicable, not_evaluated, record, requirement

# preflight checks run again as acceptance gates: the same function, requirement and evidence
test_ip_forward_after_install = _network.test_ip_forward
test_clock_synchronised_after_install = _implicit.test_clock_synchronised
test_local_port_range_after_install = _ports.test_local_port_range_gets_through


# --- HOST-RESOURCE-HEADROOM -------------------------------------------------------------------

HEADROOM_CMD = ("df -P -B1 -- {path} | tail -n 1; echo @mem; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; "
                "echo @load; cat /proc/loadavg; echo @cpus; nproc")


def parse_headroom(out: str) -> dict[str, float]:
    """df -P line, MemTotal/MemAvailable, /proc/loadavg and nproc, as numbers."""
    sections: dict[str, list[str]] = {"df": []}
    current = "df"
    for line in out.splitlines():
        if line.startswith("@"):
            current = line[1:].strip()
            sections[current] = []
        elif line.strip():
            sections[current].append(line.strip())
    df = sections["df"][-1].split()
    mem = {ln.split(":")[0]: int(ln.split()[1]) for ln in sections.get("mem", [])}
    return {"disk_pct": round(100.0 * int(df[2]) / int(df[1]), 1) if int(df[1]) else 0.0,
            "mem_pct": round(100.0 * (mem["MemTotal"] - mem["MemAvailable"]) / mem["MemTotal"], 1),
            "load1": float(sections["load"][0].split()[0]), "cpus": int(sections["cpus"][0])}


@requirement("HOST-RESOURCE-HEADROOM")
def test_resource_headroom(target, spec):
    path = str(spec.disk_path)
    res = target.run(HEADROOM_CMD.format(path=shlex.quote(path)), timeout=20)
    try:
        m = parse_headroom(res.stdout)
    except (KeyError, IndexError, ValueError, ZeroDivisionError):
        cannot_measure(f"could not read disk, memory and load on the host: {(res.stderr or res.stdout).strip()[:300]}")
        raise  # not reached
    admin = bool({"admin", "control", "deploy_node"} & set(target.roles))
    mem_warn = float(spec.mem_warn_pct_admin if admin else spec.mem_warn_pct)
    load_warn, load_crit = float(spec.load_warn_factor) * m["cpus"], float(spec.load_crit_factor) * m["cpus"]
    bands = {"disk": "ok", "memory": "ok", "load": "ok"}
    for name, value, warn, crit in (("disk", m["disk_pct"], spec.disk_warn_pct, spec.disk_crit_pct),
                                    ("memory", m["mem_pct"], mem_warn, spec.mem_crit_pct),
                                    ("load", m["load1"], load_warn, load_crit)):
        bands[name] = "critical" if value > float(crit) else "warning" if value > float(warn) else "ok"
    record(disk_path=path, disk_used_pct=m["disk_pct"], memory_used_pct=m["mem_pct"], load1=m["load1"],
           cpus=m["cpus"], bands=bands, memory_band_for="admin host" if admin else "VM")
    method = f"df {path}; /proc/meminfo (MemTotal - MemAvailable); /proc/loadavg; nproc"
    expect(m["disk_pct"], f"disk usage of {path}", method=method, unit="%", soft=True).at_most(
        float(spec.disk_warn_pct))
    expect(m["mem_pct"], "memory usage", method=method, unit="%", soft=True).at_most(mem_warn)
    expect(m["load1"], f"1-minute load ({m['cpus']} CPUs)", method=method, soft=True).at_most(round(load_warn, 2))


# --- LOG-LOGROTATE ----------------------------------------------------------------------------

def parse_logrotate(text: str) -> tuple[list[str], set[str]]:
    """The path globs of a logrotate file and the directives inside its blocks (first word of each line)."""
    globs: list[str] = []
    directives: set[str] = set()
    inside = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not inside and line.endswith("{"):
            globs += shlex.split(line[:-1])
            inside = True
        elif inside and line == "}":
            inside = False
        elif inside:
            directives.add(" ".join(line.split()))
    return globs, directives


@requirement("LOG-LOGROTATE")
def test_pod_log_rotation(target, spec):
    path = str(spec.file)
    text = target.read_file(path)
    if text is None:
        fail(f"{path} does not exist", observed="missing", expected=f"{path} with " + ", ".join(spec.directives),
             method=f"cat {path}")
    globs, directives = parse_logrotate(text or "")
    problems: list[str] = []
    missing = [d for d in spec.directives if d not in directives]
    if missing:
        problems.append("missing directives: " + ", ".join(missing))
    matched: dict[str, int] = {}
    for g in globs:
        res = target.run(f"ls -1d -- {g} 2>/dev/null | wc -l", sudo=True, timeout=20)   # the glob is the shell's job
        if res.rc != 0 or not res.stdout.strip().isdigit():
            cannot_measure(f"cannot list the log files of {g} (exit {res.rc}): "
                           f"{(res.stderr.strip().splitlines() or [repr(res.stdout.strip()[:80])])[-1]}")
        matched[g] = int(res.stdout.strip())
    if not globs:
        problems.append("no log path in the file")
    elif not any(matched.values()):
        problems.append("its paths match no log file on this node: " + ", ".join(globs))
    res = target.run_marked("test -x /etc/cron.daily/logrotate && echo cron; "
                            "(systemctl is-enabled logrotate.timer 2>/dev/null || "
                            "test -e /etc/systemd/system/timers.target.wants/logrotate.timer && echo enabled) "
                            "| head -n 1", "how logrotate runs", timeout=15)
    runs = [w for w in res.stdout.split() if w in ("cron", "enabled")]
    if not runs:
        problems.append("logrotate does not run daily (no /etc/cron.daily/logrotate, logrotate.timer not enabled)")
    record(file=path, globs=matched, directives=sorted(directives), daily_run=runs or "none")
    expect(problems, "pod-log rotation", method=f"{path}; ls of its globs; cron.daily / logrotate.timer").is_empty(
        "the file with all directives, matching log files, run daily", "; ".join(problems))


# --- K8S-SYSCTL-UNPRIV-PORT --------------------------------------------------------------------

@requirement("K8S-SYSCTL-UNPRIV-PORT")
def test_unprivileged_port_start(target, spec, site):
    host_value = target.facts.sysctl_ints("net.ipv4.ip_unprivileged_port_start")
    values = {"host": str(host_value[0]) if host_value else None}
    method = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
    if site.profile == "demo":
        node = str(spec.demo_node_container)
        res = target.run(f"docker exec {shlex.quote(node)} cat /proc/sys/net/ipv4/ip_unprivileged_port_start",
                         sudo=True, timeout=20)
        if res.rc == 0 and res.stdout.strip().isdigit():
            values[f"container {node}"] = res.stdout.strip()
            method += f"; docker exec {node} (the minikube node)"
        else:
            record(minikube_node="not read: " + ((res.stderr.strip().splitlines() or [f"exit {res.rc}"])[-1])[:200])
    if values["host"] is None:
        cannot_measure("cannot read net.ipv4.ip_unprivileged_port_start")
    record(ip_unprivileged_port_start=values)
    limit = int(spec.max_start)
    high = {k: int(v) for k, v in values.items() if v is not None and int(v) > limit}
    expect(high, "net.ipv4.ip_unprivileged_port_start", method=method).is_empty(
        f"<= {limit} everywhere", "; ".join(f"{k}: {v} (> {limit}: non-root workloads cannot bind 443)"
                                            for k, v in high.items()))


# --- K8S-KUBEADM-CERTS -------------------------------------------------------------------------

CERT_LIST = ("for d in {dirs}; do [ -d \"$d\" ] || continue; find \"$d\" -maxdepth 2 -name '*.crt' -type f; done "
             "| sort -u | while read -r f; do printf '%s ' \"$f\"; openssl x509 -noout -enddate -in \"$f\" 2>/dev/null "
             "|| echo unreadable; done")


@requirement("K8S-KUBEADM-CERTS")
def test_control_plane_certificates(target, spec):
    dirs = " ".join(shlex.quote(str(d)) for d in spec.pki_dirs)
    res = target.run(CERT_LIST.format(dirs=dirs), sudo=True, timeout=30)
    now = dt.datetime.now(dt.UTC)
    left: dict[str, float] = {}
    unreadable = []
    for line in res.stdout.splitlines():
        path, _, rest = line.partition(" ")
        if rest.startswith("notAfter="):
            end = dt.datetime.strptime(rest[len("notAfter="):].strip(), "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.UTC)
            left[path] = round((end - now).total_seconds() / 86400, 1)
        elif path:
            unreadable.append(path)
    if not left:
        cannot_measure(f"no certificate found under {', '.join(map(str, spec.pki_dirs))} on this control-plane node"
                       + (f" ({res.stderr.strip()[:200]})" if res.stderr.strip() else ""))
    record(days_left=left, unreadable=unreadable or None, critical_below_days=spec.critical_days)
    soonest = min(left, key=left.__getitem__)
    critical = [p for p, d in left.items() if d < float(spec.critical_days)]
    expect(left[soonest], f"days left of {soonest}", method="openssl x509 -enddate on each *.crt (as root)",
           unit="days").satisfies(lambda d: d >= float(spec.warn_days), f">= {spec.warn_days} days",
                                  f"{len([d for d in left.values() if d < float(spec.warn_days)])} certificate(s) "
                                  f"expire within {spec.warn_days} days, the soonest {soonest} in {left[soonest]} days"
                                  + (f" ({len(critical)} within {spec.critical_days}: critical)" if critical else ""))


# --- IMP-SMTP-EGRESS ---------------------------------------------------------------------------

@requirement("IMP-SMTP-EGRESS")
def test_smtp_egress(target, site, spec):
    relay = site.option("smtp_relay")
    if not relay:
        not_evaluated("the mail server the installation sends through is not known; a probe to an arbitrary "
                      "server on port 25 would prove nothing about the site", option="--smtp-relay HOST[:PORT]")
    host, _, port = str(relay).rpartition(":") if ":" in str(relay) else (str(relay), "", "25")
    timeout = float(spec.timeout_s)
    code = ("import socket,sys\ns=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=float(sys.argv[3]))\n"
            "s.settimeout(float(sys.argv[3]))\nprint(s.recv(512).decode('utf-8','replace').splitlines()[0])\n")
    res = target.run(f"python3 -c {shlex.quote(code)} {shlex.quote(host)} {shlex.quote(port)} {timeout}",
                     timeout=timeout * 2 + 10)
    banner = res.stdout.strip()
    record(relay=f"{host}:{port}", banner=banner or None,
           error=((res.stderr.strip().splitlines() or [None])[-1]) if res.rc else None,
           note="the PTR record of the sending address is not checked here")
    expect(banner, f"SMTP greeting from {host}:{port}", method=f"TCP connect from the host, {timeout:g} s").satisfies(
        lambda b: b.startswith("220"), "a 220 greeting",
        f"no SMTP greeting from {host}:{port}: "
        + (banner or (res.stderr.strip().splitlines() or [f"exit {res.rc}"])[-1])[:200])


# --- IMP-BACKUPS / NET-AWS-REACH ---------------------------------------------------------------

@requirement("IMP-BACKUPS")
def test_backups(target):
    not_evaluated("whether Cassandra, MinIO and PostgreSQL have recent backups depends on where this site "
                  "keeps them, which no inventory states; have the operator attest it",
                  option="--attestations (an attestation for IMP-BACKUPS)")


def _aws_region(site, target) -> str | None:
    for source in (target.vars, site.vars):
        for key in ("aws_region", "gundeck_aws_region"):
            if source.get(key):
                return str(source[key])
    return site.option("aws_region") or None


@requirement("NET-AWS-REACH")
def test_aws_reachable(target, site, spec):
    region = _aws_region(site, target)
    if not region:
        not_applicable("no real AWS services configured (no --aws-region, no inventory aws_region): the "
                       "installation uses fake-aws, so AWS endpoints need not be reachable")
    timeout = float(spec.timeout_s)
    raw = spec.endpoints.split(",") if isinstance(spec.endpoints, str) else spec.endpoints
    endpoints = [str(e).strip().format(region=region) for e in raw if str(e).strip()]
    code = ("import socket,sys\nfor hp in sys.argv[2:]:\n h,_,p=hp.rpartition(':')\n"
            " try:\n  socket.create_connection((h,int(p)),timeout=float(sys.argv[1])).close();print(hp,'ok')\n"
            " except OSError as e:\n  print(hp,'error',e)\n")
    res = target.run(f"python3 -c {shlex.quote(code)} {timeout} " + " ".join(shlex.quote(e) for e in endpoints),
                     timeout=timeout * len(endpoints) + 15)
    answers = dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)
    record(region=region, answers=answers)
    bad = [f"{e}: {answers.get(e, 'no answer')}" for e in endpoints if answers.get(e) != "ok"]
    expect(bad, "AWS endpoints", method=f"DNS + TCP connect from the host, {timeout:g} s").is_empty(
        "every endpoint resolves and accepts TCP", "unreachable: " + "; ".join(bad))
