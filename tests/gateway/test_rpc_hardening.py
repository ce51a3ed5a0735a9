"""The RPC protocols (gateway.rpc) against what a hostile or careless peer sends: a binary
Connect GET message arrives byte for byte, bodies and messages stay under the limits however
they are encoded, a service's metadata never becomes a header a browser acts on, a client's
headers that cannot be metadata are left out rather than failing the call, probing is rate
limited, and an error answered 200 on the wire is counted by its code."""

from __future__ import annotations

import gzip
import struct
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CollectorRegistry

from gateway import RunningGateway, start
from gateway.app import Gateway
from gateway.metadata import metadata_headers
from gateway.rpc._compression import accepts_gzip
from shop.user.v1 import user_pb2
from tests.gateway.conftest import MAX_BODY_BYTES, Backend, settings_for
from tests.gateway.fakes import HOSTILE_METADATA

GET_USER = "/shop.user.v1.UserService/GetUser"
LIST_USERS = "/shop.user.v1.UserService/ListUsers"
JSON = {"content-type": "application/json"}


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while data:
        flags, length = struct.unpack_from(">BI", data)
        frames.append((flags, data[5 : 5 + length]))
        data = data[5 + length :]
    return frames


async def test_a_binary_get_message_reaches_the_service_byte_for_byte(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    # page_size = 150: its varint has a byte from 0x80 up, sent percent-encoded, no base64.
    query = "connect=v1&encoding=proto&message=%08%96%01"
    response = await client.get(f"{LIST_USERS}?{query}")
    assert response.status_code == 200, response.text
    assert backend.recorder.last("ListUsers").request == user_pb2.ListUsersRequest(page_size=150)


@pytest.mark.parametrize("message", ["!!!!", "a", "ab=c"])
async def test_a_base64_get_message_must_be_base64(
    client: httpx.AsyncClient, backend: Backend, message: str
) -> None:
    query = {"connect": "v1", "encoding": "proto", "base64": "1", "message": message}
    response = await client.get(LIST_USERS, params=query)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"
    assert not backend.recorder.calls


async def test_a_get_message_over_the_body_limit_is_refused(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    message = '{"pageToken": "' + "a" * MAX_BODY_BYTES + '"}'
    response = await client.get(LIST_USERS, params={"encoding": "json", "message": message})
    assert response.status_code == 413
    assert response.json()["code"] == "resource_exhausted"
    assert not backend.recorder.calls


async def test_gzip_members_one_after_another_are_one_message(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    body = gzip.compress(b'{"id": ') + gzip.compress(b'"abc"}')
    headers = {**JSON, "content-encoding": "gzip"}
    response = await client.post(GET_USER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert backend.recorder.last("GetUser").request == user_pb2.GetUserRequest(id="abc")


async def test_gzip_followed_by_anything_else_is_refused(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    body = gzip.compress(b'{"id": "abc"}') + b"GARBAGE"
    headers = {**JSON, "content-encoding": "gzip"}
    response = await client.post(GET_USER, content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"
    assert not backend.recorder.calls


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (None, False),
        (b"gzip", True),
        (b"br, gzip;q=0.5", True),
        (b"gzip;q=0", False),
        (b"*", True),
        (b"br, *", True),
        (b"*;q=0.5, gzip;q=0", False),
        (b"gzip;q=0, *", False),
        (b"*;q=0", False),
        (b"identity", False),
    ],
)
def test_accept_encoding_names_gzip_or_lets_the_wildcard_speak(
    header: bytes | None, accepted: bool
) -> None:
    assert accepts_gzip(header) is accepted


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/grpc-web+json", "application/grpc-web"]
)
async def test_a_services_metadata_never_becomes_a_header_a_browser_acts_on(
    client: httpx.AsyncClient, content_type: str
) -> None:
    if content_type == "application/grpc-web":
        body = b"\0\0\0\0\x0e\n\x0cmeta-hostile"
    elif content_type == "application/grpc-web+json":
        message = b'{"id": "meta-hostile"}'
        body = struct.pack(">BI", 0, len(message)) + message
    else:
        body = b'{"id": "meta-hostile"}'
    response = await client.post(GET_USER, content=body, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    assert response.headers["x-ok"] == "yes"
    for key, _ in HOSTILE_METADATA:
        assert key not in response.headers, key


def test_a_metadata_value_that_could_end_a_line_is_dropped() -> None:
    pairs: list[tuple[str, str | bytes]] = [
        ("x-a", "a\r\ngrpc-status: 0"),
        ("x-b", "caf\u00e9"),
        ("x-c", "ok"),
        ("x-d-bin", b"\r\n"),
    ]
    assert metadata_headers(pairs) == [(b"x-c", b"ok"), (b"x-d-bin", b"DQo=")]
    assert metadata_headers(pairs, b"trailer-") == [
        (b"trailer-x-c", b"ok"),
        (b"trailer-x-d-bin", b"DQo="),
    ]


async def test_custom_headers_are_metadata_and_the_rest_is_left_out(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"x-tenant", b"acme"),
        (b"x-note", b"caf\xe9"),  # not ASCII: cannot be metadata
        (b"x-tab", b"a\tb"),
        (b"x!odd", b"1"),  # an HTTP token, not a metadata key
        (b"true-client-ip", b"10.9.9.9"),
        (b"x-envoy-original-path", b"/x"),
        (b"x-hop", b"by hop"),
        (b"connection", b"keep-alive, x-hop"),
        (b"cookie", b"session=1"),
        (b"x-blob-bin", b"AAEC"),
    ]
    response = await client.post(GET_USER, content=b'{"id": "abc"}', headers=headers)
    assert response.status_code == 200, response.text
    metadata = backend.recorder.last("GetUser").metadata
    assert metadata["x-tenant"] == "acme"
    assert metadata["x-blob-bin"] == b"\x00\x01\x02"
    for key in ("x-note", "x-tab", "x!odd", "true-client-ip", "x-envoy-original-path", "x-hop"):
        assert key not in metadata, key
    assert "cookie" not in metadata


@pytest.fixture
async def limited(backend: Backend) -> AsyncIterator[tuple[RunningGateway, CollectorRegistry]]:
    settings = settings_for(
        backend.address,
        rate_limit_per_second=0.001,
        rate_limit_burst=3,
        cors_origins=("https://app.example",),
    )
    registry = CollectorRegistry()
    app = Gateway(settings)
    app.measure(registry)
    running = await start(settings, app)
    try:
        yield running, registry
    finally:
        await running.stop()


async def test_probing_a_procedure_the_wrong_way_is_counted_against_the_rate_limit(
    limited: tuple[RunningGateway, CollectorRegistry],
) -> None:
    running, _ = limited
    async with httpx.AsyncClient(base_url=running.url) as http:
        answers = [await http.put(GET_USER, content=b"{}", headers=JSON) for _ in range(4)]
    assert [a.status_code for a in answers] == [405, 405, 405, 429]
    assert answers[0].json()["code"] == "unimplemented"
    assert answers[3].json()["code"] == "resource_exhausted"
    assert "ratelimit" in answers[0].headers


async def test_an_error_answered_200_is_counted_by_its_codes_status(
    limited: tuple[RunningGateway, CollectorRegistry],
) -> None:
    running, registry = limited
    body = struct.pack(">BI", 0, 8) + b"\n\x06code-5"
    async with httpx.AsyncClient(base_url=running.url) as http:
        response = await http.post(
            GET_USER, content=body, headers={"content-type": "application/grpc-web"}
        )
    assert response.status_code == 200
    assert response.headers["grpc-status"] == "5"
    assert _frames(response.content)[-1][0] == 0x80
    labels = {"method": "POST", "route": GET_USER}
    assert (
        registry.get_sample_value("shop_gateway_requests_total", {**labels, "status": "404"}) == 1
    )
    assert (
        registry.get_sample_value("shop_gateway_requests_total", {**labels, "status": "200"}) == 0
    )


async def test_a_procedures_preflight_grants_its_custom_headers(
    limited: tuple[RunningGateway, CollectorRegistry],
) -> None:
    running, _ = limited
    asked = "content-type, connect-protocol-version, x-tenant, x-grpc-web"
    async with httpx.AsyncClient(base_url=running.url) as http:
        response = await http.options(
            GET_USER,
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": asked,
            },
        )
        rest = await http.options(
            "/v1/users/abc",
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "GET",
                "access-control-request-headers": "x-tenant",
            },
        )
    assert response.status_code == 204
    assert response.headers["access-control-allow-headers"] == asked
    assert set(response.headers["access-control-allow-methods"].split(", ")) == {
        "GET",
        "POST",
        "OPTIONS",
    }
    assert rest.status_code == 403  # REST forwards no custom header: none is granted
