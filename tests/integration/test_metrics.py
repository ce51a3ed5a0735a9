"""Metrics for real: user_svc and order_svc with their admin ports on ephemeral ports,
`/metrics` read with an HTTP GET and parsed as Prometheus reads it. The gRPC server and
client metrics have go-grpc-prometheus's names and labels, count what the client saw, and
are each process's own."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import gateway.config
import gateway.server
import order_svc.app
import order_svc.config
import user_svc.app
from shop.order.v1 import order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.serving import RunningServer, ServiceSettings
from shop_common.telemetry import GrpcClientMetrics, client_interceptors
from tests.integration.helpers import UNKNOWN_ID, new_email, order_request
from tests.support import channel_to, common_settings, eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

USERS = "shop.user.v1.UserService"
ORDERS = "shop.order.v1.OrderService"


def scrape(running: RunningServer) -> Samples:
    assert running.admin is not None
    with urllib.request.urlopen(running.admin.url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def method(kind: str, service: str, name: str) -> dict[str, str]:
    return {"grpc_type": kind, "grpc_service": service, "grpc_method": name}


async def scraped(running: RunningServer) -> Samples:
    return await asyncio.to_thread(scrape, running)


@contextlib.asynccontextmanager
async def user_service(
    tmp_path: pathlib.Path, admin_listen: str | None = "127.0.0.1:0"
) -> AsyncIterator[RunningServer]:
    settings = ServiceSettings(
        listen="127.0.0.1:0",
        database_url=f"sqlite:///{tmp_path / 'users.db'}",
        common=common_settings(tmp_path),
        admin_listen=admin_listen,
    )
    running = await user_svc.app.start(settings)
    try:
        yield running
    finally:
        await running.stop(grace=0)


@contextlib.asynccontextmanager
async def order_service(tmp_path: pathlib.Path, user_port: int) -> AsyncIterator[RunningServer]:
    settings = order_svc.config.Settings(
        listen="127.0.0.1:0",
        database_url=f"sqlite:///{tmp_path / 'orders.db'}",
        user_svc_addr=f"127.0.0.1:{user_port}",
        user_svc_timeout_seconds=2.0,
        common=common_settings(tmp_path),
        admin_listen="127.0.0.1:0",
    )
    running = await order_svc.app.start(settings)
    try:
        yield running
    finally:
        await running.stop(grace=0)


async def test_server_metrics_count_calls_by_the_code_the_client_saw(
    tmp_path: pathlib.Path,
) -> None:
    async with user_service(tmp_path) as running, channel_to(running.port) as channel:
        before = await scraped(running)
        get_user = method("unary", USERS, "GetUser")
        # Every method and every code exist at zero before any call.
        for name, kind in (("GetUser", "unary"), ("WatchUsers", "server_stream")):
            labels = method(kind, USERS, name)
            assert value(before, "grpc_server_started_total", **labels) == 0
            for code in ("OK", "NotFound", "InvalidArgument", "Unavailable", "Canceled"):
                assert value(before, "grpc_server_handled_total", **labels, grpc_code=code) == 0
        users = user_pb2_grpc.UserServiceStub(channel)
        created = await users.CreateUser(
            user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email(), display_name="A"))
        )
        await users.GetUser(user_pb2.GetUserRequest(id=created.user.id))
        for bad, expected in (
            (UNKNOWN_ID, grpc.StatusCode.NOT_FOUND),
            ("x", grpc.StatusCode.INVALID_ARGUMENT),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await users.GetUser(user_pb2.GetUserRequest(id=bad))
            assert caught.value.code() == expected
        # A request that does not parse: refused by the boundary, before any handler.
        raw = channel.unary_unary(f"/{USERS}/GetUser", None, None)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(b"\xff\xff\xff")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        after = await scraped(running)
        assert value(after, "grpc_server_started_total", **get_user) == 4
        assert value(after, "grpc_server_msg_received_total", **get_user) == 4
        assert value(after, "grpc_server_msg_sent_total", **get_user) == 1
        handled = {
            code: value(after, "grpc_server_handled_total", **get_user, grpc_code=code)
            for code in ("OK", "NotFound", "InvalidArgument", "Internal", "Unknown")
        }
        assert handled == {
            "OK": 1,
            "NotFound": 1,
            "InvalidArgument": 2,
            "Internal": 0,
            "Unknown": 0,
        }
        assert value(after, "grpc_server_handling_seconds_count", **get_user) == 4
        assert value(after, "grpc_server_handling_seconds_bucket", **get_user, le="+Inf") == 4
        assert value(after, "grpc_server_handling_seconds_sum", **get_user) > 0
        create = method("unary", USERS, "CreateUser")
        assert value(after, "grpc_server_handled_total", **create, grpc_code="OK") == 1
        # Process and Python collectors are there too.
        assert value(after, "process_cpu_seconds_total") >= 0
        assert ("python_info", frozenset()) in {(n, frozenset()) for n, _ in after}


async def test_a_watch_counts_as_a_server_stream_and_the_order_service_as_a_client(
    tmp_path: pathlib.Path,
) -> None:
    async with (
        user_service(tmp_path) as users_running,
        order_service(tmp_path, users_running.port) as orders_running,
        channel_to(users_running.port) as user_channel,
        channel_to(orders_running.port) as order_channel,
    ):
        users = user_pb2_grpc.UserServiceStub(user_channel)
        orders = order_pb2_grpc.OrderServiceStub(order_channel)
        created = await users.CreateUser(
            user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email(), display_name="A"))
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await orders.CreateOrder(order_request(UNKNOWN_ID))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        watch = method("server_stream", USERS, "WatchUsers")
        get_user = method("unary", USERS, "GetUser")

        async def watched() -> bool:
            server = await scraped(users_running)
            assert value(server, "grpc_server_started_total", **watch) == 1
            assert value(server, "grpc_server_msg_received_total", **watch) == 1
            assert value(server, "grpc_server_msg_sent_total", **watch) >= 1
            return True

        await eventually(watched, 5, "the order service's watch is counted")
        server = await scraped(users_running)
        assert value(server, "grpc_server_handled_total", **get_user, grpc_code="NotFound") == 1
        client = await scraped(orders_running)
        assert value(client, "grpc_client_started_total", **watch) == 1
        assert value(client, "grpc_client_started_total", **get_user) == 1
        assert value(client, "grpc_client_handled_total", **get_user, grpc_code="NotFound") == 1
        assert value(client, "grpc_client_handled_total", **get_user, grpc_code="OK") == 0
        assert value(client, "grpc_client_handling_seconds_count", **get_user) == 1
        assert value(client, "grpc_client_msg_sent_total", **get_user) == 1
        assert value(client, "grpc_client_msg_received_total", **get_user) == 0
        order_create = method("unary", ORDERS, "CreateOrder")
        assert (
            value(
                client, "grpc_server_handled_total", **order_create, grpc_code="FailedPrecondition"
            )
            == 1
        )
        # Each process its own registry: no order service methods in the user service's.
        assert not [key for key in server if ("grpc_service", ORDERS) in key[1]]
        assert not [
            key
            for key in client
            if ("grpc_service", USERS) in key[1] and key[0].startswith("grpc_server")
        ]
        # Bounded labels: method names and codes, never an id.
        for _name, labels in (*server, *client):
            assert not any(created.user.id in v or UNKNOWN_ID in v for _k, v in labels)


async def test_two_servers_in_one_process_do_not_share_metrics(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        user_service(tmp_path / "a") as a,
        user_service(tmp_path / "b") as b,
        channel_to(a.port) as channel,
    ):
        assert a.admin is not None
        assert b.admin is not None
        assert a.admin.port != b.admin.port
        with pytest.raises(grpc.aio.AioRpcError):
            await user_pb2_grpc.UserServiceStub(channel).GetUser(
                user_pb2.GetUserRequest(id=UNKNOWN_ID)
            )
        get_user = method("unary", USERS, "GetUser")
        assert value(await scraped(a), "grpc_server_started_total", **get_user) == 1
        assert value(await scraped(b), "grpc_server_started_total", **get_user) == 0


async def test_metrics_off_means_no_admin_port_and_no_measurement(tmp_path: pathlib.Path) -> None:
    async with user_service(tmp_path, admin_listen=None) as running:
        assert running.admin is None
        assert running.boundary._metrics is None


async def test_the_gateway_counts_its_calls_to_the_services(tmp_path: pathlib.Path) -> None:
    async with user_service(tmp_path, admin_listen=None) as users_running:
        addr = f"127.0.0.1:{users_running.port}"
        settings = gateway.config.Settings.from_env(
            {
                "GATEWAY_LISTEN": "127.0.0.1:0",
                "GATEWAY_ADMIN_LISTEN": "127.0.0.1:0",
                "GATEWAY_USER_SVC_ADDR": addr,
                "GATEWAY_ORDER_SVC_ADDR": addr,
            }
        )
        running = await gateway.server.start(settings)
        try:
            async with httpx.AsyncClient(base_url=running.url) as http:
                assert (await http.get(f"/v1/users/{UNKNOWN_ID}")).status_code == 404
                assert (await http.get("/v1/users/not-an-id")).status_code == 400
                assert (await http.get("/v1/users")).status_code == 200
            assert running.admin is not None
            text = await asyncio.to_thread(_get, running.admin.url)
        finally:
            await running.stop()
        samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        get_user = method("unary", USERS, "GetUser")
        assert value(samples, "grpc_client_started_total", **get_user) == 2
        handled = value(samples, "grpc_client_handled_total", **get_user, grpc_code="NotFound")
        assert handled == 1
        invalid = "InvalidArgument"
        assert value(samples, "grpc_client_handled_total", **get_user, grpc_code=invalid) == 1
        list_users = method("unary", USERS, "ListUsers")
        assert value(samples, "grpc_client_handled_total", **list_users, grpc_code="OK") == 1
        assert value(samples, "grpc_client_msg_received_total", **list_users) == 1
        watch = method("server_stream", ORDERS, "WatchOrders")  # registered at zero
        assert value(samples, "grpc_client_started_total", **watch) == 0
        assert not [key for key in samples if key[0].startswith("grpc_server")]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_client_metrics_see_the_code_through_a_later_interceptor(
    tmp_path: pathlib.Path,
) -> None:
    """As on the order service's channel in jwt mode, where the service token's interceptors
    come after the metrics'."""

    class PassOn(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
        async def intercept_unary_unary(
            self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any
        ) -> Any:
            return await continuation(details, request)

    registry = CollectorRegistry()
    metrics = GrpcClientMetrics(registry, [user_pb2.DESCRIPTOR.services_by_name["UserService"]])
    async with user_service(tmp_path, admin_listen=None) as running:
        interceptors = [*client_interceptors(metrics), PassOn()]
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{running.port}", interceptors=interceptors
        ) as channel:
            with pytest.raises(grpc.aio.AioRpcError):
                await user_pb2_grpc.UserServiceStub(channel).GetUser(
                    user_pb2.GetUserRequest(id=UNKNOWN_ID)
                )
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    get_user = method("unary", USERS, "GetUser")
    assert value(samples, "grpc_client_handled_total", **get_user, grpc_code="NotFound") == 1
