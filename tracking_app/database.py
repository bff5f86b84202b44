"""The request path's own connection to PostgreSQL, for what cannot wait for a batch.

One psycopg async connection per app process, used one request at a time: link tables (read once per
campaign, then cached) and unsubscribes (written at once, low volume). Events never use it: they go
through the event writer's thread. A lost connection is reopened by the next request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg

CONNECT_TIMEOUT_S = 5


class Database:
    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.AsyncConnection | None = None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """The connection, for this caller alone until the block ends (autocommit)."""
        async with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
                )
            try:
                yield self._conn
            except psycopg.OperationalError:
                await self._close()
                raise

    async def close(self) -> None:
        async with self._lock:
            await self._close()

    async def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except psycopg.Error:
                pass
