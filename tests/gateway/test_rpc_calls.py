"""What an RPC protocol's call carries to the service and back, as a REST request's does:
metadata (Authorization, `Grpc-Metadata-*`, `X-Forwarded-*`, `X-Request-Id`, the gateway's
own keys refused), deadlines (`Connect-Timeout-Ms`, `Grpc-Timeout`: capped, a default for
unary calls, none for streams, a passed one refused) and the error table (a service's error
keeps its code, message and details; Connect unary answers the HTTP status REST does).
One table over the protocols (`rpc_wire`); the fake backends record what they receive.

The REST side: `test_metadata_http`, `test_errors_http`."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format, symbol_database
from google.rpc import status_pb2

from gateway.errors import HTTP_STATUS
from shop.user.v1 import user_pb2
from tests.gateway import rpc_wire as wire
from tests.gateway.conftest import MAX_TIMEOUT_SECONDS, SLACK, TIMEOUT_SECONDS, Backend
from tests.gateway.fakes import Received

GET_USER = "/shop.user.v1.UserService/GetUser"
LIST_USERS = "/shop.user.v1.UserService/ListUsers"
WATCH_USERS = "/shop.user.v1.UserService/WatchUsers"
ENDS = user_pb2.WatchUsersRequest(start_revision=5)
"""The fake backend's watch: three events, then ABORTED (COMPACTED)."""
INVALID_ARGUMENT, DEADLINE_EXCEEDED = 3, 4


async def get_user(
    http: httpx.AsyncClient, protocol: str, headers: dict[str, str], user: str = "u-1"
) -> wire.Outcome:
    request = user_pb2.GetUserRequest(id=user)
    return await wire.call(http, protocol, GET_USER, request, user_pb2.GetUserResponse, headers)


async def watch(
    http: httpx.AsyncClient,
    protocol: str,
    headers: dict[str, str],
    request: user_pb2.WatchUsersRequest = ENDS,
) -> wire.Outcome:
    """A watch that ends by itself, read to its end."""
    asked = wire.request(protocol, WATCH_USERS, request, streaming=True).send(http, headers)
    response = await http.send(asked)
    return wire.read(protocol, user_pb2.WatchUsersResponse, response, response.content)


def assert_error(outcome: wire.Outcome, protocol: str, code: int, http_status: int) -> None:
    """An error in the protocol's form: Connect unary's HTTP status is the code's; gRPC-Web
    answers 200, the code in its headers (trailers-only) and trailers."""
    assert outcome.code == code, outcome
    if wire.is_grpc_web(protocol):
        assert outcome.http_status == 200
        assert outcome.headers["grpc-status"] == str(code)
        assert outcome.trailers["grpc-status"] == str(code)
    else:
        assert outcome.http_status == http_status


# -- metadata ---------------------------------------------------------------------------------

SENT = {
    "grpc-metadata-x-echo": "hello",
    "grpc-metadata-trace-bin": "AQID",
    "authorization": "Bearer alice",
    "x-forwarded-for": "203.0.113.7",
    "x-request-id": "req-123",
}


def assert_forwarded(received: Received, http: httpx.AsyncClient) -> None:
    metadata = received.metadata
    assert metadata["x-echo"] == "hello"
    assert metadata["trace-bin"] == b"\x01\x02\x03"
    assert metadata["authorization"] == "Bearer alice"
    assert metadata["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert metadata["x-forwarded-host"] == http.base_url.netloc.decode()
    assert metadata["x-request-id"] == "req-123"


@pytest.mark.parametrize("protocol", wire.UNARY)
async def test_metadata_travels_both_ways_in_the_protocols_form(
    client: httpx.AsyncClient, backend: Backend, protocol: str
) -> None:
    served = await get_user(client, protocol, SENT)
    assert served.code == 0, served
    assert_forwarded(backend.recorder.last("GetUser"), client)
    assert served.headers["x-request-id"] == "req-123"
    # The service's metadata: leading as plain headers, trailing as the protocol's trailers.
    assert served.headers["x-served-by"] == "fake"
    assert served.headers["x-echo"] == "hello"
    assert served.trailers["x-trailer"] == "done"
    assert "grpc-metadata-x-served-by" not in served.headers  # REST's form, not these


@pytest.mark.parametrize("protocol", wire.STREAMING)
async def test_a_streams_metadata_travels_both_ways_too(
    client: httpx.AsyncClient, backend: Backend, protocol: str
) -> None:
    ended = await watch(client, protocol, SENT)
    assert (ended.code, len(ended.messages)) == (grpc.StatusCode.ABORTED.value[0], 3)
    assert_forwarded(backend.recorder.last("WatchUsers"), client)
    assert ended.headers["x-request-id"] == "req-123"
    assert ended.headers["x-served-by"] == "fake"
    # (The fake's trailer is replaced by its abort's status: nothing to see at the end.)


BROWSER = {
    "cookie": "session=1",
    "accept-language": "fr",
    "origin": "https://app.example",
    "referer": "https://app.example/page",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "x-user-agent": "connect-es/2.1.2",
}
"""What a browser and its RPC client send besides the call's own headers: never metadata."""


@pytest.mark.parametrize("protocol", wire.UNARY)
async def test_custom_headers_are_the_calls_metadata_and_the_browsers_are_not(
    client: httpx.AsyncClient, backend: Backend, protocol: str
) -> None:
    """The RPC protocols' metadata is their custom headers (REST takes `Grpc-Metadata-*`
    only, unchanged)."""
    served = await get_user(client, protocol, {"x-tenant": "t1", **BROWSER})
    assert served.code == 0, served
    received = backend.recorder.last("GetUser").metadata
    assert received["x-tenant"] == "t1"
    assert not set(BROWSER) & set(received)
    rest = await client.get("/v1/users/u-1", headers={"x-tenant": "t1", **BROWSER})
    assert rest.status_code == 200
    received = backend.recorder.last("GetUser").metadata
    assert "x-tenant" not in received
    assert not set(BROWSER) & set(received)


@pytest.mark.parametrize("protocol", wire.UNARY)
async def test_without_a_request_id_the_gateway_makes_one_and_passes_it_on(
    client: httpx.AsyncClient, backend: Backend, protocol: str
) -> None:
    served = await get_user(client, protocol, {})
    made = served.headers["x-request-id"]
    assert made
    assert backend.recorder.last("GetUser").metadata["x-request-id"] == made


FORGED = (
    "grpc-metadata-x-request-id",
    "grpc-metadata-x-forwarded-for",
    "grpc-metadata-x-forwarded-host",
    "grpc-metadata-grpc-status",
    "grpc-metadata-content-type",
)
"""Keys the gateway sets itself, or gRPC owns, asked for as metadata."""


@pytest.mark.parametrize("protocol", [*wire.UNARY, wire.CONNECT_STREAM])
async def test_keys_the_gateway_or_grpc_own_cannot_be_forged(
    client: httpx.AsyncClient, backend: Backend, protocol: str
) -> None:
    for header in FORGED:
        headers = {header: "forged"}
        if protocol == wire.CONNECT_STREAM:
            refused = await watch(client, protocol, headers)
            assert refused.http_status == 200  # a stream's error is in its end
        else:
            refused = await get_user(client, protocol, headers)
            assert_error(refused, protocol, INVALID_ARGUMENT, 400)
        assert (refused.code, refused.reason) == (INVALID_ARGUMENT, "INVALID_HEADER"), header
    assert not backend.recorder.calls


@pytest.mark.parametrize("protocol", wire.UNARY)
async def test_an_unusable_request_id_is_refused_in_the_protocols_form(
    client: httpx.AsyncClient, backend: Backend, protocol: str
) -> None:
    refused = await get_user(client, protocol, {"x-request-id": "x" * 129})
    assert_error(refused, protocol, INVALID_ARGUMENT, 400)
    assert refused.reason == "INVALID_HEADER"
    assert not backend.recorder.calls


# -- deadlines --------------------------------------------------------------------------------


def timeout_header(protocol: str, seconds: float) -> dict[str, str]:
    """The protocol's own way to say a deadline."""
    if wire.is_grpc_web(protocol):
        return {"grpc-timeout": f"{int(seconds * 1000)}m"}
    return {"connect-timeout-ms": str(int(seconds * 1000))}


def remaining(backend: Backend, rpc: str) -> float | None:
    return backend.recorder.last(rpc).time_remaining


@pytest.mark.parametrize("protocol", wire.UNARY)
async def test_the_protocols_timeout_is_the_calls_deadline_capped_and_defaulted(
    client: httpx.AsyncClient, backend: Backend, protocol: str
) -> None:
    assert (await get_user(client, protocol, timeout_header(protocol, 2))).code == 0
    asked = remaining(backend, "GetUser")
    assert asked is not None
    assert 0 < asked <= 2 + SLACK
    await get_user(client, protocol, timeout_header(protocol, 3600))
    capped = remaining(backend, "GetUser")
    assert capped is not None
    assert TIMEOUT_SECONDS < capped <= MAX_TIMEOUT_SECONDS + SLACK
    await get_user(client, protocol, {})
    default = remaining(backend, "GetUser")
    assert default is not None
    assert MAX_TIMEOUT_SECONDS / 2 > default > TIMEOUT_SECONDS - 2 * SLACK


@pytest.mark.parametrize("protocol", wire.STREAMING)
async def test_a_stream_has_no_deadline_unless_asked_and_then_a_capped_one(
    client: httpx.AsyncClient, backend: Backend, protocol: str
) -> None:
    await watch(client, protocol, {})
    assert remaining(backend, "WatchUsers") is None
    await watch(client, protocol, timeout_header(protocol, 3600))
    capped = remaining(backend, "WatchUsers")
    assert capped is not None
    assert TIMEOUT_SECONDS < capped <= MAX_TIMEOUT_SECONDS + SLACK


@pytest.mark.parametrize("protocol", wire.UNARY)
async def test_a_deadline_already_passed_is_deadline_exceeded_before_any_call(
    client: httpx.AsyncClient, backend: Backend, protocol: str
) -> None:
    refused = await get_user(client, protocol, timeout_header(protocol, 0))
    assert_error(refused, protocol, DEADLINE_EXCEEDED, 504)
    assert refused.reason == "DEADLINE_EXCEEDED"
    assert not backend.recorder.calls


@pytest.mark.parametrize("protocol", wire.UNARY)
async def test_a_call_past_its_deadline_is_deadline_exceeded_and_cancelled(
    client: httpx.AsyncClient, backend: Backend, protocol: str
) -> None:
    late = await get_user(client, protocol, timeout_header(protocol, 0.2), user="hang")
    assert_error(late, protocol, DEADLINE_EXCEEDED, 504)
    await asyncio.wait_for(backend.recorder.cancelled.wait(), 5)  # the service let go too


@pytest.mark.parametrize(
    ("protocol", "header"),
    [
        (wire.CONNECT_JSON, {"connect-timeout-ms": "soon"}),
        (wire.CONNECT_JSON, {"connect-timeout-ms": "12345678901"}),  # 11 digits
        (wire.CONNECT_GET, {"connect-timeout-ms": "-1"}),
        (wire.GRPC_WEB, {"grpc-timeout": "soon"}),
        (wire.GRPC_WEB_TEXT, {"grpc-timeout": "1.5S"}),
    ],
)
async def test_a_malformed_timeout_is_invalid_argument_naming_its_header(
    client: httpx.AsyncClient, backend: Backend, protocol: str, header: dict[str, str]
) -> None:
    refused = await get_user(client, protocol, header)
    assert_error(refused, protocol, INVALID_ARGUMENT, 400)
    assert refused.reason == "INVALID_HEADER"
    assert not backend.recorder.calls


# -- the error table --------------------------------------------------------------------------


def rest_details(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in d.items() if k != "@type"} for d in body["details"]]


def details_json(outcome: wire.Outcome) -> list[dict[str, Any]]:
    """The details as REST writes them (the same messages), for comparing."""
    found = []
    for detail in outcome.details:
        name = detail.type_url.rpartition("/")[2]
        message = symbol_database.Default().GetSymbol(name)()
        detail.Unpack(message)
        found.append(json_format.MessageToDict(message, always_print_fields_with_no_presence=True))
    return found


@pytest.mark.parametrize("protocol", wire.UNARY)
async def test_a_services_error_is_the_same_as_rests_in_the_protocols_form(
    client: httpx.AsyncClient, protocol: str
) -> None:
    for code in grpc.StatusCode:
        if code is grpc.StatusCode.OK:
            continue
        user = f"code-{code.value[0]}"
        rest = await client.get(f"/v1/users/{user}")
        body = rest.json()
        outcome = await get_user(client, protocol, {}, user)
        assert_error(outcome, protocol, body["code"], rest.status_code)
        if code is not grpc.StatusCode.CANCELLED:  # the service's cut: a retryable 503
            assert rest.status_code == HTTP_STATUS[code]
        assert outcome.message == body["message"]
        assert details_json(outcome) == rest_details(body), code
        if code is grpc.StatusCode.UNAUTHENTICATED:
            challenge = rest.headers["www-authenticate"]
            assert outcome.headers["www-authenticate"] == challenge == "Bearer"


@pytest.mark.parametrize("protocol", wire.STREAMING)
async def test_a_stream_that_fails_before_its_first_message_keeps_its_error(
    client: httpx.AsyncClient, protocol: str
) -> None:
    from_now = user_pb2.WatchUsersRequest()  # the fake: UNIMPLEMENTED at once
    rest = await client.get("/v1/users:watch")
    assert rest.status_code == 501  # REST: the real status, the stream not started
    failed = await watch(client, protocol, {}, from_now)
    assert failed.http_status == 200  # these protocols: the error in the stream's end
    assert (failed.code, failed.message, failed.reason) == (12, "not yet", "WATCH_UNIMPLEMENTED")
    assert failed.messages == []
    if wire.is_grpc_web(protocol):
        assert failed.headers["grpc-status"] == "12"  # trailers-only


async def test_grpc_web_details_are_the_services_status_whole(client: httpx.AsyncClient) -> None:
    outcome = await get_user(client, wire.GRPC_WEB, {}, "code-5")
    carried = outcome.headers["grpc-status-details-bin"]
    assert carried == outcome.trailers["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(base64.b64decode(carried + "=" * (-len(carried) % 4)))
    assert (status.code, status.message) == (5, "failed with NOT_FOUND")
    assert len(status.details) == 2


# -- the REST routes are unchanged ------------------------------------------------------------


async def test_rest_answers_what_it_did_and_the_same_data_as_connect(
    client: httpx.AsyncClient,
) -> None:
    rest = await client.get("/v1/users/u-1", headers={"grpc-metadata-x-echo": "hi"})
    assert rest.status_code == 200
    assert rest.headers["content-type"] == "application/json"
    assert rest.json() == {
        "id": "u-1",
        "email": "u-1@example.com",
        "displayName": "",
        "etag": "",
        "subject": "",
    }  # the response_body, its unset fields written
    assert rest.headers["grpc-metadata-x-served-by"] == "fake"
    assert rest.headers["grpc-trailer-x-trailer"] == "done"
    assert "x-served-by" not in rest.headers
    connect = await client.post(
        GET_USER, json={"id": "u-1"}, headers={"content-type": "application/json"}
    )
    same = user_pb2.User()
    assert json_format.ParseDict(connect.json()["user"], same) == json_format.ParseDict(
        rest.json(), user_pb2.User()
    )
    listed = await client.get("/v1/users", params={"pageToken": "p"})
    listed_connect = await client.post(
        LIST_USERS, json={"pageToken": "p"}, headers={"content-type": "application/json"}
    )
    assert json_format.ParseDict(
        listed.json(), user_pb2.ListUsersResponse()
    ) == json_format.ParseDict(listed_connect.json(), user_pb2.ListUsersResponse())
    assert listed.json()["revision"] == str(2**53 + 1)
