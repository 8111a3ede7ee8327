"""Loads wirecheck's engine (options, targets, verdicts, reports) and the checks' fixtures."""

from fixtures.checks import *  # noqa: F401,F403
from wirecheck.plugin import *  # noqa: F401,F403
