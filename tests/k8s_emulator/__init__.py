"""Kubernetes API emulator for wirecheck's own tests: states the lab's real API server (tests/lab/k8s.py) cannot
produce, such as pod logs without a kubelet, stalled or malformed answers, recorded responses."""

from .cluster import EmulatedCluster
from .server import FakeKubeApiServer

__all__ = ["EmulatedCluster", "FakeKubeApiServer"]
