"""Which protocol a request to a procedure speaks: GET is Connect's (for methods without side
effects); a POST's content type names Connect unary, a Connect stream or gRPC-Web, each in
JSON or binary. A type the procedure cannot take is 415, with the types it can (`Accept-
Post`); another HTTP method is 405."""

from __future__ import annotations

from typing import Final

from gateway.errors import RequestError, method_not_allowed
from gateway.headers import RequestHeaders
from gateway.rpc import _connect, _grpc_web
from gateway.rpc._codecs import Codec
from gateway.rpc._exchange import Exchange
from gateway.rpc._procedures import Procedure

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
