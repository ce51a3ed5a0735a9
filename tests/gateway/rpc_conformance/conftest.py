"""Fixtures of the conformance suite: the fake backends on one real grpc.aio server, and
the real gateway in front of them in each variant the table names (started on first use),
all on ephemeral ports in the package's event loop, stopped after its last test.

The fakes keep no state but their `Recorder`, which is emptied before each case."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import httpx
import pytest_asyncio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway import RunningGateway, start
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from tests.gateway.conftest import settings_for
from tests.gateway.fakes import FakeOrders, FakeUsers, Recorder
from tests.gateway.rpc_conformance.cases import VARIANTS, Request
from tests.gateway.rpc_conformance.expect import Answer


@dataclass
class Fakes:
    address: str
    recorder: Recorder

    def forget(self) -> None:
        """Empties the recorder: a case sees only its own calls."""
        self.recorder.calls.clear()
        self.recorder.cancelled = asyncio.Event()
        self.recorder.arrived = asyncio.Event()


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def fakes() -> AsyncIterator[Fakes]:
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
        yield Fakes(f"127.0.0.1:{port}", recorder)
    finally:
        await server.stop(None)


@dataclass
class Gateways:
    """The gateway in each variant of `VARIANTS`, started when a case first needs it, with
    a client that sends only the headers a case gives (no Accept-Encoding of its own) and
    opens a new connection per request."""

    address: str
    running: dict[str, tuple[RunningGateway, httpx.AsyncClient]] = field(default_factory=dict)

    async def client(self, variant: str) -> httpx.AsyncClient:
        if variant not in self.running:
            gateway = await start(settings_for(self.address, **VARIANTS[variant]))
            no_reuse = httpx.Limits(max_keepalive_connections=0)
            http = httpx.AsyncClient(base_url=gateway.url, timeout=10, limits=no_reuse)
            del http.headers["accept-encoding"]
            self.running[variant] = (gateway, http)
        return self.running[variant][1]

    async def stop(self) -> None:
        for gateway, http in self.running.values():
            await http.aclose()
            await gateway.stop()


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def gateways(fakes: Fakes) -> AsyncIterator[Gateways]:
    running = Gateways(fakes.address)
    try:
        yield running
    finally:
        await running.stop()


async def send(http: httpx.AsyncClient, request: Request) -> Answer:
    """`request` as it is; the answer with its body as it came over the wire."""
    url = f"{request.path}?{request.query}" if request.query else request.path
    content = request.body if request.body or request.method not in {"GET", "OPTIONS"} else None
    built = http.build_request(request.method, url, headers=request.headers, content=content)
    response = await http.send(built, stream=True)
    try:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()
    return Answer(response.status_code, response.headers, body)
