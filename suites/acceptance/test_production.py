"""Production hosts and fleet after install: the PRE+ACC checks again, and those that need the running
services (post-install.md › NTP Checks; docs_ubuntu_22.04.md › Troubleshooting external services).

The measuring code is shared with the preflight suite (suites/preflight/test_production.py); after
install the database and control-plane ports are probed against the real services (no temporary
listeners).
"""

from __future__ import annotations

import re
import time

from suites.preflight import test_production as pre
from wirecheck import cannot_measure, expect, not_applicable, record, requirement

# preflight checks run again as acceptance gates: the same function, requirement and evidence
test_private_network = pre.test_private_network


@requirement("TIME-NTP-SYNC")
def test_time_synchronised(target, spec):
    pre.check_time(target, spec)


# preflight checks run again as acceptance gates: the same function, requirement and evidence
test_kernel_modules_and_sysctls = pre.test_kernel_modules_and_sysctls


@requirement("CTRL-HELM-KUBECTL")
def test_helm_kubectl(site, control, spec):
    pre.check_helm_kubectl(site, control, spec, need_server=True)


@requirement("PROD-NET-DB-PORTS")
def test_database_ports(site, spec):
    pre.check_db_ports(site, spec, listen=False)


@requirement("PROD-NET-ASSETHOST")
def test_assethost_serves(site, spec):
    pre.check_assethost(site, spec)


@requirement("K8S-INTERNODE-PORTS")
def test_internode_ports(site, spec):
    pre._inventory(site)
    nodes = site.targets_with_role(*pre.K8S_GROUPS)
    if len(nodes) < 2:
        not_applicable("fewer than two Kubernetes nodes in the inventory")
    pairs = [(a, b, int(p)) for a in nodes for b in nodes if a.name != b.name for p in spec.ports]
    pre.reachability(site, pairs, float(spec.timeout_s), listen=False, life=0, what="control-plane ports")


NTP_CMD = ("for p in ntpd ntpsec chronyd systemd-timesyncd; do pgrep -x \"$p\" >/dev/null && echo \"run $p\"; done; "
           "echo @ntpq; ntpq -pn 2>&1; echo \"@rc=$?\"")


def judge_ntpd(text: str, daemons: list[str]) -> dict:
    running = re.findall(r"^run (\S+)$", text, re.M)
    ntpq = text.split("@ntpq\n", 1)[-1].split("@rc=", 1)[0]
    selected = [ln for ln in ntpq.splitlines() if ln.startswith("*")]
    reach = selected[0][1:].split()[6] if selected and len(selected[0][1:].split()) > 6 else None
    problems = []
    if not set(daemons) & set(running):
        problems.append(f"ntpd is not running (running: {', '.join(running) or 'no time daemon'})")
    others = [d for d in running if d not in daemons]
    if others:
        problems.append(f"{', '.join(others)} runs beside/instead of ntpd (the docs: ntpd and nothing else)")
    if set(daemons) & set(running) and (not selected or reach in (None, "0")):
        problems.append("ntpq -pn shows no selected (*) peer with non-zero reach")
    return {"running": running, "selected_peer": selected[0] if selected else None, "problems": problems}


def clock_offset_ms(target, samples: int = 3) -> tuple[float | None, float | None]:
    """Offset of the host's clock to this machine's, from the sample with the shortest round trip
    (the NTP idea): (offset, uncertainty = half that round trip), both in ms."""
    best = None
    for _ in range(samples):
        sent = time.time()
        res = target.run("date +%s.%N", timeout=10)
        back = time.time()
        text = res.stdout.strip()
        if res.rc == 0 and re.fullmatch(r"\d+\.\d+", text):
            rtt = back - sent
            if best is None or rtt < best[1]:
                best = (float(text) - (sent + back) / 2, rtt)
    if best is None:
        return None, None
    return round(abs(best[0]) * 1000, 1), round(best[1] / 2 * 1000, 1)


@requirement("TIME-CASSANDRA-NTPD")
def test_cassandra_ntpd(target, spec):
    res = target.run(NTP_CMD, timeout=20)
    if res.rc != 0 or "@ntpq" not in res.stdout.splitlines() or "@rc=" not in res.stdout:
        cannot_measure(f"the time-daemon listing did not run on {target.name} (exit {res.rc}): "
                       f"{(res.stderr.strip().splitlines() or [repr(res.stdout.strip()[:80])])[-1]}")
    j = judge_ntpd(res.stdout, list(spec.daemons))
    offset_ms, uncertainty_ms = clock_offset_ms(target)
    record(ntp=j, clock_offset_to_control_ms=offset_ms, uncertainty_ms=uncertainty_ms,
           note="offset measured against the control machine over SSH (the sample with the shortest round trip, "
                "± half of it); two Cassandra nodes differ by at most the sum of their offsets")
    expect(j["problems"], "ntpd on the Cassandra node", method="pgrep; ntpq -pn", soft=True).is_empty(
        "ntpd running with a selected peer", "; ".join(j["problems"]))
    if offset_ms is not None:
        # judged on what is proven: the offset beyond the measuring uncertainty
        expect(max(0.0, offset_ms - uncertainty_ms), "clock offset to the control machine (beyond the "
               f"±{uncertainty_ms} ms uncertainty)", method="date +%s.%N over SSH", unit="ms",
               soft=True).at_most(float(spec.max_diff_ms) / 2)
