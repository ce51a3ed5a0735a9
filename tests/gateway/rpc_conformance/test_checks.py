"""The checks themselves, on the specifications' own examples and on near misses: a check
that passed everything would prove nothing."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from shop.user.v1 import user_pb2
from tests.gateway.rpc_conformance import wire
from tests.gateway.rpc_conformance.expect import Answer, ConnectError, ConnectStream, GrpcWeb

RETRY = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=60))
SPEC_ERROR = {
    "code": "unavailable",
    "message": "overloaded: back off and retry",
    "details": [
        {"type": "google.rpc.RetryInfo", "value": "CgIIPA", "debug": {"retryDelay": "60s"}}
    ],
}
"""The Connect spec's Error example (its debug made to agree with its value: 60 s)."""
UNAVAILABLE = ConnectError(frozenset({"unavailable"}), details=(RETRY,))
GET = user_pb2.GetUserResponse(user=user_pb2.User(id="u1"))


def answer(body: bytes, content_type: str, status: int = 200) -> Answer:
    return Answer(status, httpx.Headers({"content-type": content_type}), body)


def test_the_connect_spec_error_example_passes() -> None:
    UNAVAILABLE.check(answer(orjson.dumps(SPEC_ERROR), "application/json", 503))


@pytest.mark.parametrize(
    "spoil",
    [
        lambda e: e | {"code": 14},  # a google.rpc.Status, as the REST routes answer
        lambda e: e | {"code": "Unavailable"},
        lambda e: e | {"details": [e["details"][0] | {"value": "CgIIPA=="}]},
        lambda e: e | {"details": [e["details"][0] | {"type": "type.googleapis.com/x.Y"}]},
        lambda e: e | {"details": [e["details"][0] | {"debug": {"retryDelay": "1s"}}]},
        lambda e: e | {"details": []},
    ],
)
def test_a_near_miss_of_a_connect_error_fails(spoil: Callable[[Any], Any]) -> None:
    with pytest.raises(AssertionError):
        UNAVAILABLE.check(answer(orjson.dumps(spoil(SPEC_ERROR)), "application/json", 503))


def test_the_connect_spec_failed_stream_example_passes() -> None:
    end = b'{"error": {"code": "unavailable", "message": "overloaded"}}'
    body = wire.envelope(end, wire.END_STREAM)
    stream = ConnectStream(
        user_pb2.GetUserResponse,
        (),
        codec="proto",
        error=ConnectError(frozenset({"unavailable"}), "overloaded"),
    )
    stream.check(answer(body, "application/connect+proto"))
    with pytest.raises(AssertionError):  # the end-of-stream flag is the second bit, not the MSB
        stream.check(answer(wire.envelope(end, wire.TRAILERS), "application/connect+proto"))
    with pytest.raises(AssertionError):  # a successful end has no error
        stream.check(answer(wire.envelope(b"{}", wire.END_STREAM), "application/connect+proto"))


def grpc_web_body(trailers: bytes, flags: int = wire.TRAILERS) -> bytes:
    return wire.envelope(GET) + wire.envelope(trailers, flags)


def test_an_envoy_style_grpc_web_response_passes_binary_and_as_text() -> None:
    body = grpc_web_body(b"grpc-status:0\r\ngrpc-message:\r\nx-trailer: done\r\n")
    check = GrpcWeb(
        user_pb2.GetUserResponse, "application/grpc-web", (GET,), trailers={"x-trailer": "done"}
    )
    check.check(answer(body, "application/grpc-web+proto"))
    split = len(wire.envelope(GET))  # two chunks, each padded, as a server may flush
    text = base64.b64encode(body[:split]) + base64.b64encode(body[split:])
    GrpcWeb(user_pb2.GetUserResponse, "application/grpc-web-text", (GET,)).check(
        answer(text, "application/grpc-web-text+proto")
    )


@pytest.mark.parametrize(
    "body",
    [
        grpc_web_body(b"grpc-status: 0\r\n", flags=0x81),  # compressed trailers, no encoding
        grpc_web_body(b"grpc-status: 0"),  # no CRLF
        grpc_web_body(b"Grpc-Status: 0\r\n"),  # not lower case
        grpc_web_body(b"grpc-status: 00\r\n"),
        grpc_web_body(b"grpc-status: 0\r\ngrpc-message: 100%\r\n"),
        grpc_web_body(b"grpc-status: 0\r\n") + wire.envelope(GET),  # a frame after the trailers
        wire.envelope(GET),  # no trailers
    ],
)
def test_a_near_miss_of_a_grpc_web_response_fails(body: bytes) -> None:
    with pytest.raises(AssertionError):
        GrpcWeb(user_pb2.GetUserResponse, "application/grpc-web", None).check(
            answer(body, "application/grpc-web")
        )


def test_grpc_message_percent_decoding_follows_the_grammar() -> None:
    assert wire.percent_decoded("50%25 %E2%9C%93%0D%0A") == "50% ✓\r\n"
    with pytest.raises(AssertionError):
        wire.percent_decoded("caf\u00e9")
