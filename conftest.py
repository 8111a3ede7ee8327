"""wirecheck's pytest wiring: the engine's plugin and the checks' fixtures."""

pytest_plugins = ["wirecheck.plugin", "fixtures.checks"]
