"""scapy's exchange in the closed-vs-filtered classification reads only what can answer the probe
(a BPF filter), and still works where the filter cannot be compiled (no libpcap)."""

from __future__ import annotations

import pytest

from wirecheck.probes import classify


def test_the_exchange_asks_for_the_address_and_every_icmp_error() -> None:
    seen = []

    def sr(pkts, **kw):
        seen.append(kw)
        return ["answered"], []
    assert classify._exchange(sr, ["p"], "198.18.0.7", 0.6, 1) == (["answered"], [])
    # ICMP errors may come from a router on the way, not only from the probed address
    assert seen == [{"timeout": 0.6, "retry": 1, "inter": 0.01, "filter": "host 198.18.0.7 or icmp"}]


def test_without_libpcap_the_exchange_runs_unfiltered() -> None:
    from scapy.error import Scapy_Exception
    seen = []

    def sr(pkts, **kw):
        seen.append(kw)
        if "filter" in kw:
            raise Scapy_Exception("Cannot set filter: libpcap is not available. Cannot compile filter !")
        return ["answered"], []
    assert classify._exchange(sr, ["p"], "198.18.0.7", 0.6, 1) == (["answered"], [])
    assert [("filter" in kw) for kw in seen] == [True, False]


def test_other_errors_of_the_exchange_are_not_hidden() -> None:
    def sr(pkts, **kw):
        raise PermissionError("Operation not permitted")
    with pytest.raises(PermissionError):
        classify._exchange(sr, ["p"], "198.18.0.7", 0.6, 1)


def test_routes_are_read_again_only_when_they_change(monkeypatch) -> None:
    pytest.importorskip("scapy")
    import scapy.layers.inet  # noqa: F401 - sets conf.route
    from scapy.config import conf
    calls = []
    monkeypatch.setattr(conf.route, "resync", lambda: calls.append(1))
    key = [("routes A", ((1, "lo"),))]
    monkeypatch.setattr(classify, "_routing_key", lambda: key[0])
    monkeypatch.setattr(classify, "_ROUTES", {})
    classify._scapy()
    classify._scapy()
    assert len(calls) == 1
    key[0] = ("routes A", ((1, "lo"), (2, "veth0")))     # an interface appeared
    classify._scapy()
    assert len(calls) == 2
    key[0] = None                                          # routes unreadable: read them every time
    classify._scapy()
    classify._scapy()
    assert len(calls) == 4
