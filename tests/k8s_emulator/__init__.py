"""Kubernetes API emulator for wirecheck's own tests: states the lab's real API server (tests/lab/k8s.py) cannot
produce, such as stalled or malformed answers and recorded responses, and what is not moved yet (README)."""

from .cluster import EmulatedCluster
from .server import FakeKubeApiServer

__all__ = ["EmulatedCluster", "FakeKubeApiServer"]
