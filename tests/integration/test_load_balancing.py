"""Replicas behind gRPC targets, for real: two user_svc replicas on one PostgreSQL database,
dialed by the order service and by the gateway through `ipv4:127.0.0.1:p1,127.0.0.1:p2`.
The calls, not the connections, are spread (`round_robin`): each replica's own
`grpc_server_handled_total`, read from its admin port, counts its share. Shares are not
asserted to be halves (calls made before the second connection is up all go to the
first), only substantial: a channel that picks one address (grpc's `pick_first`) gives the
other none."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncIterator, Sequence

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2

import gateway.config
import gateway.server
from shop.order.v1 import order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.domain import new_id
from shop_common.feed import FeedSettings
from shop_common.security import open_channel
from shop_common.serving import RunningServer
from tests.integration.helpers import create_user, fails, order_request
from tests.integration.test_metrics import USERS, method, scraped
from tests.support import (
    PostgresDatabases,
    channel_to,
    running_order_svc,
    running_user_svc,
)

CALLS = 100
SUBSTANTIAL = CALLS // 4
"""Each replica's least share of `CALLS` (round robin gives each half, bar the first few)."""
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = "USER_NOT_FOUND"
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
FEED = FeedSettings(progress_seconds=0.2, poll_seconds=0.1)


@contextlib.asynccontextmanager
async def two_user_replicas(
    postgres: PostgresDatabases, tmp_path: pathlib.Path
) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    """Two user services on one database, each with its admin port (its own metrics)."""
    url = await postgres.create()
    async with (
        running_user_svc(url, tmp_path / "a", feed=FEED, admin_listen="127.0.0.1:0") as a,
        running_user_svc(url, tmp_path / "b", feed=FEED, admin_listen="127.0.0.1:0") as b,
    ):
        yield a, b


def addresses(*replicas: RunningServer) -> str:
    return "ipv4:" + ",".join(f"127.0.0.1:{r.port}" for r in replicas)


async def handled(replicas: Sequence[RunningServer], name: str, code: str) -> list[int]:
    """How many calls of UserService `name` each replica answered with `code`."""
    labels = {**method("unary", USERS, name), "grpc_code": code}
    counts = []
    for replica in replicas:
        samples = await scraped(replica)
        counts.append(int(samples[("grpc_server_handled_total", frozenset(labels.items()))]))
    return counts


def assert_spread(counts: list[int], total: int) -> None:
    assert sum(counts) == total, counts
    assert min(counts) >= SUBSTANTIAL, f"calls not spread over both replicas: {counts}"


@pytest.mark.postgres
async def test_the_order_service_spreads_its_calls_over_two_user_replicas(
    postgres: PostgresDatabases, tmp_path: pathlib.Path
) -> None:
    async with (
        two_user_replicas(postgres, tmp_path) as replicas,
        running_order_svc(
            await postgres.create(), tmp_path / "orders", addresses(*replicas), feed=FEED
        ) as order_server,
        channel_to(order_server.port) as channel,
    ):
        orders = order_pb2_grpc.OrderServiceStub(channel)
        # A user no one knows: each order for one asks the user service (GetUser, NotFound).
        for _ in range(CALLS):
            await fails(orders.CreateOrder(order_request(new_id())), PRECONDITION, NOT_FOUND)
        counts = await handled(replicas, "GetUser", "NotFound")
    assert_spread(counts, CALLS)


@pytest.mark.postgres
async def test_the_gateway_spreads_its_calls_over_two_user_replicas_and_checks_their_health(
    postgres: PostgresDatabases, tmp_path: pathlib.Path
) -> None:
    async with (
        two_user_replicas(postgres, tmp_path) as replicas,
        running_order_svc(
            await postgres.create(), tmp_path / "orders", addresses(*replicas), feed=FEED
        ) as order_server,
    ):
        settings = gateway.config.Settings.from_env(
            {
                "GATEWAY_LISTEN": "127.0.0.1:0",
                "GATEWAY_ADMIN_LISTEN": "",
                "GATEWAY_ACCESS_LOG": "false",
                "GATEWAY_RATE_LIMIT_PER_SECOND": "0",
                "GATEWAY_USER_SVC_ADDR": addresses(*replicas),
                "GATEWAY_ORDER_SVC_ADDR": f"dns:///localhost:{order_server.port}",
            }
        )
        running = await gateway.server.start(settings)
        try:
            async with httpx.AsyncClient(base_url=running.url, timeout=5) as http:
                created = await http.post(
                    "/v1/users", json={"email": "ada@example.com", "displayName": "Ada"}
                )
                assert created.status_code == 201, created.text
                user_id = created.json()["id"]
                for _ in range(CALLS):
                    got = await http.get(f"/v1/users/{user_id}")
                    assert got.status_code == 200, got.text
                health = await http.get("/healthz")
        finally:
            await running.stop()
        counts = await handled(replicas, "GetUser", "OK")
    assert_spread(counts, CALLS)
    assert health.status_code == 200, health.text
    assert set(health.json()["services"].values()) == {"SERVING"}


@pytest.mark.postgres
async def test_a_watch_through_a_balanced_channel_sees_the_writes_made_through_both(
    postgres: PostgresDatabases, tmp_path: pathlib.Path
) -> None:
    """The watch is one call, on one replica; the creates alternate between the two. The
    replica watched sees the other's commits as its own (the feed's promise across replicas
    is `test_feed`'s: every revision once, in order)."""
    async with two_user_replicas(postgres, tmp_path) as replicas:
        channel = await open_channel(addresses(*replicas), [], None)
        try:
            users = user_pb2_grpc.UserServiceStub(channel)
            watch = users.WatchUsers(user_pb2.WatchUsersRequest(start_revision=1))
            created = [(await create_user(users)).id for _ in range(20)]
            seen: list[tuple[int, str]] = []
            async with asyncio.timeout(10):
                async for response in watch:
                    seen += [(e.revision, e.user.id) for e in response.events]
                    if len(seen) >= len(created):
                        break
            watch.cancel()
        finally:
            await channel.close(None)
        counts = await handled(replicas, "CreateUser", "OK")
    assert seen == list(enumerate(created, start=1))
    assert sum(counts) == len(created)
    assert min(counts) >= len(created) // 4, f"creates not spread: {counts}"


async def test_a_dns_target_reaches_the_user_service(tmp_path: pathlib.Path) -> None:
    """`dns:///localhost:port`: localhost is also `::1`, where nothing listens; round robin
    leaves that address out and calls the one that answers."""
    async with (
        running_user_svc(f"sqlite:///{tmp_path}/users.db", tmp_path / "u", feed=FEED) as users,
        running_order_svc(
            f"sqlite:///{tmp_path}/orders.db", tmp_path / "o", f"dns:///localhost:{users.port}"
        ) as order_server,
        channel_to(users.port) as user_channel,
        channel_to(order_server.port) as order_channel,
    ):
        user = await create_user(user_pb2_grpc.UserServiceStub(user_channel))
        orders = order_pb2_grpc.OrderServiceStub(order_channel)
        placed = await orders.CreateOrder(order_request(user.id), timeout=5)
        assert placed.order.user_id == user.id
        unknown = orders.CreateOrder(order_request(new_id()), timeout=5)
        await fails(unknown, PRECONDITION, NOT_FOUND)


@pytest.mark.postgres
async def test_the_gateways_healthz_asks_past_a_replica_that_is_not_serving(
    postgres: PostgresDatabases, tmp_path: pathlib.Path
) -> None:
    """One replica draining (NOT_SERVING) leaves the service healthy while the other serves;
    both not serving make it unhealthy. (The order service's checks go elsewhere: on the
    same channel they would take turns in between.)"""
    async with two_user_replicas(postgres, tmp_path) as (a, b):
        settings = gateway.config.Settings.from_env(
            {
                "GATEWAY_LISTEN": "127.0.0.1:0",
                "GATEWAY_ADMIN_LISTEN": "",
                "GATEWAY_USER_SVC_ADDR": addresses(a, b),
                "GATEWAY_ORDER_SVC_ADDR": f"127.0.0.1:{a.port}",
            }
        )
        running = await gateway.server.start(settings)
        try:
            async with httpx.AsyncClient(base_url=running.url, timeout=5) as http:
                for _ in (a, b):  # both connected before one stops serving
                    assert (await http.get("/healthz")).json()["services"][USERS] == "SERVING"
                await b.health.set(USERS, NOT_SERVING)
                one_down = [(await http.get("/healthz")).json()["services"] for _ in range(6)]
                await a.health.set(USERS, NOT_SERVING)
                both_down = (await http.get("/healthz")).json()["services"]
        finally:
            await running.stop()
    assert [services[USERS] for services in one_down] == ["SERVING"] * 6
    assert both_down[USERS] == "NOT_SERVING"
