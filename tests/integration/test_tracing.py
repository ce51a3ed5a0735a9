"""Tracing off, as it is unless the `OTEL_*` variables ask: the three parts started in this
process serve requests with nothing of tracing built (no provider, no interceptor, no HTTP
span wrapper); and on, the same check finds them, and each service has its own provider
(its own `service.name`) though they share a process."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import pathlib
import socket
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
from opentelemetry import trace
from opentelemetry.instrumentation.grpc._aio_client import _BaseAioClientInterceptor
from opentelemetry.instrumentation.grpc._aio_server import OpenTelemetryAioServerInterceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import gateway.config
import gateway.server
import order_svc.app
import order_svc.config
import user_svc.app
from gateway.app import Gateway
from gateway.tracing import HttpTracing
from shop_common.serving import RunningServer, ServiceSettings
from shop_common.telemetry import Tracing, TracingSettings
from tests.integration.helpers import UNKNOWN_ID
from tests.support import common_settings

ITEM = {"sku": "TEA-1", "quantity": 1, "unitPrice": {"currencyCode": "EUR", "units": "2"}}
CONSOLE = ("console",)
"""Spans printed (pytest keeps the output): tracing on without a collector to send to."""


def tracing_objects() -> dict[int, str]:
    """The tracing objects alive in this process (an earlier test's may be among them)."""
    gc.collect()
    kinds = (
        TracerProvider,
        OpenTelemetryAioServerInterceptor,
        _BaseAioClientInterceptor,
        HttpTracing,
    )
    return {id(o): type(o).__name__ for o in gc.get_objects() if isinstance(o, kinds)}


def built_since(before: dict[int, str]) -> set[str]:
    return {name for key, name in tracing_objects().items() if key not in before}


@contextlib.asynccontextmanager
async def system(
    tmp_path: pathlib.Path, exporters: tuple[str, ...] = ()
) -> AsyncIterator[tuple[RunningServer, RunningServer, str]]:
    """user_svc, order_svc and the gateway in this process; tracing as `exporters` say."""
    users = await user_svc.app.start(
        ServiceSettings(
            listen="127.0.0.1:0",
            database_url=f"sqlite:///{tmp_path / 'users.db'}",
            common=common_settings(tmp_path),
            tracing=TracingSettings(exporters, "user_svc"),
        )
    )
    try:
        orders = await order_svc.app.start(
            order_svc.config.Settings(
                listen="127.0.0.1:0",
                database_url=f"sqlite:///{tmp_path / 'orders.db'}",
                user_svc_addr=f"127.0.0.1:{users.port}",
                user_svc_timeout_seconds=2.0,
                common=common_settings(tmp_path),
                tracing=TracingSettings(exporters, "order_svc"),
            )
        )
        try:
            settings = gateway.config.Settings.from_env(
                {
                    "GATEWAY_LISTEN": "127.0.0.1:0",
                    "GATEWAY_ADMIN_LISTEN": "",
                    "GATEWAY_USER_SVC_ADDR": f"127.0.0.1:{users.port}",
                    "GATEWAY_ORDER_SVC_ADDR": f"127.0.0.1:{orders.port}",
                }
            )
            settings = dataclasses.replace(settings, tracing=TracingSettings(exporters, "gateway"))
            edge = await gateway.server.start(settings)
            try:
                yield users, orders, edge.url
            finally:
                await edge.stop()
        finally:
            await orders.stop(grace=0)
    finally:
        await users.stop(grace=0)


async def create_order(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        user = await http.post("/v1/users", json={"email": f"{uuid.uuid4().hex}@example.com"})
        assert user.status_code == 201
        order = await http.post(
            "/v1/orders",
            json={"userId": user.json()["id"], "items": [ITEM]},
            headers={"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"},
        )
        assert order.status_code == 201, order.text


async def test_tracing_off_builds_nothing_of_tracing(tmp_path: pathlib.Path) -> None:
    before = tracing_objects()
    async with system(tmp_path) as (users, orders, url):
        await create_order(url)
        assert users.tracing is None
        assert orders.tracing is None
        assert built_since(before) == set()
    # Nor was anything installed globally.
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)


async def test_tracing_on_builds_a_provider_per_service(tmp_path: pathlib.Path) -> None:
    before = tracing_objects()
    async with system(tmp_path, CONSOLE) as (users, orders, url):
        await create_order(url)
        assert users.tracing is not None
        assert orders.tracing is not None
        names = {
            tracing.provider.resource.attributes["service.name"]
            for tracing in (users.tracing, orders.tracing)
        }
        assert names == {"user_svc", "order_svc"}
        assert built_since(before) == {
            "TracerProvider",
            "OpenTelemetryAioServerInterceptor",
            "UnaryUnaryAioClientInterceptor",
            "HttpTracing",
        }
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)


async def test_a_5xx_at_the_gateway_is_an_error_span_and_so_is_its_call(
    tmp_path: pathlib.Path,
) -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(exported))
    with socket.socket() as closed:  # a port nothing listens on: the services are down
        closed.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{closed.getsockname()[1]}"
    settings = gateway.config.Settings.from_env(
        {"GATEWAY_USER_SVC_ADDR": dead, "GATEWAY_ORDER_SVC_ADDR": dead}
    )
    app = Gateway(settings)
    app.tracing = Tracing(provider)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            answered = await http.get(f"/v1/users/{UNKNOWN_ID}")
            assert (await http.get("/healthz")).status_code in (200, 503)
    finally:
        await app.shutdown()
        provider.shutdown()

    assert answered.status_code == 503, answered.text
    spans = {span.name: span for span in exported.get_finished_spans()}
    assert set(spans) == {"GET /v1/users/{id}", "/shop.user.v1.UserService/GetUser"}
    http_span = spans["GET /v1/users/{id}"]
    assert http_span.kind is SpanKind.SERVER
    assert http_span.status.status_code is StatusCode.ERROR
    assert http_span.attributes is not None
    assert http_span.attributes["http.response.status_code"] == 503
    assert http_span.attributes["error.type"] == "503"
    assert http_span.attributes["http.route"] == "/v1/users/{id}"
    assert http_span.attributes["url.path"] == f"/v1/users/{UNKNOWN_ID}"
    call = spans["/shop.user.v1.UserService/GetUser"]
    assert call.kind is SpanKind.CLIENT
    assert call.parent is not None
    assert call.parent.span_id == http_span.context.span_id
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes is not None
    assert call.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
