"""Server streaming as NDJSON over a real socket."""

from __future__ import annotations

import asyncio

import httpx
import orjson

from gateway import start
from tests.gateway.conftest import SLACK, Backend, settings_for

WATCH = "/v1/users:watch"


async def test_stream_relays_each_message_then_the_error_that_ended_it(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    async with client.stream(
        "GET", WATCH, params={"startRevision": "10"}, headers={"Grpc-Metadata-X-Echo": "w"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers["grpc-metadata-x-echo"] == "w"
        lines = [orjson.loads(line) async for line in response.aiter_lines() if line]
    results = [line["result"] for line in lines[:-1]]
    assert [r["headerRevision"] for r in results] == ["11", "12", "13"]
    assert results[0]["events"] == [
        {
            "type": "TYPE_PUT",
            "user": {"id": "u1", "email": "", "displayName": "", "etag": ""},
            "revision": "11",
        }
    ]
    assert results[0]["compactRevision"] == "0"
    assert results[0]["progressNotify"] is False
    error = lines[-1]["error"]
    assert error["code"] == 10  # ABORTED
    assert error["message"] == "compacted"
    assert error["details"][0]["reason"] == "COMPACTED"
    request = backend.recorder.last("WatchUsers")
    assert request.metadata["x-echo"] == "w"
    assert request.time_remaining is None  # a watch has no default deadline


async def test_stream_failing_before_its_first_message_gets_the_real_status(
    client: httpx.AsyncClient,
) -> None:
    for path in (WATCH, "/v1/orders:watch"):
        response = await client.get(path)
        assert response.status_code == 501, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["code"] == 12  # UNIMPLEMENTED


async def test_stream_takes_grpc_timeout(client: httpx.AsyncClient, backend: Backend) -> None:
    async with client.stream(
        "GET", WATCH, params={"startRevision": "1"}, headers={"Grpc-Timeout": "20S"}
    ) as response:
        await response.aread()
    remaining = backend.recorder.last("WatchUsers").time_remaining
    assert remaining is not None
    assert 0 < remaining <= 20 + SLACK


async def test_client_leaving_cancels_the_backend_stream(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    params = {"startRevision": "1", "progressNotify": "true"}
    async with client.stream("GET", WATCH, params=params) as response:
        lines = response.aiter_lines()
        first = await anext(lines)
        assert orjson.loads(first) == {
            "result": {
                "events": [],
                "headerRevision": "0",
                "compactRevision": "0",
                "progressNotify": True,
                "fragment": False,
            }
        }
    # Leaving the block closes the connection mid-stream.
    await asyncio.wait_for(backend.recorder.cancelled.wait(), timeout=10)


async def test_stopping_the_gateway_ends_open_streams_with_unavailable(backend: Backend) -> None:
    running = await start(settings_for(backend.address))
    try:
        async with (
            httpx.AsyncClient(base_url=running.url, timeout=10) as http,
            http.stream(
                "GET", WATCH, params={"startRevision": "1", "progressNotify": "1"}
            ) as response,
        ):
            lines = response.aiter_lines()
            assert "result" in orjson.loads(await anext(lines))
            stopping = asyncio.create_task(running.stop())
            rest = [orjson.loads(line) async for line in lines if line]
            await stopping
    finally:
        await running.stop()
    assert rest[-1]["error"]["code"] == 14  # UNAVAILABLE
    assert rest[-1]["error"]["details"][0]["reason"] == "GATEWAY_STOPPING"
    assert all("result" in line for line in rest[:-1])
    await asyncio.wait_for(backend.recorder.cancelled.wait(), timeout=10)
