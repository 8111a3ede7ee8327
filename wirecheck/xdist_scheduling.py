"""How pytest-xdist hands wirecheck's checks to its workers.

All checks of one host go to one worker, in one batch: that worker measures the host's facts once
and runs its port probe once (two temporary listeners on one host would take each other's ports).
Fleet and site checks, which have no host of their own, are units of one and go wherever a worker is
free.

xdist's own ``--dist loadgroup`` reads a group from a suffix it appends to each test's node ID; from
pytest 9.2 on, node IDs are structured and the suffix no longer sticks, so the groups are silently
lost (pytest-dev/pytest-xdist#1386).  wirecheck's workers instead write every test's group to a file
in the run directory before they report their collection, and this scheduler reads it.  Without the
file (an xdist run that wirecheck did not set up), it groups by the ``@group`` suffix as xdist does.
"""

from __future__ import annotations

import json
from pathlib import Path

from xdist.scheduler import LoadScopeScheduling


class HostScheduling(LoadScopeScheduling):
    """xdist's load-by-scope scheduling, with a scope per host (see the module text)."""

    def __init__(self, config, log, groups_file: Path) -> None:
        super().__init__(config, log)
        self.groups_file = groups_file
        self._groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:
            try:
                self._groups = json.loads(self.groups_file.read_text())
            except (OSError, ValueError):
                self._groups = {}
        group = self._groups.get(nodeid)
        if group:
            return group
        if nodeid.rfind("@") > nodeid.rfind("]"):
            return nodeid.split("@")[-1]
        return nodeid
