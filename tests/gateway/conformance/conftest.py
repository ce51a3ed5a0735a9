"""Fixtures of the conformance suite: the API compiled once per session, an echo backend on
a real grpc.aio server (generic handlers, no generated code), the real gateway in front of
it, and an httpx client.

The echo keeps no state, so one backend and one gateway (on ephemeral ports) serve the
whole package, in the package's event loop, and stop after its last test: each test
module marks itself `pytest.mark.asyncio(loop_scope="package")` (see `LOOP`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
from google.protobuf.message import Message

from gateway import RunningGateway, Settings, start
from tests.gateway.conformance.protos import Conformance, load
from tests.gateway.conformance.support import STREAMED

LOOP = pytest.mark.asyncio(loop_scope="package")
"""The mark of every test module of the package: its tests share the package's loop."""
Context = grpc.aio.ServicerContext[Any, Any]


@pytest.fixture(scope="session")
def api() -> Conformance:
    return load()


def echo_handlers(api: Conformance) -> grpc.GenericRpcHandler[Any, Any]:
    """Every RPC answers with its own name and the request it got; a server-streaming one
    sends that `STREAMED` times, with the index."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in api.service.methods:
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _streaming_echo(api, method.name),
                request_deserializer=api.Everything.FromString,
                response_serializer=api.Echo.SerializeToString,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _echo(api, method.name),
                request_deserializer=api.Everything.FromString,
                response_serializer=api.Echo.SerializeToString,
            )
    return grpc.method_handlers_generic_handler(api.service.full_name, handlers)


def _echo(api: Conformance, name: str) -> Callable[[Message, Context], Any]:
    async def echo(request: Message, context: Context) -> Message:
        return api.Echo(method=name, request=request)

    return echo


def _streaming_echo(api: Conformance, name: str) -> Callable[[Message, Context], Any]:
    async def echo(request: Message, context: Context) -> AsyncIterator[Message]:
        for index in range(STREAMED):
            yield api.Echo(method=name, request=request, index=index)

    return echo


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def backend(api: Conformance) -> AsyncIterator[str]:
    """The echo backend's address."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([echo_handlers(api)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


def settings_for(api: Conformance, backend: str, **overrides: Any) -> Settings:
    return Settings(
        backends={api.service.full_name: backend},
        listen="127.0.0.1:0",
        grace_seconds=1,
        # One gateway serves the whole package, faster than a caller may: no rate limit
        # (tests/gateway/test_caller_limits.py tests it).
        **({"rate_limit_per_second": 0} | overrides),
    )


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def gateway(api: Conformance, backend: str) -> AsyncIterator[RunningGateway]:
    """The real gateway (uvicorn on 127.0.0.1:0) in front of the echo backend."""
    running = await start(settings_for(api, backend))
    try:
        yield running
    finally:
        await running.stop()


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def client(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    """A new connection per request: no test sees another's connection state (and none
    waits on Nagle's algorithm, see test_serving.py)."""
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10, limits=no_reuse) as http:
        yield http


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def strict_client(api: Conformance, backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second gateway, in strict mode, over the same backend."""
    running = await start(settings_for(api, backend, strict=True))
    try:
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, limits=no_reuse) as http:
            yield http
    finally:
        await running.stop()
