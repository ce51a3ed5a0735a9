"""Fixtures of the gateway tests: the fake backends on a real grpc.aio server, and the
gateway itself served by uvicorn on an ephemeral port, both in the test's event loop."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway import RunningGateway, Settings, start
from gateway.config import services_of
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from tests.gateway.fakes import FakeOrders, FakeUsers, Recorder

MAX_BODY_BYTES = 1024
TIMEOUT_SECONDS = 7.0
MAX_TIMEOUT_SECONDS = 30.0
SLACK = 0.5
"""gRPC sends a deadline as a timeout rounded up to its unit: the server may see a bit more."""


@dataclass
class Backend:
    server: grpc.aio.Server
    address: str
    recorder: Recorder
    health: health.aio.HealthServicer  # type: ignore[name-defined]  # untyped package


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    """Both fake services on one real grpc.aio server, with health, on 127.0.0.1:0."""
    recorder = Recorder()
    server = grpc.aio.server()
    user_pb2_grpc.add_UserServiceServicer_to_server(FakeUsers(recorder), server)
    order_pb2_grpc.add_OrderServiceServicer_to_server(FakeOrders(recorder), server)
    checker = health.aio.HealthServicer()  # type: ignore[attr-defined]  # stubs lag
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    for file in (user_pb2.DESCRIPTOR, order_pb2.DESCRIPTOR):
        for service in file.services_by_name.values():
            await checker.set(service.full_name, health_pb2.HealthCheckResponse.SERVING)
    try:
        yield Backend(server, f"127.0.0.1:{port}", recorder, checker)
    finally:
        await server.stop(None)


def settings_for(address: str, **overrides: object) -> Settings:
    settings = Settings(
        backends=services_of(user_pb2.DESCRIPTOR, address)
        | services_of(order_pb2.DESCRIPTOR, address),
        listen="127.0.0.1:0",
        max_body_bytes=MAX_BODY_BYTES,
        timeout_seconds=TIMEOUT_SECONDS,
        max_timeout_seconds=MAX_TIMEOUT_SECONDS,
        grace_seconds=1,
    )
    return dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def gateway(backend: Backend) -> AsyncIterator[RunningGateway]:
    running = await start(settings_for(backend.address))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        yield http
