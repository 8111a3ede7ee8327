"""Fixtures for wirecheck's own tests: the namespace test-host lab."""

import os

from tests.lab.fixtures import *  # noqa: F401,F403

# With wire_ip empty, the demo checks ask the deploy node for its public address (api.ipify.org by default,
# as Wire's playbook does). Tests never send traffic off this machine: unless a test serves its own URL
# (--public-ip-url), the question goes to a closed loopback port and fails at once.
os.environ.setdefault("WIRECHECK_PUBLIC_IP_URL", "http://127.0.0.1:9/")
