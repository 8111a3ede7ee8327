"""Kubernetes API emulator for wirecheck's own tests (no real API server can run here)."""

from .cluster import EmulatedCluster
from .server import FakeKubeApiServer

__all__ = ["EmulatedCluster", "FakeKubeApiServer"]
