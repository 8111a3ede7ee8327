"""Preflight: a host's port probe starts in the background with the first check of that host, when
the run checks something that reads it (suites/preflight/test_ports.py, PROBE_READERS). Its listener
and datagrams then overlap the host's other checks, which only read (files, commands over SSH); the
first check that reads the probe waits for it. Under xdist a host's checks share one worker, so the
probe still runs once per host."""

from __future__ import annotations

import pytest

from suites.preflight import test_ports
from wirecheck.coordination import SITE_KEY
from wirecheck.verdicts import applicability, requirement_of

_READ_ON: set[str] = set()   # hosts whose probe a check of this run reads


def _target(item: pytest.Item):
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("target") if callspec else None


def pytest_collection_finish(session: pytest.Session) -> None:
    site = session.config.stash.get(SITE_KEY, None)
    if site is None:
        return
    for item in session.items:
        req, target = requirement_of(item), _target(item)
        if req is not None and target is not None and req.id in test_ports.PROBE_READERS \
                and applicability(req, site, item) is None:
            _READ_ON.add(target.name)


def pytest_runtest_setup(item: pytest.Item) -> None:
    target = _target(item)
    if target is not None and target.name in _READ_ON:
        test_ports.prefetch(target, item.config.stash[SITE_KEY])


def pytest_sessionfinish(session: pytest.Session) -> None:
    test_ports.join_prefetched()
