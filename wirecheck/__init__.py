"""wirecheck: every requirement of Wire's installation docs as a pytest check."""

from __future__ import annotations

__version__ = "0.1.0"

from .outcome import (  # noqa: E402
    cannot_measure,
    expect,
    fail,
    not_applicable,
    not_evaluated,
    record,
)


def requirement(rid: str):
    """Mark a check with the catalog requirement it verifies; an unknown ID fails collection."""
    import pytest

    from .catalog import default_catalog

    default_catalog()[rid]  # raises CatalogError for an unknown ID
    return pytest.mark.requirement(rid)


__all__ = ["requirement", "expect", "record", "fail", "not_applicable", "not_evaluated", "cannot_measure",
           "__version__"]
