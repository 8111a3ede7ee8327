"""RFC 6125 name matching at its edges (fast, pure; test_tls_probe.py proves it against served chains)."""

from __future__ import annotations

import pytest

from wirecheck.probes.tls import hostname_matches, matching_san


@pytest.mark.parametrize(("name", "san", "matches"), [
    ("a.example.test", "*.example.test", True),            # the shortest wildcard allowed: two labels under it
    ("a.test", "*.test", False),                           # never directly under one label
    ("a.other.test", "*.example.test", False),             # same depth, other parent
    (".example.test", "*.example.test", False),            # an empty label is no label
    ("a..test", "a..test", False),                         # nor is a SAN with an empty label a name
    ("a.*.example.test", "a.*.example.test", False),       # a literal star is never a host name
    ("a.*.example.test", "*.*.example.test", False),       # one wildcard, in the left-most label only
    ("WWW.EXAMPLE.X", "www.example.x", True),              # case-insensitive, to the last label
    ("www.example.x.", "WWW.EXAMPLE.X", True),             # a trailing dot is the same name
])
def test_name_against_one_san(name, san, matches):
    assert hostname_matches(name, [san]) is matches


def test_ip_sans_cover_addresses_in_any_spelling():
    assert hostname_matches("127.0.0.1", [], ["127.0.0.1"]) is True
    assert hostname_matches("127.0.0.1", ["127.0.0.1"]) is False
    assert hostname_matches("::1", [], ["0:0::1"]) is True
    assert matching_san("::1", [], ["::2", "0::1"]) == "0::1"
    assert matching_san("a.example.test", ["b.example.test", "*.example.test"]) == "*.example.test"
