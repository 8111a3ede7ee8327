"""Port-probe helpers without a network: port sets, range formatting, messages, the agent's parsing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wirecheck.probes import udp_listener as agent
from wirecheck.probes import udp_sender as send_agent
from wirecheck.probes.ports import AGENT_ARGV, AgentProcess, PortProbeResult, format_ranges, parse_ports


def test_parse_ports_accepts_ranges_lists_and_colon_syntax() -> None:
    assert parse_ports("32768-32770") == [32768, 32769, 32770]
    assert parse_ports("22, 80,443") == [22, 80, 443]
    assert parse_ports("40000:40002") == [40000, 40001, 40002]
    assert parse_ports(3478) == [3478]
    assert parse_ports(["80", 443, "1000-1001"]) == [80, 443, 1000, 1001]
    assert len(parse_ports("32768-65535")) == 32768


@pytest.mark.parametrize("bad", ["0", "70000", "5-3", "abc"])
def test_parse_ports_rejects_nonsense(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_ports(bad)


def test_format_ranges_compresses_and_limits() -> None:
    ports = list(range(40000, 41000)) + [55555] + list(range(60000, 60011))
    assert format_ranges(ports) == "40000-40999, 55555, 60000-60010"
    assert format_ranges(range(1, 100, 2), limit=3) == "1, 3, 5, … (47 more ranges)"
    assert format_ranges([]) == ""


def test_blocked_summary_reads_like_the_issue() -> None:
    requested = list(range(32768, 65536))
    blocked = list(range(40000, 41000)) + [55555] + list(range(60000, 60011))
    blocked_set = set(blocked)
    r = PortProbeResult(probed_address="198.51.100.7", prober="local", udp_requested=requested,
                        udp_blocked=blocked, udp_passed=[p for p in requested if p not in blocked_set])
    assert r.udp_blocked_summary() == "1,012 of 32,768 ports blocked: 40000-40999, 55555, 60000-60010"
    r.udp_blocked = []
    assert r.udp_blocked_summary() == "all 32,768 of 32,768 probed ports got through"
    r.udp_in_use = {50000: "pid 7 (coturn)", 50001: "pid 7 (coturn)"}
    assert r.udp_probed == [p for p in requested if p not in (50000, 50001)]
    assert r.udp_in_use_summary() == "50000-50001 (pid 7 (coturn))"
    ev = r.evidence()
    assert ev["udp_requested"] == "32768-65535"
    assert ev["udp_in_use"] == {"50000": "pid 7 (coturn)", "50001": "pid 7 (coturn)"}


def test_only_the_runs_token_counts() -> None:
    token = b"0123456789abcdef"
    assert agent.parse_payload(agent.make_payload(token, 40000), token) == 40000
    assert agent.parse_payload(agent.make_payload(token, 40000, size=1400), token) == 40000
    assert len(agent.make_payload(token, 40000, size=1400)) == 1400
    assert agent.parse_payload(agent.make_payload(b"fedcba9876543210", 40000), token) is None
    assert agent.parse_payload(b"hello", token) is None
    assert agent.to_ranges([5, 1, 2, 3, 7]) == [[1, 3], [5, 5], [7, 7]]
    assert agent.from_ranges([[1, 3], [7, 7]]) == [1, 2, 3, 7]


def _local_spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    # the agent under the same interpreter, on this machine, binding only loopback ports below
    return subprocess.Popen([sys.executable, *argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_agent_bootstrap_runs_from_stdin_and_obeys_its_deadline() -> None:
    """The agent exits on its own hard deadline even while stdin stays open."""
    assert AGENT_ARGV[:4] == ["python3", "-I", "-S", "-c"]
    proc_holder: list[subprocess.Popen[bytes]] = []

    def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
        proc_holder.append(_local_spawn(argv))
        return proc_holder[0]

    ag = AgentProcess(spawn, {"token": "ab", "udp": [], "tcp": [], "deadline": 1.0, "bind": "127.0.0.1"}, 10)
    try:
        assert ag.ready["ev"] == "ready"
        assert proc_holder[0].wait(timeout=10) == 0  # stdin still open: the deadline ended it
    finally:
        ag.kill()


def test_agent_exits_on_stdin_eof() -> None:
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
        procs.append(_local_spawn(argv))
        return procs[-1]

    ag = AgentProcess(spawn, {"token": "ab", "udp": [[47000, 47009]], "tcp": [], "deadline": 60,
                              "bind": "127.0.0.1"}, 10)
    assert agent.from_ranges(ag.ready["bound_udp"]) == list(range(47000, 47010)) or ag.ready["in_use_udp"]
    assert procs[0].stdin is not None
    procs[0].stdin.close()
    assert procs[0].wait(timeout=10) == 0
    ag.kill()


# --- what counts as reachable (issue 12: a mutant dropping the token check survived) -------------------

def test_tcp_open_without_the_token_is_not_reachable():
    from wirecheck.probes.ports import TcpPortResult
    mine = TcpPortResult(port=80, state="open", seconds=0.01, detail="", confirmed=True)
    other = TcpPortResult(port=80, state="open", seconds=0.01, detail="", confirmed=False)
    refused = TcpPortResult(port=80, state="refused", seconds=0.01, detail="", confirmed=True)
    existing = TcpPortResult(port=22, state="open", seconds=0.01, detail="SSH-2.0-x", confirmed=False,
                             existing_service="pid 1 (sshd)")
    existing_closed = TcpPortResult(port=22, state="timed out", seconds=2, detail="", confirmed=False,
                                    existing_service="pid 1 (sshd)")
    assert mine.passed and not other.passed and not refused.passed
    assert existing.passed and not existing_closed.passed


def test_icmp_answers_read_as_closed_or_filtered() -> None:
    assert send_agent.icmp_verdict(3, 3) == "closed (ICMP port unreachable)"
    assert send_agent.icmp_verdict(3, 13) == "filtered (rejected) (ICMP communication administratively prohibited)"
    assert send_agent.icmp_verdict(3, 1) == "filtered (rejected) (ICMP host unreachable)"
    assert send_agent.icmp_verdict(3, 7) == "filtered (rejected) (ICMP code 7)"
    assert send_agent.icmp_verdict(11, 0) == "filtered (rejected) (ICMP type 11 code 0)"


def test_tcp_attempts_fit_inside_the_timeout() -> None:
    from wirecheck.probes.ports import TCP_ATTEMPTS, tcp_stagger

    for timeout in (0.3, 0.9, 1.5, 3.0, 10.0):
        stagger = tcp_stagger(timeout)
        assert (TCP_ATTEMPTS - 1) * stagger < timeout / 2   # the last attempt has half the timeout left
        assert 0.05 <= stagger <= 0.25
