"""Fixtures for wirecheck's own tests: the namespace test-host lab."""

from tests.lab.fixtures import *  # noqa: F401,F403
