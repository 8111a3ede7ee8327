"""The site's own checks (site packs: --checks DIR, the wirecheck.checks entry points).

They are collected here, inside suites/, so that they run under the same plugin and fixtures as
Wire's checks: the same targets, verdicts, evidence, waivers, reports and signatures.  Nothing
is collected when the run has no site pack.
"""

from wirecheck.sitepacks import export_checks

export_checks(globals())
