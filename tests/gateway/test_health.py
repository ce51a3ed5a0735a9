"""`GET /healthz` from the backends' grpc.health.v1, and backends that cannot be reached."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from grpc_health.v1 import health_pb2

from gateway import RunningGateway, start
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.gateway.conftest import Backend, settings_for

USERS = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
ORDERS = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name


async def test_healthy_when_every_service_is_serving(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "SERVING",
        "services": {USERS: "SERVING", ORDERS: "SERVING"},
    }


async def test_unhealthy_when_one_service_is_not_serving(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    await backend.health.set(ORDERS, health_pb2.HealthCheckResponse.NOT_SERVING)
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "NOT_SERVING",
        "services": {USERS: "SERVING", ORDERS: "NOT_SERVING"},
    }


async def test_healthz_is_get_only(client: httpx.AsyncClient) -> None:
    response = await client.post("/healthz")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    head = await client.head("/healthz")
    assert (head.status_code, head.content) == (200, b"")


@pytest.fixture
def dead_address() -> Iterator[str]:
    """An address that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
async def stranded(dead_address: str) -> AsyncIterator[RunningGateway]:
    running = await start(settings_for(dead_address))
    try:
        yield running
    finally:
        await running.stop()


async def test_unreachable_backends_are_unhealthy_and_calls_503(
    stranded: RunningGateway,
) -> None:
    async with httpx.AsyncClient(base_url=stranded.url, timeout=10) as http:
        health = await http.get("/healthz")
        call = await http.get("/v1/users/u-1")
    assert health.status_code == 503
    assert health.json()["services"] == {USERS: "UNAVAILABLE", ORDERS: "UNAVAILABLE"}
    assert call.status_code == 503
    assert call.json()["code"] == 14
