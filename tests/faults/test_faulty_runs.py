"""Whole runs against a half-broken site: bounded time, `error` exactly where nothing could be
measured, a valid report however the run ends, and nothing of ours left on the targets or the runner.

Real faults: lab hosts (network namespaces with their own sshd) whose sshd is replaced by a port that
accepts and never speaks, or is killed mid-run; a dnsmasq frozen with SIGSTOP; a TCP port that accepts
and never completes a TLS handshake; pytest itself interrupted with SIGINT or killed with SIGKILL while
the port probe's temporary listener runs on the target.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.faults.helpers import (
    SilentTcp,
    host_processes_matching,
    kill_ssh_service,
    our_ssh_processes,
    socket_dirs_of,
    wait_until,
)
from tests.support.dnsmasq import DnsmasqServer, wire_zone
from tests.support.wc import QUIET_PLUGINS, REPO, host_args, run_suite

DOMAIN = "wire.example.test"
FAST = ["--connect-timeout", "2", "--dns-timeout", "0.5", "--dns-tries", "1"]


def transport_error(result: dict) -> bool:
    return result["status"] == "error" and "could not measure: ssh " in result["message"]


def by_target(compliance: dict) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for req in compliance["requirements"]:
        for res in req["results"]:
            out.setdefault(res["target"], {})[req["id"]] = res
    return out


def test_five_hosts_two_broken_differently(lab, tmp_path):
    """The issue's acceptance run: 3 good hosts, one whose sshd accepts TCP and never sends a banner, one
    whose sshd dies (sessions included) while its checks run, and a frozen resolver."""
    hosts = lab.add_hosts([{"name": n, "user": "wire", "sudo": True} for n in ("good1", "good2", "good3", "mute", "dropped")])
    good, mute, dropped = hosts[:3], hosts[3], hosts[4]
    mute.stop_sshd()
    inv = tmp_path / "hosts.yml"
    lab.inventory_yaml(inv, vars={"target_domain": DOMAIN, "wire_ip": "127.0.0.1"}, group="deploy_node")

    def drop_when_busy() -> None:
        # wait until the run has its connection to `dropped`, let a few checks through, then "reboot" it
        if wait_until(lambda: [c for _, c in our_ssh_processes(dropped.address) if " -M " in f" {c} "], 60):
            time.sleep(1.0)
            kill_ssh_service(dropped)

    with SilentTcp(mute.address, 22, host=mute), DnsmasqServer(wire_zone(DOMAIN, "127.0.0.1"),
                                                                 address="127.0.0.77") as dns:
        dns.pause()                                       # a resolver that takes queries and never answers
        killer = threading.Thread(target=drop_when_busy, daemon=True)
        killer.start()
        start = time.monotonic()
        run = run_suite(["--ansible-inventory", str(inv), "-k", "not port", "--nameserver", dns.nameserver, *FAST],
                        tmp_path / "r", timeout=240)
        elapsed = time.monotonic() - start
        killer.join(timeout=5)
    c = run.compliance                                    # valid JSON, complete
    assert c["complete"] is True and "INTERNALERROR" not in run.stdout + run.stderr
    results = by_target(c)
    # the good hosts: measured, all alike, no transport error
    statuses = [{rid: r["status"] for rid, r in results[h.name].items()} for h in good]
    assert statuses[0] == statuses[1] == statuses[2]
    assert not [r for h in good for r in results[h.name].values() if transport_error(r)]
    assert sum(s == "pass" for s in statuses[0].values()) >= 8
    # the mute host: every check that measures on the host is an error naming the connection; checks
    # that stop before the host (an input missing, not applicable) say what they say on a good host
    mute_results = results["mute"]
    assert set(mute_results) == set(statuses[0])
    for rid, r in mute_results.items():
        if statuses[0][rid] in ("not_applicable", "not_evaluated") and r["status"] == statuses[0][rid]:
            continue
        assert transport_error(r) and "cannot connect" in r["message"], r
    assert sum(transport_error(r) for r in mute_results.values()) >= 10
    # the dropped host: what ran before the drop has its verdict, everything after is an error
    lost = [r for r in results["dropped"].values() if transport_error(r)]
    measured = [r for r in results["dropped"].values() if r["status"] in ("pass", "fail", "warn")]
    assert lost and measured, results["dropped"]
    assert all(("connection lost" in r["message"] or "cannot connect" in r["message"]) for r in lost)
    assert all(r["status"] != "error" or transport_error(r) for r in results["dropped"].values())
    # the frozen resolver: the site's DNS checks say error, with the resolver, within their timeout
    for rid in ("DNS-DEMO-RECORDS", "DNS-SPF", "IMP-CAA"):
        res = run.result(rid)
        assert res["status"] == "error" and dns.nameserver.split(":")[0] in res["message"], res["message"]
        assert res["duration"] < 0.5 * 1 * 3 + 2, res
    # bounded: connect timeouts once per broken host, not once per check
    assert elapsed < 120, elapsed
    assert not our_ssh_processes(mute.address) and not our_ssh_processes(dropped.address)


def test_tls_server_that_never_finishes_the_handshake(tmp_path):
    with SilentTcp("127.0.0.78", 0 or 8443) as silent:
        start = time.monotonic()
        run = run_suite(["--domain", DOMAIN, "--wire-ip", "127.0.0.78", "--tls-port", "8443", "--tls-timeout", "1",
                         "-k", "tls"], tmp_path / "r", suite="suites/acceptance")
        elapsed = time.monotonic() - start
        assert silent.proc.poll() is None
    for rid in ("TLS-SAN", "TLS-EXPIRY", "TLS-CIPHERS"):
        res = run.result(rid)
        assert res["status"] == "error", res
        assert res["duration"] < 8, res
    assert elapsed < 60


def test_max_run_time_stops_cleanly_and_writes_the_report(lab, tmp_path):
    h = lab.add_host("deploy_node", user="wire", sudo=True)
    with DnsmasqServer(wire_zone(DOMAIN, "127.0.0.1"), address="127.0.0.79") as dns:
        dns.pause()
        start = time.monotonic()
        # the frozen resolver with a 30 s query timeout would hold the run far past the limit
        run = run_suite([*host_args(h), "--domain", DOMAIN, "--nameserver", dns.nameserver, "--dns-timeout", "30",
                         "--max-run-time", "4", "-k", "not port"], tmp_path / "r")
        elapsed = time.monotonic() - start
    c = run.compliance
    assert c.get("stopped", "").startswith("wirecheck: --max-run-time reached"), c.get("stopped")
    statuses = [r["status"] for q in c["requirements"] for r in q["results"]]
    stopped = [r for q in c["requirements"] for r in q["results"] if "--max-run-time" in r["message"]]
    assert stopped and all(r["status"] == "not_evaluated" for r in stopped)
    assert "pass" in statuses                           # what ran before the limit kept its verdict
    assert elapsed < 4 + 20, elapsed                    # the limit, plus pytest's start and the report
    assert not our_ssh_processes(h.address)


def _start_port_run(h, report_dir: Path) -> subprocess.Popen:
    """pytest on the port checks of one host (their probe keeps a listener on the target for a while)."""
    argv = [sys.executable, "-m", "pytest", "suites/preflight", "-q", *QUIET_PLUGINS, "--report-dir", str(report_dir),
            *host_args(h), "-k", "port or ansible_version"]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_run_interrupted_while_the_listener_is_up_leaves_nothing(lab, tmp_path, sig):
    h = lab.add_host("deploy_node", user="wire", sudo=True)
    proc = _start_port_run(h, tmp_path / "r")
    try:
        # the listener itself (its bootstrap names WIRECHECK_AGENT), not the batch's or the checks' python3 -c
        agent = wait_until(lambda: host_processes_matching(h, "WIRECHECK_AGENT"), 60, step=0.05)
        if not agent:
            proc.kill()
            pytest.fail(f"the port probe's listener never started on the target:\n{proc.communicate()[0][-3000:]}")
        socket_dirs = socket_dirs_of(proc.pid)         # this run's, not those of other runs on the machine
        assert socket_dirs and all(os.path.isdir(d) for d in socket_dirs)
        proc.send_signal(sig)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # the listener ends on stdin EOF (our side is gone) or by its deadline; give it a few seconds
    assert wait_until(lambda: not host_processes_matching(h, "python3 -c"), 15), host_processes_matching(h, "python3 -c")
    assert wait_until(lambda: not our_ssh_processes(h.address), 10), our_ssh_processes(h.address)
    assert wait_until(lambda: not [d for d in socket_dirs if os.path.exists(d)], 10), socket_dirs
    report = tmp_path / "r" / "compliance.json"
    c = json.loads(report.read_text())                   # the report there is valid JSON
    assert c["complete"] is False
    if sig == signal.SIGINT:
        assert proc.returncode == 2 and c.get("stopped") == "interrupted", out[-2000:]
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not [p for p in os.listdir(tmp_path / "r") if p.endswith(".tmp")]


def test_unreachable_host_is_tried_once_per_run_under_xdist(lab, tmp_path):
    """With -n 2 the controller's connect attempt is the run's only one: the workers and the fleet
    checks read its error ("cannot connect") instead of each waiting out their own connect timeout.
    The silent listener holds every connection it accepts, so the count on the host is the count of
    attempts."""
    good, mute = lab.add_hosts([{"name": n, "user": "wire", "sudo": True} for n in ("fine", "silent")])
    mute.stop_sshd()
    inv = tmp_path / "hosts.yml"
    lab.inventory_yaml(inv, vars={"target_domain": DOMAIN, "wire_ip": "127.0.0.1"}, group="deploy_node")
    with SilentTcp(mute.address, 22, host=mute):
        run = run_suite(["--ansible-inventory", str(inv), "-k", "not port and not dns and not tls", "-n", "2",
                         *FAST], tmp_path / "r", timeout=240)
        attempts = int(mute.exec("ss -Htn '( sport = :22 )' | wc -l").stdout.strip())
    results = by_target(run.compliance)
    errors = [r for r in results["silent"].values() if transport_error(r)]
    assert len(errors) >= 10 and all("cannot connect" in r["message"] for r in errors), errors
    assert not [r for r in results["fine"].values() if transport_error(r)]
    assert attempts == 1, attempts


@pytest.mark.parametrize("limit, status", [("1", "error"), ("20", None)])
def test_command_timeout_bounds_each_command(lab, tmp_path, limit, status):
    """A host whose nproc takes 3 s: with --command-timeout 1 the CPU check is an error that names the
    limit (and the run goes on); with the default limit it is measured."""
    h = lab.add_host("sluggish", user="wire", sudo=True,
                     files={"/usr/bin/nproc": ("#!/bin/sh\nsleep 3\necho 2\n", 0o755)})
    run = run_suite([*host_args(h), "-k", "test_cpu_cores or test_os_release", "--command-timeout", limit],
                    tmp_path / "r", timeout=120)
    cpu = run.result("DEMO-SYS-CPU")
    if status == "error":
        assert cpu["status"] == "error" and "within 1 s" in cpu["message"], cpu
    else:
        assert cpu["status"] == "fail" and "2" in str(cpu["observed"]), cpu     # 2 cores, 16 needed
    assert run.status("DEMO-SYS-OS") in ("pass", "fail")                          # the run went on
