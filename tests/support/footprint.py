"""'Nothing left on the target': what a probe or run added to a host's footprint (processes, sockets,
files) and has not removed again."""

from __future__ import annotations

import time
from collections.abc import Callable


def assert_nothing_added(take: Callable[[], dict[str, list]], before: dict[str, list], what: str,
                         timeout: float = 10.0, step: float = 0.2) -> None:
    """Wait up to ``timeout`` until ``take()`` shows nothing that ``before`` did not have, then assert
    so, naming what was left. What was there before and has gone since (an earlier test's SSH
    session still closing when ``before`` was taken) is not the probe's and does not count."""
    def added() -> dict[str, list]:
        now = take()
        return {k: sorted(set(now[k]) - set(before[k])) for k in before}
    deadline = time.monotonic() + timeout
    extra = added()
    while any(extra.values()) and time.monotonic() < deadline:
        time.sleep(step)
        extra = added()
    assert not any(extra.values()), f"{what} left on the target: {({k: v for k, v in extra.items() if v})}"
