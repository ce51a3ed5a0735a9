"""Connect unary POST: codecs, metadata, the Error and its HTTP status per code, timeouts,
compression, and what is refused (415, 405, malformed and oversized bodies)."""

from __future__ import annotations

import grpc

from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.gateway.conftest import MAX_TIMEOUT_SECONDS, SLACK
from tests.gateway.rpc_conformance import wire
from tests.gateway.rpc_conformance.expect import (
    UNTOUCHED,
    ConnectError,
    ConnectMessage,
    Expect,
    Reached,
)
from tests.gateway.rpc_conformance.table import (
    BIG_ID,
    CONNECT,
    GET_ORDER,
    GET_USER,
    GRPC_CODES,
    GRPC_HTTP2,
    HTTP_OF_CODE,
    ISSUE,
    LIMIT_BYTES,
    MALFORMED,
    NEVER,
    NOT_FOUND_DETAILS,
    SPECIAL,
    TOO_LARGE_STATUS,
    USERS,
    WATCH_USERS,
    Case,
    Request,
    as_json,
    connect,
    connect_code,
    connect_stream,
    error,
    error_or_nothing,
    user,
)


def http_status_case(code: grpc.StatusCode) -> Case:
    """The backend fails with `code`; the Error carries its Connect name and the HTTP status
    of that name. CANCELLED from a service is the one the gateway's error table (as on REST)
    turns into unavailable, to be retried: the service cancelled, not the client."""
    name = connect_code(code)
    spec = (
        f'{CONNECT} §Error Codes: "each code maps to a specific HTTP status code": {name} → '
        f"{HTTP_OF_CODE[name]}"
    )
    request = connect(GET_USER, user_pb2.GetUserRequest(id=f"code-{code.value[0]}"))
    if code is grpc.StatusCode.CANCELLED:
        return Case(
            f"connect.error.http-status.{name}",
            f"{spec}; {ISSUE}: the gateway's error table: a service's CANCELLED is "
            "unavailable (503), to retry",
            request,
            Expect(503, error("unavailable")),
        )
    return Case(
        f"connect.error.http-status.{name}",
        spec,
        request,
        Expect(HTTP_OF_CODE[name], error(name, message=f"failed with {code.name}")),
    )


def connect_unary_cases() -> list[Case]:
    u1 = user_pb2.GetUserRequest(id="u1")
    return [
        Case(
            "connect.unary.json",
            f'{CONNECT} §Unary-Response: "Successful responses have an HTTP-Status of 200 … '
            "Unary-Content-Type is the same as the request's\"; application/json",
            connect(GET_USER, u1),
            Expect(200, ConnectMessage(user("u1")), present=("x-request-id",)),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.unary.proto",
            f"{CONNECT} §Unary-Request: Unary-Content-Type application/proto, Bare-Message the "
            "binary message",
            connect(GET_USER, u1, codec="proto"),
            Expect(200, ConnectMessage(user("u1"), codec="proto")),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.unary.json-charset",
            f"{ISSUE}: application/json with charset=utf-8 allowed (as connect-go and "
            "connect-es treat it: the same codec)",
            connect(GET_USER, u1, headers={"Content-Type": "application/json; charset=utf-8"}),
            Expect(200, ConnectMessage(user("u1"))),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.unary.order-service",
            f"{ISSUE}: every method of every served service at /<package>.<Service>/<Method>",
            connect(GET_ORDER, order_pb2.GetOrderRequest(id="o-9")),
            Expect(
                200,
                ConnectMessage(
                    order_pb2.GetOrderResponse(
                        order=order_pb2.Order(id="o-9", state=order_pb2.Order.STATE_PENDING)
                    )
                ),
            ),
            Reached("GetOrder", order_pb2.GetOrderRequest(id="o-9")),
        ),
        Case(
            "connect.unary.protocol-version-optional",
            f'{CONNECT} §Unary-Request: "[Connect-Protocol-Version]" is optional; {ISSUE}: '
            "optional",
            Request(GET_USER, headers={"Content-Type": "application/json"}, body=as_json(u1)),
            Expect(200, ConnectMessage(user("u1"))),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.unary.protocol-version-invalid",
            f'{CONNECT} §Unary-Request: Connect-Protocol-Version → "connect-protocol-version" '
            f'"1"; {ISSUE}: any other value → 400 invalid_argument',
            connect(GET_USER, u1, headers={"Connect-Protocol-Version": "2"}),
            Expect(400, error("invalid_argument")),
            UNTOUCHED,
        ),
        Case(
            "connect.unary.leading-metadata",
            f"{CONNECT} §Unary-Request: Leading-Metadata are custom headers; §Unary-Response: "
            "the server's leading metadata are headers",
            connect(GET_USER, u1, headers={"X-Echo": "hi"}),
            Expect(
                200, ConnectMessage(user("u1")), headers={"x-echo": "hi", "x-served-by": "fake"}
            ),
            Reached("GetUser", u1, metadata={"x-echo": "hi"}),
        ),
        Case(
            "connect.unary.trailing-metadata",
            f'{CONNECT} §Unary-Response: "Implementations must transparently prefix trailing '
            'metadata keys with trailer-"',
            connect(GET_USER, u1),
            Expect(200, ConnectMessage(user("u1")), headers={"trailer-x-trailer": "done"}),
        ),
        Case(
            "connect.unary.error-json",
            f"{CONNECT} §Error and EndStreamResponse: an Error is a code string, a message and "
            'details, each "type" (full message name) and "value" (unpadded base64 of the '
            'binary message), optionally "debug" (its JSON); §Unary-Response: errors are '
            "application/json",
            connect(GET_USER, user_pb2.GetUserRequest(id="code-5")),
            Expect(
                404,
                ConnectError(
                    frozenset({"not_found"}), "failed with NOT_FOUND", details=NOT_FOUND_DETAILS
                ),
            ),
            Reached("GetUser"),
        ),
        Case(
            "connect.unary.error-json-for-proto",
            f'{CONNECT} §Unary-Response: "In those cases, Unary-Content-Type must be '
            "application/json\", whatever the request's codec",
            connect(GET_USER, user_pb2.GetUserRequest(id="code-5"), codec="proto"),
            Expect(
                404,
                ConnectError(
                    frozenset({"not_found"}), "failed with NOT_FOUND", details=NOT_FOUND_DETAILS
                ),
            ),
        ),
        Case(
            "connect.unary.error-message-unicode",
            f'{CONNECT} §Error and EndStreamResponse: "Code and message (if present) are UTF-8 '
            'strings" (gRPC interop: special_status_message)',
            connect(GET_USER, user_pb2.GetUserRequest(id=f"say-{SPECIAL}")),
            Expect(400, error("invalid_argument", message=SPECIAL)),
        ),
        Case(
            "connect.unary.malformed-json",
            f"{CONNECT} §Unary-Request: Bare-Message is the message in the codec; one that is "
            "not is an error (connect-go: invalid_argument) and calls nothing",
            connect(GET_USER, u1, body=b'{"id": '),
            Expect(frozenset({400, 500}), error(*MALFORMED)),
            UNTOUCHED,
        ),
        Case(
            "connect.unary.malformed-proto",
            f"{CONNECT} §Unary-Request: Bare-Message in the proto codec; bytes that are not a "
            "message are an error and call nothing",
            connect(GET_USER, u1, codec="proto", body=b"\x0a\xff\xff\xff"),
            Expect(frozenset({400, 500}), error(*MALFORMED)),
            UNTOUCHED,
        ),
        Case(
            "connect.unary.too-large",
            f"{ISSUE}: a body over the limit ({LIMIT_BYTES} bytes here) → resource_exhausted "
            f'(413 allowed); {GRPC_CODES}: "larger than configured limit: RESOURCE_EXHAUSTED"',
            connect(GET_USER, user_pb2.GetUserRequest(id=NEVER)),
            Expect(TOO_LARGE_STATUS, error("resource_exhausted")),
            UNTOUCHED,
        ),
        Case(
            "connect.unary.unknown-method",
            f"{CONNECT} §HTTP to Error Code: 404 → unimplemented; {GRPC_CODES}: method not "
            'found → UNIMPLEMENTED; §Unary-Response: the body "either omitted or a '
            'JSON-serialized Error"',
            connect(USERS + "NoSuchMethod", u1),
            Expect(frozenset({404, 501}), error_or_nothing("unimplemented", "not_found")),
            UNTOUCHED,
        ),
        Case(
            "connect.unary.unknown-service",
            f'{CONNECT} §Unary-Request: "Path → … Procedure-Name ; case-sensitive"; an '
            "unknown one is not found",
            connect("/shop.user.v1.userservice/GetUser", u1),
            Expect(frozenset({404, 501}), error_or_nothing("unimplemented", "not_found")),
            UNTOUCHED,
        ),
        Case(
            "connect.unary.wrong-http-method",
            f'{CONNECT} §Unary-Request: "Method-Post → :method POST"; {ISSUE}: wrong HTTP '
            "method → 405 with Allow",
            Request(
                GET_USER,
                method="PUT",
                headers={"Content-Type": "application/json"},
                body=as_json(u1),
            ),
            Expect(405, lists={"allow": ("POST",)}),
            UNTOUCHED,
        ),
        Case(
            "connect.unary.unknown-content-type",
            f"{CONNECT} §Unary-Request: \"If the server doesn't support the specified "
            f'Message-Codec, it must respond with an HTTP status code of 415"; {ISSUE}: with '
            "Accept-Post",
            connect(GET_USER, u1, headers={"Content-Type": "text/plain"}),
            Expect(415, lists={"accept-post": ("application/json", "application/proto")}),
            UNTOUCHED,
        ),
        Case(
            "connect.unary.streaming-content-type",
            f"{ISSUE}: a unary method asked with a streaming Content-Type → 415",
            connect_stream(GET_USER, u1),
            Expect(415),
            UNTOUCHED,
        ),
        Case(
            "connect.stream.unary-content-type",
            f'{CONNECT} §Streaming-Request: "If Streaming-Content-Type does not begin with '
            'application/connect+, servers should respond with an HTTP status of 415"',
            connect(WATCH_USERS, user_pb2.WatchUsersRequest(start_revision=1)),
            Expect(415),
            UNTOUCHED,
        ),
        Case(
            "connect.unary.grpc-content-type",
            f"{GRPC_HTTP2}: application/grpc needs HTTP/2 trailers; {ISSUE} serves Connect and "
            "gRPC-Web only: any other Content-Type → 415",
            Request(GET_USER, headers={"Content-Type": "application/grpc"}, body=wire.envelope(u1)),
            Expect(415),
            UNTOUCHED,
        ),
    ]


def connect_timeout_cases() -> list[Case]:
    hang = user_pb2.GetUserRequest(id="hang")
    u1 = user_pb2.GetUserRequest(id="u1")
    return [
        Case(
            "connect.timeout.propagated",
            f'{CONNECT} §Unary-Request: "Timeout → connect-timeout-ms Timeout-Milliseconds": '
            "the backend call gets that deadline",
            connect(GET_USER, u1, headers={"Connect-Timeout-Ms": "3000"}),
            Expect(200, ConnectMessage(user("u1"))),
            Reached("GetUser", u1, deadline=(2.0, 3.0 + SLACK)),
        ),
        Case(
            "connect.timeout.clamped",
            f'{CONNECT} §Unary-Request: "server implementations may clamp timeouts to an '
            f'appropriate maximum" ({MAX_TIMEOUT_SECONDS:.0f} s here)',
            connect(GET_USER, u1, headers={"Connect-Timeout-Ms": "9999999999"}),
            Expect(200, ConnectMessage(user("u1"))),
            Reached("GetUser", u1, deadline=(MAX_TIMEOUT_SECONDS - 5, MAX_TIMEOUT_SECONDS + SLACK)),
        ),
        Case(
            "connect.timeout.not-digits",
            f'{CONNECT} §Unary-Request: "Timeout-Milliseconds → positive integer as ASCII '
            f'string of at most 10 digits"; {ISSUE}: else 400 invalid_argument',
            connect(GET_USER, u1, headers={"Connect-Timeout-Ms": "1.5s"}),
            Expect(400, error("invalid_argument")),
            UNTOUCHED,
        ),
        Case(
            "connect.timeout.eleven-digits",
            f'{CONNECT} §Unary-Request: "at most 10 digits"',
            connect(GET_USER, u1, headers={"Connect-Timeout-Ms": "12345678901"}),
            Expect(400, error("invalid_argument")),
            UNTOUCHED,
        ),
        Case(
            "connect.timeout.negative",
            f'{CONNECT} §Unary-Request: "positive integer"',
            connect(GET_USER, u1, headers={"Connect-Timeout-Ms": "-5"}),
            Expect(400, error("invalid_argument")),
            UNTOUCHED,
        ),
        Case(
            "connect.timeout.expires",
            f'{CONNECT} §Error Codes: deadline_exceeded (504) "Deadline expired before RPC '
            'could complete"; the backend call is cancelled',
            connect(GET_USER, hang, headers={"Connect-Timeout-Ms": "200"}),
            Expect(504, error("deadline_exceeded")),
            Reached("GetUser", hang, cancelled=True),
        ),
    ]


def connect_compression_cases() -> list[Case]:
    u1 = user_pb2.GetUserRequest(id="u1")
    big = user_pb2.GetUserRequest(id=BIG_ID)
    return [
        Case(
            "connect.compression.gzip-request",
            f'{CONNECT} §Unary-Request: Bare-Message "possibly compressed using Content-Encoding"',
            connect(
                GET_USER, u1, headers={"Content-Encoding": "gzip"}, body=wire.gzipped(as_json(u1))
            ),
            Expect(200, ConnectMessage(user("u1"))),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.compression.identity-named",
            f'{CONNECT} §Unary-Request: "Content-Coding → identity / gzip / br / zstd / '
            '{custom}": identity named is no compression',
            connect(GET_USER, u1, headers={"Content-Encoding": "identity"}),
            Expect(200, ConnectMessage(user("u1"))),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.compression.gzip-response",
            f'{CONNECT} §Unary-Response: the message "possibly compressed using '
            f'Content-Encoding"; {ISSUE}: Accept-Encoding: gzip → gzipped when large enough',
            connect(GET_USER, big, headers={"Accept-Encoding": "gzip"}),
            Expect(200, ConnectMessage(user(BIG_ID), gzip=True)),
            Reached("GetUser", big),
            gateway="roomy",
        ),
        Case(
            "connect.compression.accept-list",
            f'{CONNECT} §Unary-Request: "Servers should treat Accept-Encoding as an ordered '
            "list, with the client's most preferred encoding first\": br (not offered), gzip",
            connect(GET_USER, big, headers={"Accept-Encoding": "br, gzip"}),
            Expect(200, ConnectMessage(user(BIG_ID), gzip=True)),
            gateway="roomy",
        ),
        Case(
            "connect.compression.identity-unless-asked",
            f'{CONNECT} §Unary-Response: "Servers must either respond with an error or use a '
            'Content-Encoding supported by the client" (no Accept-Encoding: identity only)',
            connect(GET_USER, big),
            Expect(200, ConnectMessage(user(BIG_ID), gzip=False)),
            gateway="roomy",
        ),
        Case(
            "connect.compression.empty-body-not-decompressed",
            f'{CONNECT} §Unary-Request: "Servers must not attempt to decompress zero-length '
            'HTTP request content" (the empty proto message)',
            connect(GET_USER, u1, codec="proto", headers={"Content-Encoding": "gzip"}, body=b""),
            Expect(200, ConnectMessage(user(""), codec="proto")),
            Reached("GetUser", user_pb2.GetUserRequest()),
        ),
        Case(
            "connect.compression.unsupported",
            f'{CONNECT} §Unary-Request: "If the client uses an unsupported Content-Encoding, '
            "servers should return an error with code unimplemented and a message listing the "
            f'supported encodings"; {ISSUE}: with Accept-Encoding listing them',
            connect(GET_USER, u1, headers={"Content-Encoding": "br"}, body=b"\x8b\x00\x80"),
            Expect(
                501, error("unimplemented", mentions="gzip"), lists={"accept-encoding": ("gzip",)}
            ),
            UNTOUCHED,
        ),
        Case(
            "connect.compression.not-gzip",
            f'{GRPC_CODES}: "Could not decompress, but compression algorithm supported: '
            'INTERNAL" (connect-go: invalid_argument)',
            connect(GET_USER, u1, headers={"Content-Encoding": "gzip"}, body=as_json(u1)),
            Expect(frozenset({400, 500}), error(*MALFORMED)),
            UNTOUCHED,
        ),
        Case(
            "connect.compression.bomb",
            f"{ISSUE}: a body over the limit once decompressed → resource_exhausted (413 "
            f'allowed); {GRPC_CODES}: "larger than configured limit"',
            connect(
                GET_USER,
                u1,
                headers={"Content-Encoding": "gzip"},
                body=wire.gzipped(as_json(user_pb2.GetUserRequest(id="a" * 1_000_000))),
            ),
            Expect(TOO_LARGE_STATUS, error("resource_exhausted")),
            UNTOUCHED,
        ),
    ]
