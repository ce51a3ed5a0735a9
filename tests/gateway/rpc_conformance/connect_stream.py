"""Connect server streaming: envelopes, the EndStreamResponse, compression, deadlines, and
malformed request envelopes."""

from __future__ import annotations

from google.rpc import error_details_pb2

from shop.user.v1 import user_pb2
from shop_common.domain import ERROR_DOMAIN
from tests.gateway.rpc_conformance import wire
from tests.gateway.rpc_conformance.expect import (
    UNTOUCHED,
    ConnectError,
    ConnectStream,
    Expect,
    Reached,
)
from tests.gateway.rpc_conformance.table import (
    BROWSER_ENCODINGS,
    CARDINALITY,
    CONNECT,
    GRPC_CODES,
    ISSUE,
    LIMIT_BYTES,
    MALFORMED,
    WATCH_USERS,
    Case,
    as_json,
    connect_stream,
    error,
    watched,
)


def connect_stream_cases() -> list[Case]:
    full = user_pb2.WatchUsersRequest(start_revision=1, prev_user=True)
    failing = user_pb2.WatchUsersRequest(start_revision=10)
    ok_end = {"x-trailer": ("done",)}
    watch = user_pb2.WatchUsersResponse
    return [
        Case(
            "connect.stream.json",
            f"{CONNECT} §Streaming-Response: 200, application/connect+json, each message an "
            'Enveloped-Message, the last an EndStreamResponse (flag 2): "After a successful RPC, '
            'EndStreamResponse can be as simple as {}", trailing metadata in "metadata"',
            connect_stream(WATCH_USERS, full),
            Expect(
                200,
                ConnectStream(watch, watched(1, prev_user=True), metadata=ok_end),
                headers={"x-served-by": "fake"},
            ),
            Reached("WatchUsers", full),
        ),
        Case(
            "connect.stream.proto",
            f"{CONNECT} §Streaming-Request: application/connect+proto, binary messages in "
            "envelopes",
            connect_stream(WATCH_USERS, full, codec="proto"),
            Expect(
                200,
                ConnectStream(watch, watched(1, prev_user=True), codec="proto", metadata=ok_end),
            ),
            Reached("WatchUsers", full),
        ),
        Case(
            "connect.stream.error-after-messages",
            f'{CONNECT} §Streaming-Response: "Streaming responses always have an HTTP status of '
            '200 OK", the error in the EndStreamResponse after the messages sent',
            connect_stream(WATCH_USERS, failing),
            Expect(
                200,
                ConnectStream(
                    watch,
                    watched(10),
                    error=ConnectError(
                        frozenset({"aborted"}),
                        "compacted",
                        details=(
                            error_details_pb2.ErrorInfo(reason="COMPACTED", domain=ERROR_DOMAIN),
                        ),
                    ),
                ),
            ),
        ),
        Case(
            "connect.stream.error-first-proto",
            f'{CONNECT} §Streaming-Response: a failed server stream is 200 and only "<flags: '
            '2>{"error": …}"',
            connect_stream(
                WATCH_USERS, user_pb2.WatchUsersRequest(start_revision=0), codec="proto"
            ),
            Expect(
                200,
                ConnectStream(
                    watch, (), codec="proto", error=error("unimplemented", message="not yet")
                ),
            ),
        ),
        Case(
            "connect.stream.error-first-json",
            f'{CONNECT} §Error and EndStreamResponse: "Failed RPCs must provide an Error in the '
            'error property"; in connect+json too',
            connect_stream(WATCH_USERS, user_pb2.WatchUsersRequest(start_revision=0)),
            Expect(200, ConnectStream(watch, (), error=error("unimplemented", message="not yet"))),
        ),
        Case(
            "connect.stream.compressed-request",
            f'{CONNECT} §Streaming-Request: "If the least significant bit is 1, the Message is '
            'compressed using the algorithm specified in Streaming-Content-Encoding"',
            connect_stream(
                WATCH_USERS,
                full,
                headers={"Connect-Content-Encoding": "gzip"},
                body=wire.envelope(wire.gzipped(as_json(full)), wire.COMPRESSED),
            ),
            Expect(200, ConnectStream(watch, watched(1, prev_user=True), metadata=ok_end)),
            Reached("WatchUsers", full),
        ),
        Case(
            "connect.stream.encoding-named-flag-clear",
            f'{CONNECT} §Streaming-Request: "If the least significant bit is 1, the Message is '
            'compressed": with the bit 0 it is not, whatever Connect-Content-Encoding names',
            connect_stream(WATCH_USERS, full, headers={"Connect-Content-Encoding": "gzip"}),
            Expect(200, ConnectStream(watch, watched(1, prev_user=True), metadata=ok_end)),
            Reached("WatchUsers", full),
        ),
        Case(
            "connect.stream.compressed-response",
            f"{CONNECT} §Streaming-Response: [Streaming-Content-Encoding]; with "
            f"Connect-Accept-Encoding: gzip, large messages (4 KB) come compressed (flag 1); "
            f"{ISSUE}",
            connect_stream(WATCH_USERS, full, headers={"Connect-Accept-Encoding": "gzip"}),
            Expect(
                200,
                ConnectStream(watch, watched(1, prev_user=True), metadata=ok_end, compressed=True),
                headers={"connect-content-encoding": "gzip"},
            ),
        ),
        Case(
            "connect.stream.browser-accept-encoding",
            f"{CONNECT} §Streaming-Response: Streaming-Response-Headers hold "
            "[Streaming-Content-Encoding], no Content-Encoding: a browser's Accept-Encoding "
            "does not compress the stream's body",
            connect_stream(WATCH_USERS, full, headers={"Accept-Encoding": BROWSER_ENCODINGS}),
            Expect(200, ConnectStream(watch, watched(1, prev_user=True), metadata=ok_end)),
        ),
        Case(
            "connect.stream.identity-unless-asked",
            f'{CONNECT} §Streaming-Request: "same inference … rules as Content-Encoding and '
            'Accept-Encoding": nothing asked, nothing compressed',
            connect_stream(WATCH_USERS, full),
            Expect(200, ConnectStream(watch, watched(1, prev_user=True), compressed=False)),
        ),
        Case(
            "connect.stream.unsupported-encoding",
            f'{CONNECT} §Streaming-Request: "Servers must interpret Streaming-Content-Encoding '
            '… using the same inference and error-reporting rules": unimplemented, listing the '
            "supported ones; in the EndStreamResponse (HTTP 200)",
            connect_stream(
                WATCH_USERS,
                full,
                headers={"Connect-Content-Encoding": "br"},
                body=wire.envelope(b"\x8b\x00\x80", wire.COMPRESSED),
            ),
            Expect(200, ConnectStream(watch, (), error=error("unimplemented", mentions="gzip"))),
            UNTOUCHED,
        ),
        Case(
            "connect.stream.deadline",
            f"{CONNECT} §Streaming-Request: [Timeout]; a stream cut by its deadline ends with "
            "deadline_exceeded in the EndStreamResponse",
            connect_stream(
                WATCH_USERS,
                user_pb2.WatchUsersRequest(start_revision=1, progress_notify=True),
                headers={"Connect-Timeout-Ms": "300"},
            ),
            Expect(200, ConnectStream(watch, None, error=error("deadline_exceeded"))),
            Reached("WatchUsers", cancelled=True),
        ),
        Case(
            "connect.stream.timeout-invalid",
            f'{CONNECT} §Streaming-Request: [Timeout] of "at most 10 digits"; the error in the '
            "EndStreamResponse (HTTP 200)",
            connect_stream(WATCH_USERS, full, headers={"Connect-Timeout-Ms": "soon"}),
            Expect(200, ConnectStream(watch, (), error=error("invalid_argument"))),
            UNTOUCHED,
        ),
        Case(
            "connect.stream.protocol-version-invalid",
            f'{CONNECT} §Streaming-Request: Connect-Protocol-Version "1"; the error in the '
            "EndStreamResponse (HTTP 200)",
            connect_stream(WATCH_USERS, full, headers={"Connect-Protocol-Version": "2"}),
            Expect(200, ConnectStream(watch, (), error=error("invalid_argument"))),
            UNTOUCHED,
        ),
    ]


def connect_envelope_cases() -> list[Case]:
    """Malformed request envelopes: each a clear error in the EndStreamResponse (Connect
    streaming responses are always 200), and no backend call."""
    full = user_pb2.WatchUsersRequest(start_revision=1, prev_user=True)
    payload = as_json(full)
    watch = user_pb2.WatchUsersResponse

    def refused(rule: str, spec: str, body: bytes, *codes: str, **headers: str) -> Case:
        return Case(
            f"connect.envelope.{rule}",
            spec,
            connect_stream(WATCH_USERS, full, headers=headers, body=body),
            Expect(200, ConnectStream(watch, (), error=error(*codes))),
            UNTOUCHED,
        )

    return [
        refused(
            "compressed-flag-without-encoding",
            f'{CONNECT} §Streaming-Request: "If Streaming-Content-Encoding is omitted or '
            'identity, this bit must be 0"',
            wire.envelope(wire.gzipped(payload), wire.COMPRESSED),
            *MALFORMED,
        ),
        refused(
            "truncated-message",
            f"{CONNECT} §Streaming-Request: Message-Length is the length of Message; fewer "
            "bytes than promised",
            wire.prefix(0, len(payload)) + payload[:5],
            *MALFORMED,
        ),
        refused(
            "truncated-prefix",
            f"{CONNECT} §Streaming-Request: an Enveloped-Message starts with 5 bytes of flags "
            "and length; 3 bytes are not one",
            wire.envelope(payload)[:3],
            *MALFORMED,
        ),
        refused(
            "length-mismatch",
            f"{CONNECT} §Streaming-Request: the body is whole envelopes; bytes after the one "
            "the length announces are not",
            wire.prefix(0, len(payload) - 4) + payload,
            *CARDINALITY,
        ),
        refused(
            "two-messages",
            f'{GRPC_CODES}: "Request cardinality violation … UNIMPLEMENTED": a server stream '
            "takes one request",
            wire.envelope(payload) + wire.envelope(payload),
            *CARDINALITY,
        ),
        refused(
            "no-message",
            f'{GRPC_CODES}: "Request cardinality violation": no request message',
            b"",
            *CARDINALITY,
        ),
        refused(
            "end-stream-flag-in-request",
            f'{CONNECT} §Streaming-Request: the end-of-stream bit: "Request streams must always '
            'leave this bit unset"',
            wire.envelope(payload, wire.END_STREAM),
            *MALFORMED,
        ),
        refused(
            "length-over-limit",
            f'{GRPC_CODES}: "Sent or received message was larger than configured limit: '
            f'RESOURCE_EXHAUSTED": a length of 2^31-1, its bytes coming past {LIMIT_BYTES}',
            wire.prefix(0, 2**31 - 1) + payload + b" " * LIMIT_BYTES,
            "resource_exhausted",
        ),
        refused(
            "length-over-limit-short-body",
            f"{GRPC_CODES}: a length of 2^31-1 over a body that ends soon after: a message "
            "over the limit (connect-go: resource_exhausted) or a truncated one (MALFORMED)",
            wire.prefix(0, 2**31 - 1) + payload,
            "resource_exhausted",
            *MALFORMED,
        ),
        refused(
            "too-large",
            f'{ISSUE}: a body over the limit; {CONNECT} §Streaming-Response: "Streaming '
            'responses always have an HTTP status of 200 OK": resource_exhausted at the end',
            wire.envelope(as_json(user_pb2.WatchUsersRequest(start_revision=1)) + b" " * 2000),
            "resource_exhausted",
        ),
    ]
