"""wirecheck's xdist scheduler: a scope per host from the groups file the workers write."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from wirecheck.xdist_scheduling import HostScheduling


@pytest.fixture
def scheduler(tmp_path):
    # what xdist's scheduler reads of the config: the worker count (-n 2)
    options = {"tx": ["2*popen"], "dist": "loadgroup", "loadscopereorder": True}
    config = SimpleNamespace(option=SimpleNamespace(**options), getvalue=options.get)

    def make(groups=None):
        path = tmp_path / "groups.json"
        if groups is not None:
            path.write_text(json.dumps(groups))
        return HostScheduling(config, None, path)
    return make


def test_groups_come_from_the_file(scheduler):
    s = scheduler({"a.py::test_x[db1]": "host:db1", "a.py::test_y[db1]": "host:db1",
                   "a.py::test_x[db2]": "host:db2", "a.py::test_fleet": "check:a.py::test_fleet"})
    assert s._split_scope("a.py::test_x[db1]") == s._split_scope("a.py::test_y[db1]") == "host:db1"
    assert s._split_scope("a.py::test_x[db2]") == "host:db2"
    assert s._split_scope("a.py::test_fleet") != s._split_scope("a.py::test_x[db1]")


def test_without_the_file_it_groups_like_xdist(scheduler):
    s = scheduler()
    assert s._split_scope("a.py::test_x[p]@g1") == s._split_scope("b.py::test_z@g1") == "g1"
    assert s._split_scope("a.py::test_x[a@b]") == "a.py::test_x[a@b]"    # an @ inside a parameter
    assert s._split_scope("a.py::test_x") == "a.py::test_x"
