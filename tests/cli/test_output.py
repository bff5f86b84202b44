"""How the commands print their tables."""

from __future__ import annotations

import psycopg


def test_empty_lists_say_how_to_start(db: psycopg.Connection, run) -> None:
    assert "campaigns server add" in run("server", "list")[1]
    assert "campaigns template add" in run("template", "list")[1]
    assert "campaigns campaign create" in run("campaign", "list")[1]
