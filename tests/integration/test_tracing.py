"""Tracing off, as it is unless the `OTEL_*` variables ask: the three parts started in this
process serve requests with nothing of tracing built (no provider, no interceptor, no HTTP
span wrapper); and on, the same check finds them, and each service has its own provider
(its own `service.name`) though they share a process."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import pathlib
import uuid
from collections.abc import AsyncIterator

import httpx
from opentelemetry import trace
from opentelemetry.instrumentation.grpc._aio_client import _BaseAioClientInterceptor
from opentelemetry.instrumentation.grpc._aio_server import OpenTelemetryAioServerInterceptor
from opentelemetry.sdk.trace import TracerProvider

import gateway.config
import gateway.server
import order_svc.app
import order_svc.config
import user_svc.app
from gateway.tracing import HttpTracing
from shop_common.serving import RunningServer, ServiceSettings
from shop_common.telemetry import TracingSettings
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
