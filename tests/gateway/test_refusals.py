"""What the HTTP server refuses before a request reaches the routes, over a bare socket:
each refusal a google.rpc.Status JSON body with its HTTP status, and the connection closed
(never uvicorn's plain text)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from gateway import RunningGateway
from tests.gateway.conftest import Backend
from tests.gateway.rawhttp import WAIT, RawResponse, connection, exchange, parse, send, until_closed

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
GET = b"GET /v1/users/u-1 HTTP/1.1\r\nhost: t\r\n"
POST = b"POST /v1/users HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"


def assert_status_body(response: RawResponse, http: int, code: int, reason: str) -> dict[str, Any]:
    assert response.status == http, response
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    assert int(response.headers["content-length"]) == len(response.body)
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    assert body["message"]
    info = body["details"][0]
    assert info["@type"] == ERROR_INFO
    assert info["reason"] == reason
    assert info["domain"] == "shop.dev"
    return body


INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNIMPLEMENTED = 3, 8, 12


@pytest.mark.parametrize(
    ("request_bytes", "http", "code", "reason"),
    [
        (b"GARBAGE\r\n\r\n", 400, INVALID_ARGUMENT, "MALFORMED_HTTP"),
        (b"GET /v1/users/u 1 HTTP/1.1\r\n\r\n", 400, INVALID_ARGUMENT, "MALFORMED_HTTP"),
        (GET + b"bad header: x\r\n\r\n", 400, INVALID_ARGUMENT, "MALFORMED_HTTP"),
        (GET + b"x-folded: a\x01b\r\n\r\n", 400, INVALID_ARGUMENT, "MALFORMED_HTTP"),
        (POST + b"content-length: 1x\r\n\r\n{}", 400, INVALID_ARGUMENT, "INVALID_CONTENT_LENGTH"),
        (
            POST + b"content-length: 2\r\ncontent-length: 3\r\n\r\n{}",
            400,
            INVALID_ARGUMENT,
            "INVALID_CONTENT_LENGTH",
        ),
        (
            POST + b"content-length: 99999999999999999999999\r\n\r\n",
            400,
            INVALID_ARGUMENT,
            "INVALID_CONTENT_LENGTH",
        ),
        (
            POST + b"content-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            INVALID_ARGUMENT,
            "INVALID_CONTENT_LENGTH",
        ),
        (b"GET /v1/users/u-1 HTTP/9.9\r\n\r\n", 505, UNIMPLEMENTED, "HTTP_VERSION_UNSUPPORTED"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, UNIMPLEMENTED, "HTTP_VERSION_UNSUPPORTED"),
        (
            POST + b"connection: upgrade\r\nupgrade: h2c\r\ncontent-length: 2\r\n\r\n{}",
            400,
            INVALID_ARGUMENT,
            "UPGRADE_UNSUPPORTED",
        ),
    ],
    ids=[
        "request-line",
        "space-in-target",
        "header-name",
        "header-value",
        "content-length",
        "two-content-lengths",
        "content-length-overflow",
        "content-length-and-chunked",
        "http-version",
        "http2-preface",
        "upgrade-with-body",
    ],
)
async def test_what_the_parser_refuses_is_answered_with_a_status_body(
    gateway: RunningGateway,
    backend: Backend,
    caplog: pytest.LogCaptureFixture,
    request_bytes: bytes,
    http: int,
    code: int,
    reason: str,
) -> None:
    with caplog.at_level(logging.INFO):
        response = await exchange(gateway, request_bytes)
    assert_status_body(response, http, code, reason)
    assert backend.recorder.calls == []
    # A client's mistake is not the gateway's: nothing logged as a warning or worse.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_very_long_url_is_414(gateway: RunningGateway, backend: Backend) -> None:
    target = b"/v1/users/" + b"a" * 9000  # the limit is 8 KiB by default
    response = await exchange(gateway, b"GET " + target + b" HTTP/1.1\r\nhost: t\r\n\r\n")
    body = assert_status_body(response, 414, RESOURCE_EXHAUSTED, "URL_TOO_LONG")
    assert body["details"][0]["metadata"] == {"limit": "8192"}
    assert backend.recorder.calls == []


async def test_a_large_header_block_read_at_once_is_431(gateway: RunningGateway) -> None:
    headers = b"".join(b"x-h%d: %s\r\n" % (n, b"v" * 1000) for n in range(80))  # ~80 KiB
    response = await exchange(gateway, GET + headers + b"\r\n")
    body = assert_status_body(response, 431, RESOURCE_EXHAUSTED, "HEADERS_TOO_LARGE")
    assert body["details"][0]["metadata"] == {"limit": "65536"}


async def test_a_header_that_never_ends_is_431_once_past_the_limit(
    gateway: RunningGateway,
) -> None:
    async with connection(gateway) as (reader, writer):
        await send(writer, GET + b"x-endless: ")
        for _ in range(40):  # 2 MiB unless cut off: the parser would hold all of it
            await send(writer, b"v" * 65536)
        response = parse(await until_closed(reader))
    assert_status_body(response, 431, RESOURCE_EXHAUSTED, "HEADERS_TOO_LARGE")


async def test_a_malformed_chunk_refuses_the_request_before_the_call(
    gateway: RunningGateway, backend: Backend
) -> None:
    request = POST + b"transfer-encoding: chunked\r\n\r\n2\r\n{}\r\nzz\r\n"
    response = await exchange(gateway, request)
    assert_status_body(response, 400, INVALID_ARGUMENT, "MALFORMED_HTTP")
    assert backend.recorder.calls == []


async def test_an_upgrade_without_a_body_is_served_as_http_1_1_and_the_connection_ends(
    gateway: RunningGateway,
) -> None:
    request = GET + b"connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\n"
    response = await exchange(gateway, request + b"http2-settings: AAMAAABkAAQAAP__\r\n\r\n")
    assert response.status == 200
    assert response.json()["id"] == "u-1"
    assert response.headers["connection"] == "close"


async def test_the_gateway_serves_on_after_refusals(
    gateway: RunningGateway, client: httpx.AsyncClient
) -> None:
    for bad in (b"GARBAGE\r\n\r\n", POST + b"content-length: x\r\n\r\n"):
        assert (await exchange(gateway, bad)).status == 400
    response = await client.get("/v1/users/u-2")
    assert response.status_code == 200


async def test_a_body_over_the_limit_still_being_sent_gets_its_413_and_a_clean_close(
    gateway: RunningGateway, backend: Backend
) -> None:
    # The 413 leaves before the body is read. Closing then, with the body still coming,
    # would answer it with a reset, which can destroy the 413 before the client reads it.
    async with connection(gateway) as (reader, writer):
        await send(writer, POST + b"content-length: 3000000\r\n\r\n")
        for _ in range(40):
            await send(writer, b"a" * 16384)
        raw = await asyncio.wait_for(reader.read(), WAIT)  # a reset would raise here
    assert_status_body(parse(raw), 413, RESOURCE_EXHAUSTED, "BODY_TOO_LARGE")
    assert backend.recorder.calls == []
