"""Headers ↔ metadata and deadlines through the running gateway."""

from __future__ import annotations

import httpx

from tests.gateway.conftest import MAX_TIMEOUT_SECONDS, SLACK, TIMEOUT_SECONDS, Backend


async def test_grpc_metadata_headers_travel_both_ways(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    response = await client.get(
        "/v1/users/u-1",
        headers={
            "Grpc-Metadata-X-Echo": "hello",
            "Grpc-Metadata-Trace-Bin": "AQID",
            "Authorization": "Bearer alice",
            "X-Forwarded-For": "203.0.113.7",
        },
    )
    assert response.status_code == 200, response.text
    received = backend.recorder.last("GetUser").metadata
    assert received["x-echo"] == "hello"
    assert received["trace-bin"] == b"\x01\x02\x03"
    assert received["authorization"] == "Bearer alice"
    assert received["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert received["x-forwarded-host"] == client.base_url.netloc.decode()
    assert response.headers["grpc-metadata-x-echo"] == "hello"
    assert response.headers["grpc-metadata-x-served-by"] == "fake"
    assert response.headers["grpc-trailer-x-trailer"] == "done"


async def test_unrelated_headers_are_not_passed_on(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    await client.get("/v1/users/u-1", headers={"X-Secret": "s", "Cookie": "c=1"})
    received = backend.recorder.last("GetUser").metadata
    assert "x-secret" not in received
    assert "cookie" not in received


async def test_grpc_timeout_sets_the_deadline(client: httpx.AsyncClient, backend: Backend) -> None:
    await client.get("/v1/users/u-1", headers={"Grpc-Timeout": "2S"})
    remaining = backend.recorder.last("GetUser").time_remaining
    assert remaining is not None
    assert 0 < remaining <= 2.0 + SLACK


async def test_without_grpc_timeout_the_configured_deadline_applies(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    await client.get("/v1/users/u-1")
    remaining = backend.recorder.last("GetUser").time_remaining
    assert remaining is not None
    assert 0 < remaining <= TIMEOUT_SECONDS + SLACK


async def test_grpc_timeout_is_capped(client: httpx.AsyncClient, backend: Backend) -> None:
    await client.get("/v1/users/u-1", headers={"Grpc-Timeout": "5H"})
    remaining = backend.recorder.last("GetUser").time_remaining
    assert remaining is not None
    assert TIMEOUT_SECONDS < remaining <= MAX_TIMEOUT_SECONDS + SLACK
