"""Helpers shared by the fixtures in `tests/conftest.py` and by tests that need a server of
their own: settings, throwaway PostgreSQL databases, in-process services."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
import psycopg
from sqlalchemy.engine import make_url

import order_svc.app
import order_svc.config
import user_svc.app
from shop.order.v1 import order_pb2_grpc
from shop.user.v1 import user_pb2_grpc
from shop_common.feed import FeedSettings
from shop_common.serving import Common, RunningServer, ServerLimits, ServiceSettings

POSTGRES_ENV = "TEST_DATABASE_URL"
POSTGRES_SKIP_REASON = "TEST_DATABASE_URL not set: PostgreSQL tests skipped"


# What psycopg says when a connection is garbage collected while still open.
LEAKED_CONNECTION_WARNING = (
    "<psycopg\\.Connection object at 0x[0-9a-f]+> was deleted while still open"
)


def common_settings(
    data_dir: pathlib.Path,
    *,
    drain_seconds: float = 0.0,
    feed: FeedSettings | None = None,
    limits: ServerLimits | None = None,
) -> Common:
    return Common(
        data_dir=data_dir,
        log_level="INFO",
        grace_seconds=0,
        drain_seconds=drain_seconds,
        page_token_key=None,
        feed=feed or FeedSettings(),
        limits=limits or ServerLimits(),
    )


def postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV, "").strip() or None


def _libpq_dsn(url: str) -> str:
    """libpq takes plain `postgresql://` URLs, not SQLAlchemy's `+driver` forms."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresDatabases:
    """Creates throwaway databases on the server of `admin_url` and drops them all at the end."""

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url
        self._created: list[str] = []

    async def create(self) -> str:
        name = f"t_{secrets.token_hex(8)}"
        async with await psycopg.AsyncConnection.connect(
            _libpq_dsn(self._admin_url), autocommit=True
        ) as conn:
            # FILE_COPY (PostgreSQL 15+) copies the tiny template far faster than WAL_LOG.
            fast = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            await conn.execute(f'CREATE DATABASE "{name}"{fast}'.encode())
        self._created.append(name)
        return make_url(self._admin_url).set(database=name).render_as_string(hide_password=False)

    async def drop_all(self) -> None:
        if not self._created:
            return
        async with await psycopg.AsyncConnection.connect(
            _libpq_dsn(self._admin_url), autocommit=True
        ) as conn:
            while self._created:
                name = self._created.pop()
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@contextlib.asynccontextmanager
async def running_user_svc(
    database_url: str,
    data_dir: pathlib.Path,
    *,
    drain_seconds: float = 0.0,
    feed: FeedSettings | None = None,
    limits: ServerLimits | None = None,
    listen: str = "127.0.0.1:0",
    admin_listen: str | None = None,
    channelz: bool = False,
) -> AsyncIterator[RunningServer]:
    settings = ServiceSettings(
        listen=listen,
        database_url=database_url,
        common=common_settings(data_dir, drain_seconds=drain_seconds, feed=feed, limits=limits),
        admin_listen=admin_listen,
        channelz=channelz,
    )
    running = await user_svc.app.start(settings)
    try:
        yield running
    finally:
        await running.stop(grace=0)


@contextlib.asynccontextmanager
async def running_order_svc(
    database_url: str,
    data_dir: pathlib.Path,
    user_svc_addr: str,
    *,
    user_svc_timeout_seconds: float = 2.0,
    feed: FeedSettings | None = None,
    limits: ServerLimits | None = None,
    admin_listen: str | None = None,
) -> AsyncIterator[RunningServer]:
    settings = order_svc.config.Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        user_svc_addr=user_svc_addr,
        user_svc_timeout_seconds=user_svc_timeout_seconds,
        common=common_settings(data_dir, feed=feed, limits=limits),
        admin_listen=admin_listen,
    )
    running = await order_svc.app.start(settings)
    try:
        yield running
    finally:
        await running.stop(grace=0)


@contextlib.asynccontextmanager
async def channel_to(
    port: int, options: Sequence[tuple[str, str | int]] = ()
) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=list(options))
    try:
        yield channel
    finally:
        await channel.close(None)


class Databases:
    """Hands out empty databases on one backend; `new()` may be called several times."""

    def __init__(
        self, backend: str, tmp_path: pathlib.Path, postgres: PostgresDatabases | None
    ) -> None:
        self.backend = backend
        self._tmp_path = tmp_path
        self._postgres = postgres
        self._count = 0

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgres"

    async def new(self) -> str:
        if self._postgres is not None:
            return await self._postgres.create()
        self._count += 1
        return f"sqlite:///{self._tmp_path}/db{self._count}.db"

    async def new_many(self, count: int) -> list[str]:
        return list(await asyncio.gather(*(self.new() for _ in range(count))))


@dataclass
class Services:
    """user_svc and order_svc (pointed at that user_svc), each on its own database."""

    user_server: RunningServer
    order_server: RunningServer
    user_database_url: str
    order_database_url: str
    user_channel: grpc.aio.Channel
    order_channel: grpc.aio.Channel
    users: user_pb2_grpc.UserServiceAsyncStub
    orders: order_pb2_grpc.OrderServiceAsyncStub


async def eventually(
    predicate: Callable[[], Awaitable[bool]],
    within: float,
    what: str = "",
    *,
    interval: float = 0.02,
    context: Callable[[], str] = lambda: "",
) -> None:
    """Polls `predicate` until it holds; an AssertionError it raises counts as not yet. On
    giving up, the failure names `what` (or the predicate) and adds `context()`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: AssertionError | None = None
    while True:
        try:
            if await predicate():
                return
            last = None
        except AssertionError as error:
            last = error
        if loop.time() >= deadline:
            name = what or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"not {name} within {within}s: {last}\n{context()}") from last
        await asyncio.sleep(interval)
