"""Which protocol a request to a procedure speaks: GET is Connect's (for methods without side
effects); a POST's content type names Connect unary, a Connect stream or gRPC-Web, each in
JSON or binary. A type the procedure cannot take is 415, with the types it can (`Accept-
Post`); another HTTP method is 405."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Final

import grpc

from gateway.errors import GatewayError, RequestError, method_not_allowed
from gateway.headers import RequestHeaders
from gateway.rpc import _connect, _grpc_web
from gateway.rpc._codecs import Codec
from gateway.rpc._exchange import Exchange
from gateway.rpc._procedures import Procedure
from gateway.types import Send

Fail = Callable[[Send, GatewayError], Awaitable[None]]
_PROCEDURE_PATH: Final = re.compile(r"/[^/]+\.[^/.]+/[^/]+\Z")
"""`/package.Service/Method`: a path in the RPC protocols' shape (a REST path's first
segment, `v1`, has no dot)."""

_UNARY_TYPES: Final = b", ".join([*_connect.UNARY_TYPES, *_grpc_web.TYPES])
_STREAM_TYPES: Final = b", ".join([*_connect.STREAM_TYPES, *_grpc_web.TYPES])


def exchange_for(method: str, procedure: Procedure, headers: RequestHeaders) -> Exchange:
    """The exchange that serves this request; `RequestError` (405, 415) when none can."""
    if method not in procedure.http_methods:
        raise method_not_allowed(method, procedure.path, procedure.http_methods)
    if method == "GET":
        return _connect.ConnectGet(procedure, procedure.json)
    media = (headers.get(b"content-type") or b"").partition(b";")[0].strip().lower()
    web = _grpc_web.TYPES.get(media)
    if web is not None:
        encoding, text = web
        codec = procedure.json if encoding == "json" else procedure.proto
        return _grpc_web.GrpcWeb(procedure, codec, media, text)
    if procedure.server_streaming:
        streamed = _connect.STREAM_TYPES.get(media)
        if streamed is not None:
            return _connect.ConnectStream(procedure, _codec(procedure, streamed))
    else:
        unary = _connect.UNARY_TYPES.get(media)
        if unary is not None:
            return _connect.ConnectUnary(procedure, _codec(procedure, unary))
    supported = _STREAM_TYPES if procedure.server_streaming else _UNARY_TYPES
    raise RequestError(
        "UNSUPPORTED_MEDIA_TYPE",
        "content-type",
        f"{procedure.path} takes {supported.decode()}",
        http=415,
        headers=[(b"accept-post", supported)],
    )


def _codec(procedure: Procedure, encoding: str) -> Codec:
    return procedure.json if encoding == "json" else procedure.proto


def unknown_procedure(path: str) -> RequestError | None:
    """The error for a path in a procedure's shape that no served method has (as gRPC says
    of an unknown method: UNIMPLEMENTED), None for another path."""
    if not _PROCEDURE_PATH.match(path):
        return None
    return RequestError(
        "UNKNOWN_PROCEDURE",
        None,
        f"no method {path[1:]} is served here",
        code=grpc.StatusCode.UNIMPLEMENTED,
        http=404,
        metadata={"path": path},
    )


def refusal_form(
    method: str, path: str, headers: RequestHeaders, error: GatewayError
) -> Fail | None:
    """How to write `error` to a request in an RPC protocol's shape that no exchange took
    (no such procedure, or not this way): the protocol its content type (or a GET) names;
    None for a request that speaks none, and for a 415 (a content type the procedure cannot
    take is refused by HTTP, whatever the protocol), answered as REST answers."""
    if error.http_status == 415 or not _PROCEDURE_PATH.match(path):
        return None
    if method == "GET":
        return _connect.fail_unary
    media = (headers.get(b"content-type") or b"").partition(b";")[0].strip().lower()
    web = _grpc_web.TYPES.get(media)
    if web is not None:
        return functools.partial(_grpc_web.fail, media_type=media, text=web[1])
    streamed = _connect.STREAM_TYPES.get(media)
    if streamed is not None:
        return functools.partial(_connect.fail_stream, encoding=streamed)
    if media in _connect.UNARY_TYPES:
        return _connect.fail_unary
    return None
