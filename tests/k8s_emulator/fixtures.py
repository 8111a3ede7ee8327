"""pytest fixtures around FakeKubeApiServer; import them into a test module to use them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .cluster import EmulatedCluster
from .server import FakeKubeApiServer

StartEmulator = Callable[..., tuple[FakeKubeApiServer, Path]]


@pytest.fixture
def k8s_api_emulator(tmp_path: Path) -> Iterator[StartEmulator]:
    """Start Kubernetes API emulators for a test: `server, kubeconfig = k8s_api_emulator(cluster)`.

    Every emulator started is stopped when the test ends, also when it fails.
    """
    started: list[FakeKubeApiServer] = []

    def start(cluster: EmulatedCluster, **kwargs: object) -> tuple[FakeKubeApiServer, Path]:
        server = FakeKubeApiServer(cluster, **kwargs).start()  # type: ignore[arg-type]
        started.append(server)
        kubeconfig = server.write_kubeconfig(tmp_path / f"kubeconfig-{len(started)}")
        return server, kubeconfig

    try:
        yield start
    finally:
        for server in started:
            server.stop()
