"""The table's vocabulary: a case (rule, spec reference, request, expectation, backend
check, gateway variant), the gateway variants, the requests each protocol sends, and the
answers the fakes of tests/gateway/fakes.py give (their behaviours by request id and field
are listed there)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from shop.user.v1 import user_pb2
from shop_common.domain import ERROR_DOMAIN
from tests.gateway.fakes import BIG_NAME
from tests.gateway.rpc_conformance import wire
from tests.gateway.rpc_conformance.expect import (
    ConnectError,
    Expect,
    Reached,
    Untouched,
)

CONNECT = "Connect protocol (connectrpc.com/docs/protocol)"
CONNECT_CORS = "Connect CORS guide (connectrpc.com/docs/cors)"
GRPC_WEB = "gRPC-Web (grpc/grpc doc/PROTOCOL-WEB.md)"
GRPC_HTTP2 = "gRPC over HTTP2 (grpc/grpc doc/PROTOCOL-HTTP2.md)"
GRPC_CODES = "gRPC status codes (grpc/grpc doc/statuscodes.md)"
ISSUE = "issue 19 (spec/rpc-protocols.md)"

ORIGIN = "https://app.example"
LIMIT_BYTES = 1024
"""The body limit of the default gateway (tests/gateway/conftest.py's MAX_BODY_BYTES)."""
VARIANTS: Mapping[str, Mapping[str, object]] = MappingProxyType(
    {
        # Faster than a caller may go: no rate limit (the `limited` variant has one).
        "default": {"rate_limit_per_second": 0},
        "roomy": {"rate_limit_per_second": 0, "max_body_bytes": 64 * 1024},
        "cors": {"rate_limit_per_second": 0, "cors_origins": (ORIGIN,)},
        "limited": {"rate_limit_per_second": 0.001, "rate_limit_burst": 1},
    }
)
"""Settings of the gateways the cases run against, over tests/gateway/conftest.py's
`settings_for`."""

USERS = "/shop.user.v1.UserService/"
GET_USER = USERS + "GetUser"
CREATE_USER = USERS + "CreateUser"
WATCH_USERS = USERS + "WatchUsers"
GET_ORDER = "/shop.order.v1.OrderService/GetOrder"


@dataclass(frozen=True)
class Request:
    path: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    query: str = ""
    """Sent as it is (already percent-encoded)."""


@dataclass(frozen=True)
class Case:
    rule: str
    """`<protocol>.<part>.<rule>`, the test's id."""
    spec: str
    request: Request
    expect: Expect
    backend: Reached | Untouched | None = None
    """What the backend must have seen (None: not looked at)."""
    gateway: str = "default"
    before: tuple[Request, ...] = ()
    """Sent first, on the same gateway, their answers not looked at."""


# Requests.


def as_json(message: Message) -> bytes:
    return json_format.MessageToJson(message, indent=None).encode()


def encode(message: Message, codec: str) -> bytes:
    return as_json(message) if codec == "json" else message.SerializeToString()


def connect(
    path: str,
    message: Message,
    codec: str = "json",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> Request:
    """A Connect unary POST."""
    all_headers = {"Content-Type": f"application/{codec}", "Connect-Protocol-Version": "1"}
    return Request(
        path,
        headers=all_headers | dict(headers or {}),
        body=encode(message, codec) if body is None else body,
    )


def connect_get(path: str, query: str, headers: Mapping[str, str] | None = None) -> Request:
    return Request(path, method="GET", query=query, headers=dict(headers or {}))


def json_query(message: Message) -> str:
    return f"connect=v1&encoding=json&message={wire.query_json(as_json(message).decode())}"


def connect_stream(
    path: str,
    message: Message,
    codec: str = "json",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> Request:
    """A Connect streaming POST: the request in one envelope."""
    all_headers = {"Content-Type": f"application/connect+{codec}", "Connect-Protocol-Version": "1"}
    return Request(
        path,
        headers=all_headers | dict(headers or {}),
        body=wire.envelope(encode(message, codec)) if body is None else body,
    )


def grpc_web(
    path: str,
    message: Message,
    content_type: str = "application/grpc-web+proto",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> Request:
    """A gRPC-Web POST, as a browser client sends it (`X-Grpc-Web: 1`); the text forms
    base64-encode the body and ask for a text response."""
    codec = "json" if content_type.endswith("+json") else "proto"
    framed = wire.envelope(encode(message, codec)) if body is None else body
    all_headers = {"Content-Type": content_type, "X-Grpc-Web": "1"}
    if "-text" in content_type:
        framed = base64.b64encode(framed) if body is None else framed
        all_headers["Accept"] = content_type
    return Request(path, headers=all_headers | dict(headers or {}), body=framed)


# Expected messages and errors.


def user(id: str) -> user_pb2.GetUserResponse:
    """What the fake answers to `GetUser` of `id`."""
    return user_pb2.GetUserResponse(user=user_pb2.User(id=id, email=f"{id}@example.com"))


def watched(start: int, prev_user: bool = False) -> tuple[user_pb2.WatchUsersResponse, ...]:
    """The three responses of the fake's watch from revision `start`."""
    responses = []
    for step in range(1, 4):
        event = user_pb2.UserEvent(
            type=user_pb2.UserEvent.TYPE_PUT,
            user=user_pb2.User(id=f"u{step}"),
            revision=start + step,
        )
        if prev_user:
            event.prev_user.CopyFrom(user_pb2.User(id=f"u{step}", display_name="n" * BIG_NAME))
        responses.append(user_pb2.WatchUsersResponse(events=[event], header_revision=start + step))
    return tuple(responses)


def connect_code(code: grpc.StatusCode) -> str:
    return "canceled" if code is grpc.StatusCode.CANCELLED else code.name.lower()


def fake_details(code: grpc.StatusCode, message: str, reason: str) -> tuple[Message, ...]:
    """The details of the fake's `rich_status` with field `id`."""
    violation = error_details_pb2.BadRequest.FieldViolation(field="id", description=message)
    return (
        error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN),
        error_details_pb2.BadRequest(field_violations=[violation]),
    )


def error(*codes: str, message: str | None = None, mentions: str | None = None) -> ConnectError:
    return ConnectError(frozenset(codes), message=message, mentions=mentions)


def error_or_nothing(*codes: str) -> ConnectError:
    """A Connect unary error response's body: "either omitted or a JSON-serialized Error"
    (Unary-Response)."""
    return ConnectError(frozenset(codes), may_be_empty=True)


MALFORMED = ("invalid_argument", "internal")
"""A body that cannot be read: connect-go answers invalid_argument, gRPC INTERNAL ("Error
parsing request proto"); either is right, neither spec names one."""
MALFORMED_GRPC = frozenset({3, 13})
CARDINALITY = ("unimplemented", "invalid_argument", "internal")
"""Not exactly one request message for a server-streaming method: gRPC says UNIMPLEMENTED
("Request cardinality violation"), connect-go unimplemented; a framing error is MALFORMED."""
HTTP_OF_CODE = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}
"""Connect's table, section Error Codes."""
TOO_LARGE_STATUS = frozenset({413, 429})
"""resource_exhausted is 429; the gateway may say 413 for its own body limit (issue 19)."""
NOT_FOUND_DETAILS = fake_details(grpc.StatusCode.NOT_FOUND, "failed with NOT_FOUND", "NOT_FOUND")
SPECIAL = "50% ✓ done\r\n\tnext line \x01 ünï"
"""A status message with `%`, non-ASCII, CR, LF, a tab and a control character."""
BIG_ID = "a" * 3000
"""A `GetUser` id whose answer (the id and an email made of it) is 6 KB: large enough to be
compressed by any threshold."""
NEVER = "x" * (LIMIT_BYTES * 2)
BROWSER_ENCODINGS = "gzip, deflate, br, zstd"
"""What a browser's fetch sends as Accept-Encoding, on every request."""
