"""The storage engine: one code path over SQLite (embedded default) and PostgreSQL.

SQLAlchemy Core on asyncio drivers (aiosqlite runs SQLite in a thread of its
own, asyncpg is native), so no query ever blocks the event loop.

SQLite: WAL mode; writes go through a single connection that opens its
transactions with BEGIN IMMEDIATE, so writers queue instead of failing on a
lock upgrade, and reads use a small pool of their own. PostgreSQL: one pool;
writers serialize on the revision counter row (see `changelog`).
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
)


def async_url(url: str) -> URL:
    """`sqlite:///…` and `postgresql://…` with the asyncio driver filled in."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database URL {parsed.render_as_string()!r}")


def _sqlite_engine(url: URL, begin: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_pre_ping=False)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


class Database:
    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        if self.is_postgres:
            self._writer = create_async_engine(self.url, pool_size=10, max_overflow=10)
            # Same pool; reads see one snapshot across their statements.
            self._reader = self._writer.execution_options(isolation_level="REPEATABLE READ")
        else:
            if self.url.database and self.url.database != ":memory:":
                pathlib.Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self._writer = _sqlite_engine(self.url, "BEGIN IMMEDIATE", pool_size=1)
            self._reader = _sqlite_engine(self.url, "BEGIN", pool_size=4)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that may write; committed when the block exits cleanly."""
        async with self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction: one consistent snapshot for all its statements."""
        async with self._reader.begin() as conn:
            yield conn

    async def close(self) -> None:
        await self._writer.dispose()
        if not self.is_postgres:
            await self._reader.dispose()
