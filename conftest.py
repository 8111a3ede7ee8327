"""Repository root: makes `wirecheck`, `fixtures` and `provisioners` importable for pytest.

The checks' plugin is wired in suites/conftest.py, so that the framework's own tests (tests/)
run without it and never write compliance reports.
"""
