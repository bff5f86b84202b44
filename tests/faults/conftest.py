"""The fault scenarios send through servers of their own (tests/faults/fixtures.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def database_url(own_database_url: str) -> str:
    """The campaign database on `own_pg`, instead of the shared server's."""
    return own_database_url
