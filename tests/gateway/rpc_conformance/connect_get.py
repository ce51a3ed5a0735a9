"""Connect unary GET (side-effect-free methods): the query forms, caching, refusals."""

from __future__ import annotations

from shop.user.v1 import user_pb2
from tests.gateway.conftest import SLACK
from tests.gateway.rpc_conformance import wire
from tests.gateway.rpc_conformance.expect import (
    UNTOUCHED,
    ConnectError,
    ConnectMessage,
    Empty,
    Expect,
    Reached,
)
from tests.gateway.rpc_conformance.table import (
    BIG_ID,
    CONNECT,
    CREATE_USER,
    GET_USER,
    ISSUE,
    NOT_FOUND_DETAILS,
    WATCH_USERS,
    Case,
    as_json,
    connect_get,
    error,
    error_or_nothing,
    json_query,
    user,
)


def connect_get_cases() -> list[Case]:
    u1 = user_pb2.GetUserRequest(id="u1")
    u1_proto = u1.SerializeToString()  # 4 bytes: padded base64
    url_safe = user_pb2.GetUserRequest(id="?~~?")  # its base64 has `_` and `-`
    tagged = user_pb2.GetUserRequest(id="etag-v7")
    return [
        Case(
            "connect.get.json",
            f"{CONNECT} §Unary-Get-Request: GET Path ?connect=v1&encoding=json&message=<percent-"
            f"encoded JSON>; {ISSUE}: with cache headers (Cache-Control, Vary)",
            connect_get(GET_USER, json_query(u1)),
            Expect(200, ConnectMessage(user("u1")), present=("cache-control", "vary")),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.get.proto-base64",
            f'{CONNECT} §Unary-Get-Request: "If Base64-Query is specified, the raw binary octets '
            'will be encoded with the RFC 4648 §5 URL-safe base64"',
            connect_get(
                GET_USER, f"connect=v1&encoding=proto&base64=1&message={wire.b64url(u1_proto)}"
            ),
            Expect(200, ConnectMessage(user("u1"), codec="proto")),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.get.base64-url-alphabet",
            f'{CONNECT} §Unary-Get-Request: "the RFC 4648 §5 URL-safe base64" (`-` and `_`, '
            "not `+` and `/`)",
            connect_get(
                GET_USER,
                "connect=v1&encoding=proto&base64=1&message="
                + wire.b64url(url_safe.SerializeToString()),
            ),
            Expect(200, ConnectMessage(user("?~~?"), codec="proto")),
            Reached("GetUser", url_safe),
        ),
        Case(
            "connect.get.base64-padded",
            f'{CONNECT} §Unary-Get-Request: "the base64-encoded message may contain padding '
            'characters, but these characters must be percent-encoded"',
            connect_get(
                GET_USER,
                "connect=v1&encoding=proto&base64=1&message="
                + wire.b64url(u1_proto, padded=True).replace("=", "%3D"),
            ),
            Expect(200, ConnectMessage(user("u1"), codec="proto")),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.get.json-base64",
            f'{CONNECT} §Unary-Get-Request: "If Base64-Query is specified, the raw binary octets '
            'will be encoded with … URL-safe base64", whatever the codec (json here)',
            connect_get(
                GET_USER, f"connect=v1&encoding=json&base64=1&message={wire.b64url(as_json(u1))}"
            ),
            Expect(200, ConnectMessage(user("u1"))),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.get.base64-other-value-ignored",
            f'{CONNECT} §Unary-Get-Request: "Other values for the base64 parameter will simply '
            'be ignored": base64=0 and a percent-encoded JSON message',
            connect_get(GET_USER, json_query(u1) + "&base64=0"),
            Expect(200, ConnectMessage(user("u1"))),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.get.empty-message-not-decompressed",
            f'{CONNECT} §Unary-Get-Request: "Servers must not attempt to decompress zero-length '
            'Message-Query" (the empty proto message)',
            connect_get(GET_USER, "connect=v1&encoding=proto&base64=1&compression=gzip&message="),
            Expect(200, ConnectMessage(user(""), codec="proto")),
            Reached("GetUser", user_pb2.GetUserRequest()),
        ),
        Case(
            "connect.get.compressed",
            f'{CONNECT} §Unary-Get-Request: "&compression=" Content-Coding; "requests with any '
            'compression other than identity … should use base64 encoding"',
            connect_get(
                GET_USER,
                "connect=v1&encoding=json&base64=1&compression=gzip&message="
                + wire.b64url(wire.gzipped(as_json(u1))),
            ),
            Expect(200, ConnectMessage(user("u1"))),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.get.any-order-unknown-params",
            f'{CONNECT} §Unary-Get-Request: "Servers must accept query parameters in any order '
            'and allow unknown query parameters alongside the Connect query parameters"',
            connect_get(
                GET_USER,
                f"message={wire.query_json(as_json(u1).decode())}&x-cache-buster=1"
                "&encoding=json&connect=v1",
            ),
            Expect(200, ConnectMessage(user("u1"))),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.get.connect-param-optional",
            f'{CONNECT} §Unary-Get-Request: "[Connect-Version-Query]" is optional',
            connect_get(GET_USER, f"encoding=json&message={wire.query_json(as_json(u1).decode())}"),
            Expect(200, ConnectMessage(user("u1"))),
            Reached("GetUser", u1),
        ),
        Case(
            "connect.get.connect-param-invalid",
            f'{CONNECT} §Unary-Get-Request: "Connect-Version-Query → &connect=v1" (connect-go: '
            "another value is invalid_argument)",
            connect_get(GET_USER, json_query(u1).replace("connect=v1", "connect=v2")),
            Expect(400, error("invalid_argument")),
            UNTOUCHED,
        ),
        Case(
            "connect.get.missing-message",
            f"{CONNECT} §Unary-Get-Request: Query-Get ends with the mandatory Message-Query "
            '(connect-go: invalid_argument "missing message parameter")',
            connect_get(GET_USER, "connect=v1&encoding=json"),
            Expect(400, error("invalid_argument")),
            UNTOUCHED,
        ),
        Case(
            "connect.get.unknown-encoding",
            f"{CONNECT} §Unary-Get-Request: \"If the server doesn't support the specified "
            'Message-Codec, it must respond with an HTTP status code of 415"',
            connect_get(GET_USER, "connect=v1&encoding=xml&message=%3Cid%3E"),
            Expect(415),
            UNTOUCHED,
        ),
        Case(
            "connect.get.unsupported-compression",
            f'{CONNECT} §Unary-Get-Request: "If the client uses an unsupported Compression-Query '
            "value, servers should return an error with code unimplemented and a message "
            'listing the supported encodings"',
            connect_get(
                GET_USER,
                "connect=v1&encoding=json&base64=1&compression=br&message="
                + wire.b64url(as_json(u1)),
            ),
            Expect(501, error("unimplemented", mentions="gzip")),
            UNTOUCHED,
        ),
        Case(
            "connect.get.side-effects",
            f'{CONNECT} §Summary: GET only for RPCs "annotated as such with the '
            f'IdempotencyLevel option" (NO_SIDE_EFFECTS); {ISSUE}: else 405 (Allow: POST); '
            '§Unary-Response: the body "either omitted or a JSON-serialized Error"',
            connect_get(CREATE_USER, json_query(user_pb2.CreateUserRequest())),
            Expect(405, error_or_nothing("unimplemented"), lists={"allow": ("POST",)}),
            UNTOUCHED,
        ),
        Case(
            "connect.get.streaming-method",
            f"{CONNECT} §Unary-Get-Request: a variant of the unary request; a streaming method "
            "(WatchUsers, though NO_SIDE_EFFECTS) is POST only",
            connect_get(WATCH_USERS, json_query(user_pb2.WatchUsersRequest(start_revision=1))),
            Expect(405, error_or_nothing("unimplemented"), lists={"allow": ("POST",)}),
            UNTOUCHED,
        ),
        Case(
            "connect.get.etag",
            f'{CONNECT} §Unary-Get-Request: "designed to be easy to cache in browsers, proxies, '
            f'and CDNs"; {ISSUE}: ETag where the resource has one',
            connect_get(GET_USER, json_query(tagged)),
            Expect(
                200,
                ConnectMessage(
                    user_pb2.GetUserResponse(
                        user=user_pb2.User(id="etag-v7", email="etag-v7@example.com", etag="v7")
                    )
                ),
                headers={"etag": '"v7"'},
                present=("cache-control", "vary"),
            ),
            Reached("GetUser", tagged),
        ),
        Case(
            "connect.get.not-modified",
            f"{ISSUE}: 304 on If-None-Match (RFC 9110 §13.1.2)",
            connect_get(GET_USER, json_query(tagged), headers={"If-None-Match": '"v7"'}),
            Expect(304, Empty(), headers={"etag": '"v7"'}),
            Reached("GetUser", tagged),
        ),
        Case(
            "connect.get.gzip-response",
            f'{CONNECT} §Unary-Get-Request: "[Accept-Encoding]" header; the response '
            "compressed as asked",
            connect_get(
                GET_USER,
                json_query(user_pb2.GetUserRequest(id=BIG_ID)),
                headers={"Accept-Encoding": "gzip"},
            ),
            Expect(200, ConnectMessage(user(BIG_ID), gzip=True)),
        ),
        Case(
            "connect.get.timeout-header",
            f'{CONNECT} §Unary-Get-Request: "timeouts, if specified, remain specified using '
            'HTTP headers rather than query parameters"',
            connect_get(GET_USER, json_query(u1), headers={"Connect-Timeout-Ms": "3000"}),
            Expect(200, ConnectMessage(user("u1"))),
            Reached("GetUser", u1, deadline=(2.0, 3.0 + SLACK)),
        ),
        Case(
            "connect.get.error",
            f"{CONNECT} §Unary-Response: errors of a GET as of a POST: HTTP status of the code, "
            "the Error as JSON",
            connect_get(GET_USER, json_query(user_pb2.GetUserRequest(id="code-5"))),
            Expect(
                404,
                ConnectError(
                    frozenset({"not_found"}), "failed with NOT_FOUND", details=NOT_FOUND_DETAILS
                ),
            ),
        ),
    ]
