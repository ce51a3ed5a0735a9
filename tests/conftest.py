"""Fixtures every test directory may use: databases on each backend and the two services.

`database_url` (and `databases`, for tests that need more than one database) run each test
on SQLite and on PostgreSQL. PostgreSQL needs TEST_DATABASE_URL, a server on which the tests
may create databases; every test gets throwaway databases there, dropped afterwards.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

from shop.order.v1 import order_pb2_grpc
from shop.user.v1 import user_pb2_grpc
from tests.support import (
    POSTGRES_SKIP_REASON,
    Databases,
    PostgresDatabases,
    Services,
    channel_to,
    postgres_admin_url,
    running_order_svc,
    running_user_svc,
)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def databases(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[Databases]:
    backend: str = request.param
    if backend == "sqlite":
        yield Databases(backend, tmp_path, None)
        return
    admin_url = postgres_admin_url()
    if admin_url is None:
        pytest.skip(POSTGRES_SKIP_REASON)
    postgres = PostgresDatabases(admin_url)
    try:
        yield Databases(backend, tmp_path, postgres)
    finally:
        await postgres.drop_all()


@pytest.fixture
async def postgres() -> AsyncIterator[PostgresDatabases]:
    """Throwaway databases on the PostgreSQL server (tests that need several services
    sharing one); skipped where there is none."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        pytest.skip(POSTGRES_SKIP_REASON)
    databases = PostgresDatabases(admin_url)
    try:
        yield databases
    finally:
        await databases.drop_all()


@pytest.fixture
async def database_url(databases: Databases) -> str:
    """An empty database on each backend."""
    return await databases.new()


@pytest.fixture
async def services(databases: Databases, tmp_path: pathlib.Path) -> AsyncIterator[Services]:
    user_url, order_url = await databases.new_many(2)
    async with running_user_svc(user_url, tmp_path / "user_svc") as user_server:
        user_addr = f"127.0.0.1:{user_server.port}"
        async with (
            running_order_svc(order_url, tmp_path / "order_svc", user_addr) as order_server,
            channel_to(user_server.port) as user_channel,
            channel_to(order_server.port) as order_channel,
        ):
            yield Services(
                user_server=user_server,
                order_server=order_server,
                user_database_url=user_url,
                order_database_url=order_url,
                user_channel=user_channel,
                order_channel=order_channel,
                users=user_pb2_grpc.UserServiceStub(user_channel),
                orders=order_pb2_grpc.OrderServiceStub(order_channel),
            )
