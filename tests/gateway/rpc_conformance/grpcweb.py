"""gRPC-Web: the binary, JSON and text forms, unary and streamed, trailer frames, deadlines,
and what is refused (as HTTP 200 with the status in the trailers)."""

from __future__ import annotations

import base64

from google.rpc import error_details_pb2

from shop.user.v1 import user_pb2
from shop_common.domain import ERROR_DOMAIN
from tests.gateway.conftest import SLACK
from tests.gateway.rpc_conformance import wire
from tests.gateway.rpc_conformance.expect import (
    UNTOUCHED,
    Expect,
    GrpcWeb,
    Reached,
)
from tests.gateway.rpc_conformance.table import (
    BIG_ID,
    BROWSER_ENCODINGS,
    GET_USER,
    GRPC_CODES,
    GRPC_HTTP2,
    GRPC_WEB,
    ISSUE,
    LIMIT_BYTES,
    MALFORMED_GRPC,
    NEVER,
    NOT_FOUND_DETAILS,
    SPECIAL,
    USERS,
    WATCH_USERS,
    Case,
    grpc_web,
    user,
    watched,
)


def grpc_web_cases() -> list[Case]:
    u1 = user_pb2.GetUserRequest(id="u1")
    full = user_pb2.WatchUsersRequest(start_revision=1, prev_user=True)
    hang = user_pb2.GetUserRequest(id="hang")
    big = user_pb2.GetUserRequest(id=BIG_ID)
    response = user_pb2.GetUserResponse
    watch = user_pb2.WatchUsersResponse
    ok = {"x-trailer": "done"}

    def unary(rule: str, content_type: str, spec: str) -> Case:
        return Case(
            f"grpc-web.unary.{rule}",
            spec,
            grpc_web(GET_USER, u1, content_type),
            Expect(
                200,
                GrpcWeb(response, content_type, (user("u1"),), trailers=ok),
                headers={"x-served-by": "fake"},
            ),
            Reached("GetUser", u1),
        )

    chunked = wire.envelope(u1)
    return [
        unary(
            "binary",
            "application/grpc-web+proto",
            f"{GRPC_WEB} §Content-Type application/grpc-web+proto; §Message framing: data "
            "frames, then the trailers frame (MSB of the flag byte set) as an HTTP/1 header "
            "block, lower-case names",
        ),
        unary(
            "bare-content-type",
            "application/grpc-web",
            f"{GRPC_WEB} §Content-Type: application/grpc-web (proto)",
        ),
        unary(
            "json",
            "application/grpc-web+json",
            f"{GRPC_WEB} §Content-Type: application/grpc-web+[proto, json, thrift]; {ISSUE}: "
            "+json, as connect-es sends with useBinaryFormat: false",
        ),
        unary(
            "text",
            "application/grpc-web-text",
            f'{GRPC_WEB} §Text-encoded (response) streams: "The default text encoding is '
            'base64", request and response',
        ),
        unary(
            "text-proto",
            "application/grpc-web-text+proto",
            f"{GRPC_WEB} §Content-Type: application/grpc-web-text+proto",
        ),
        Case(
            "grpc-web.text.padded-chunks",
            f'{GRPC_WEB} §Text-encoded streams: "base64-encoded chunks with potential padding '
            'whenever the runtime needs to flush" (as Envoy decodes: 4 characters at a time)',
            grpc_web(
                GET_USER,
                u1,
                "application/grpc-web-text",
                body=base64.b64encode(chunked[:4]) + base64.b64encode(chunked[4:]),
            ),
            Expect(200, GrpcWeb(response, "application/grpc-web-text", (user("u1"),))),
            Reached("GetUser", u1),
        ),
        Case(
            "grpc-web.browser-accept-encoding",
            f'{GRPC_WEB} §Compression: "Full-body compression is supported and expected for all '
            'unary requests/responses … using standard Content-Encoding headers": what a '
            "browser's Accept-Encoding gets is readable",
            grpc_web(GET_USER, big, headers={"Accept-Encoding": BROWSER_ENCODINGS}),
            Expect(200, GrpcWeb(response, "application/grpc-web+proto", (user(BIG_ID),))),
            gateway="roomy",
        ),
        Case(
            "grpc-web.metadata",
            f"{GRPC_HTTP2} §Requests: Custom-Metadata as headers, the server's as response "
            f"headers and trailers; {GRPC_WEB}: the trailers in the trailer frame",
            grpc_web(GET_USER, u1, headers={"X-Echo": "hi"}),
            Expect(
                200,
                GrpcWeb(response, "application/grpc-web+proto", (user("u1"),), trailers=ok),
                headers={"x-echo": "hi", "x-served-by": "fake"},
            ),
            Reached("GetUser", u1, metadata={"x-echo": "hi"}),
        ),
        Case(
            "grpc-web.error",
            f'{GRPC_HTTP2} §Responses: "HTTP-Status → :status 200", the status in Trailers '
            f"(grpc-status, grpc-message, grpc-status-details-bin); {ISSUE}: errors are 200 "
            "with the trailer frame",
            grpc_web(GET_USER, user_pb2.GetUserRequest(id="code-5")),
            Expect(
                200,
                GrpcWeb(
                    response,
                    "application/grpc-web+proto",
                    (),
                    frozenset({5}),
                    "failed with NOT_FOUND",
                    NOT_FOUND_DETAILS,
                ),
            ),
        ),
        Case(
            "grpc-web.error-message-percent-encoded",
            f'{GRPC_HTTP2} §Responses: "Status-Message → grpc-message Percent-Encoded", '
            '"physically encoded as UTF-8 followed by percent-encoding"',
            grpc_web(
                GET_USER, user_pb2.GetUserRequest(id=f"say-{SPECIAL}"), "application/grpc-web-text"
            ),
            Expect(
                200,
                GrpcWeb(response, "application/grpc-web-text", (), frozenset({3}), SPECIAL, ()),
            ),
        ),
        Case(
            "grpc-web.stream",
            f"{GRPC_WEB} §Message framing: a server stream is data frames then one trailer "
            'frame: "Trailers must be the last message of the response"',
            grpc_web(WATCH_USERS, full),
            Expect(
                200,
                GrpcWeb(
                    watch, "application/grpc-web+proto", watched(1, prev_user=True), trailers=ok
                ),
                headers={"x-served-by": "fake"},
            ),
            Reached("WatchUsers", full),
        ),
        Case(
            "grpc-web.stream.text",
            f"{GRPC_WEB} §Text-encoded (response) streams: every frame base64, in order",
            grpc_web(WATCH_USERS, full, "application/grpc-web-text"),
            Expect(
                200,
                GrpcWeb(
                    watch, "application/grpc-web-text", watched(1, prev_user=True), trailers=ok
                ),
            ),
        ),
        Case(
            "grpc-web.stream.json",
            f"{GRPC_WEB} §Content-Type application/grpc-web+json, streamed",
            grpc_web(WATCH_USERS, full, "application/grpc-web+json"),
            Expect(
                200,
                GrpcWeb(
                    watch, "application/grpc-web+json", watched(1, prev_user=True), trailers=ok
                ),
            ),
        ),
        Case(
            "grpc-web.stream.error-after-messages",
            f'{GRPC_HTTP2} §Errors: "a Status and Status-Message are delivered in Trailers" '
            "after the messages sent",
            grpc_web(WATCH_USERS, user_pb2.WatchUsersRequest(start_revision=10)),
            Expect(
                200,
                GrpcWeb(
                    watch,
                    "application/grpc-web+proto",
                    watched(10),
                    frozenset({10}),
                    "compacted",
                    (error_details_pb2.ErrorInfo(reason="COMPACTED", domain=ERROR_DOMAIN),),
                ),
            ),
        ),
        Case(
            "grpc-web.stream.error-first",
            f'{GRPC_WEB} §Message framing: "Trailers-only responses: no change to the gRPC '
            'protocol spec" (a trailer frame alone, or the trailers as headers)',
            grpc_web(WATCH_USERS, user_pb2.WatchUsersRequest(start_revision=0)),
            Expect(
                200,
                GrpcWeb(watch, "application/grpc-web+proto", (), frozenset({12}), "not yet"),
            ),
        ),
        Case(
            "grpc-web.timeout.propagated",
            f'{GRPC_HTTP2} §Requests: "Timeout → grpc-timeout TimeoutValue TimeoutUnit"',
            grpc_web(GET_USER, u1, headers={"grpc-timeout": "3S"}),
            Expect(200, GrpcWeb(response, "application/grpc-web+proto", (user("u1"),))),
            Reached("GetUser", u1, deadline=(2.0, 3.0 + SLACK)),
        ),
        Case(
            "grpc-web.timeout.units",
            f'{GRPC_HTTP2} §Requests: "TimeoutUnit → Hour / Minute / Second / Millisecond / '
            'Microsecond / Nanosecond": 3,000,000 u is 3 s',
            grpc_web(GET_USER, u1, headers={"grpc-timeout": "3000000u"}),
            Expect(200, GrpcWeb(response, "application/grpc-web+proto", (user("u1"),))),
            Reached("GetUser", u1, deadline=(2.0, 3.0 + SLACK)),
        ),
        Case(
            "grpc-web.timeout.expires",
            f'{GRPC_CODES}: "Deadline expires before server returns status: DEADLINE_EXCEEDED"; '
            "HTTP 200 with the trailers",
            grpc_web(GET_USER, hang, headers={"grpc-timeout": "200m"}),
            Expect(200, GrpcWeb(response, "application/grpc-web+proto", (), frozenset({4}))),
            Reached("GetUser", hang, cancelled=True),
        ),
    ]


def grpc_web_refusal_cases() -> list[Case]:
    """What the gateway refuses of a gRPC-Web request: HTTP 200 with the status in the
    trailers (as gRPC-Web clients read it), and no backend call."""
    u1 = user_pb2.GetUserRequest(id="u1")
    payload = u1.SerializeToString()
    kind = user_pb2.GetUserResponse

    def refused(rule: str, spec: str, body: bytes, codes: frozenset[int], **headers: str) -> Case:
        return Case(
            f"grpc-web.refused.{rule}",
            spec,
            grpc_web(GET_USER, u1, headers=headers, body=body),
            Expect(200, GrpcWeb(kind, "application/grpc-web+proto", (), codes)),
            UNTOUCHED,
        )

    return [
        refused(
            "timeout-not-a-timeout",
            f'{GRPC_HTTP2} §Requests: "TimeoutValue → positive integer as ASCII string of at '
            'most 8 digits", TimeoutUnit one of H M S m u n (grpc-go: INTERNAL)',
            wire.envelope(u1),
            MALFORMED_GRPC,
            **{"grpc-timeout": "soon"},
        ),
        refused(
            "timeout-nine-digits",
            f'{GRPC_HTTP2} §Requests: "at most 8 digits"',
            wire.envelope(u1),
            MALFORMED_GRPC,
            **{"grpc-timeout": "123456789S"},
        ),
        refused(
            "compressed-flag-without-encoding",
            f'{GRPC_HTTP2} §Requests: "If the Message-Encoding header is omitted then the '
            f'Compressed-Flag must be 0"; {GRPC_WEB} §Compression: message compression not '
            "used",
            wire.envelope(wire.gzipped(payload), wire.COMPRESSED),
            MALFORMED_GRPC,
        ),
        refused(
            "truncated-message",
            f"{GRPC_HTTP2} §Requests: Length-Prefixed-Message; fewer bytes than Message-Length",
            wire.prefix(0, 100) + payload,
            MALFORMED_GRPC,
        ),
        refused(
            "truncated-prefix",
            f"{GRPC_HTTP2} §Requests: a Length-Prefixed-Message has a 5-byte prefix",
            wire.envelope(payload)[:2],
            MALFORMED_GRPC,
        ),
        refused(
            "two-messages",
            f'{GRPC_CODES}: "Request cardinality violation (method requires exactly one '
            'request but client sent some other number of requests): UNIMPLEMENTED"',
            wire.envelope(payload) + wire.envelope(payload),
            frozenset({12}) | MALFORMED_GRPC,
        ),
        refused(
            "no-message",
            f'{GRPC_CODES}: "Request cardinality violation": no request at all',
            b"",
            frozenset({12}) | MALFORMED_GRPC,
        ),
        refused(
            "length-over-limit",
            f'{GRPC_CODES}: "Sent or received message was larger than configured limit: '
            f'RESOURCE_EXHAUSTED": a length of 2^31-1, its bytes coming past {LIMIT_BYTES}',
            wire.prefix(0, 2**31 - 1) + payload + b"\0" * LIMIT_BYTES,
            frozenset({8}),
        ),
        refused(
            "length-over-limit-short-body",
            f"{GRPC_CODES}: a length of 2^31-1 over a body that ends soon after: a message "
            "over the limit (RESOURCE_EXHAUSTED) or a truncated one (MALFORMED)",
            wire.prefix(0, 2**31 - 1) + payload,
            frozenset({8}) | MALFORMED_GRPC,
        ),
        refused(
            "too-large",
            f'{GRPC_CODES}: "larger than configured limit: RESOURCE_EXHAUSTED"; {ISSUE}: a '
            f"body over {LIMIT_BYTES} bytes; errors are 200 with the trailers",
            wire.envelope(user_pb2.GetUserRequest(id=NEVER)),
            frozenset({8}),
        ),
        Case(
            "grpc-web.refused.text-not-base64",
            f'{GRPC_WEB} §Text-encoded streams: "The default text encoding is base64"; other '
            "bytes are a malformed request",
            grpc_web(GET_USER, u1, "application/grpc-web-text", body=b"AAAA*not base64*"),
            Expect(200, GrpcWeb(kind, "application/grpc-web-text", (), MALFORMED_GRPC)),
            UNTOUCHED,
        ),
        Case(
            "grpc-web.refused.unknown-method",
            f'{GRPC_CODES}: "Method not found at server: UNIMPLEMENTED"',
            grpc_web(USERS + "NoSuchMethod", u1),
            Expect(200, GrpcWeb(kind, "application/grpc-web+proto", (), frozenset({12}))),
            UNTOUCHED,
        ),
        Case(
            "grpc-web.refused.unknown-codec",
            f'{GRPC_HTTP2} §Requests: "If Content-Type does not begin with application/grpc, '
            f'gRPC servers SHOULD respond with HTTP status of 415"; {ISSUE}: a codec not served '
            "(+thrift) is an unknown Content-Type → 415",
            grpc_web(GET_USER, u1, "application/grpc-web+thrift"),
            Expect(415),
            UNTOUCHED,
        ),
    ]
