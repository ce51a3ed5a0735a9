"""Nothing in the gateway is written per route: a service it has never seen (the test-only
`gateway.test.v1.SampleService`) is served from its descriptor alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.message import Message

from gateway import Settings, start
from tests.gateway.sample import SERVICE, Sample


async def echo(request: Message, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
    return request


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    server = grpc.aio.server()
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            echo,
            request_deserializer=Sample.FromString,
            response_serializer=Sample.SerializeToString,
        )
        for method in SERVICE.methods
    }
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        running = await start(
            Settings(backends={SERVICE.full_name: f"127.0.0.1:{port}"}, listen="127.0.0.1:0")
        )
        try:
            async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
                yield http
        finally:
            await running.stop()
    finally:
        await server.stop(None)


async def test_path_query_and_types_of_an_unseen_service(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v2/shelves/s1/books/42",
        params={"flag": "true", "color": "GREEN", "inner.count": "3", "tags": ["a", "b"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["text"], body["i64"], body["flag"], body["color"]) == (
        "shelves/s1",
        "42",
        True,
        "GREEN",
    )
    assert body["inner"] == {"innerName": "", "count": "3"}
    assert body["tags"] == ["a", "b"]


async def test_deep_wildcard_and_body_star(client: httpx.AsyncClient) -> None:
    deep = await client.get("/v1/a/b/c")
    assert deep.json()["text"] == "a/b/c"
    run = await client.post("/v1/things/t1:run", json={"i32": 5, "displayName": "D"})
    assert (run.json()["text"], run.json()["i32"], run.json()["displayName"]) == ("t1", 5, "D")


async def test_a_bad_path_value_is_400_naming_the_variable(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/shelves/s1/books/forty-two")
    assert response.status_code == 400
    info, bad_request = response.json()["details"]
    assert info["reason"] == "INVALID_PATH_PARAMETER"
    assert bad_request["fieldViolations"][0]["field"] == "i64"
