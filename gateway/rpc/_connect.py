"""The Connect protocol (connectrpc.com/docs/protocol): unary calls over POST (`application/
json` or `application/proto`) and GET (for methods without side effects: the message in the
query, a cacheable response), and server streams (`application/connect+json` or `+proto`:
enveloped messages, then an end-of-stream message holding the error, if any, and the
trailers).

Errors of unary calls are Connect's error JSON with the status of the code; a stream's are in
its end-of-stream message, under a 200. Deadlines come as `Connect-Timeout-Ms`; unary bodies
are compressed with `Content-Encoding` / `Accept-Encoding`, stream messages with
`Connect-Content-Encoding` / `Connect-Accept-Encoding`.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final
from urllib.parse import parse_qsl

import grpc
import orjson
from google.protobuf.message import Message
from google.rpc import status_pb2

from gateway.body import read_body
from gateway.config import Settings
from gateway.errors import GatewayError, RequestError
from gateway.headers import RequestHeaders, invalid_header
from gateway.metadata import metadata_headers
from gateway.reply import respond
from gateway.rpc import _compression
from gateway.rpc._codecs import Codec
from gateway.rpc._envelope import COMPRESSED, END_STREAM, pack
from gateway.rpc._exchange import enveloped_message
from gateway.rpc._procedures import Procedure
from gateway.rpc._status import connect_error, connect_metadata
from gateway.semantics import not_modified
from gateway.streams import Writer
from gateway.types import Headers, MetadataPairs, Receive, Send

KIND: Final = "connect"
UNARY_TYPES: Final = {b"application/json": "json", b"application/proto": "proto"}
STREAM_TYPES: Final = {b"application/connect+json": "json", b"application/connect+proto": "proto"}
_ERROR_TYPE: Final = (b"content-type", b"application/json")
_CONTENT_TYPES: Final = {
    name: (b"content-type", b"application/" + name.encode()) for name in ("json", "proto")
}
_TIMEOUT: Final = re.compile(rb"[0-9]{1,10}\Z")
CACHE_CONTROL: Final = (b"cache-control", b"private, no-cache")
"""A GET's response: kept by the browser, revalidated (its `ETag`) before each use."""
_GET_VARY: Final = (b"vary", b"Accept-Encoding, Authorization")


def connect_timeout(headers: RequestHeaders) -> float | None:
    """`Connect-Timeout-Ms` in seconds (1 to 10 digits), if sent."""
    value = headers.get(b"connect-timeout-ms")
    if value is None:
        return None
    if not _TIMEOUT.match(value):
        raise invalid_header("connect-timeout-ms", "must be 1 to 10 digits (milliseconds)")
    return int(value) / 1000


def check_version(headers: RequestHeaders) -> None:
    version = headers.get(b"connect-protocol-version")
    if version is not None and version.strip() != b"1":
        raise invalid_header("connect-protocol-version", "this server speaks version 1")


class _ConnectCall:
    """What a Connect call of either kind is: its procedure, its codec, its deadline."""

    __slots__ = ("codec", "procedure")
    kind = KIND

    def __init__(self, procedure: Procedure, codec: Codec) -> None:
        self.procedure = procedure
        self.codec = codec

    def timeout(self, headers: RequestHeaders) -> float | None:
        return connect_timeout(headers)


class ConnectUnary(_ConnectCall):
    """A unary call over POST."""

    __slots__ = ()

    async def read(
        self, receive: Receive, headers: RequestHeaders, query: bytes, limit: int
    ) -> Any:
        check_version(headers)
        body = await read_body(headers, receive, limit)
        encoding = headers.get(b"content-encoding")
        if encoding is not None:
            name = encoding.decode("latin-1").strip().lower()
            body = _compression.inflate(body, name, "content-encoding", limit)
        return self.codec.decode(body)

    async def reply(
        self,
        send: Send,
        response: Any,
        initial: MetadataPairs,
        trailing: MetadataPairs,
        headers: RequestHeaders,
    ) -> None:
        out = metadata_headers(initial) if initial else []
        if trailing:
            out += metadata_headers(trailing, b"trailer-")
        await self._send(send, 200, self.codec.encode(response), out, headers)

    async def _send(
        self, send: Send, status: int, body: bytes, out: Headers, headers: RequestHeaders
    ) -> None:
        out.append(_CONTENT_TYPES[self.codec.name])
        if len(body) >= _compression.MIN_BYTES and _compression.accepts_gzip(
            headers.get(b"accept-encoding")
        ):
            body = _compression.deflate(body)
            out.append((b"content-encoding", b"gzip"))
        out.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    def writer(self, headers: RequestHeaders, settings: Settings) -> Writer:
        raise AssertionError("a unary call has no stream")

    async def fail(self, send: Send, error: GatewayError) -> None:
        await fail_unary(send, error)


async def fail_unary(send: Send, error: GatewayError) -> None:
    """A unary call's error: Connect's error JSON, under the HTTP status of its code."""
    out = [_ERROR_TYPE, *error.headers, *metadata_headers(error.trailing, b"trailer-")]
    await respond(send, error.http_status, orjson.dumps(connect_error(error.status)), out)


class ConnectGet(ConnectUnary):
    """A unary call over GET: `?message=…&encoding=json|proto[&base64=1][&compression=gzip]
    [&connect=v1]`; the response is cacheable (`Cache-Control`, `ETag`, 304)."""

    __slots__ = ()

    async def read(
        self, receive: Receive, headers: RequestHeaders, query: bytes, limit: int
    ) -> Any:
        params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
        version = params.get("connect")
        if version is not None and version != "v1":
            raise _bad_query("connect", "this server speaks v1")
        encoding = params.get("encoding")
        if encoding == "json":
            self.codec = self.procedure.json
        elif encoding == "proto":
            self.codec = self.procedure.proto
        else:
            raise RequestError(
                "UNSUPPORTED_MEDIA_TYPE",
                "encoding",
                "encoding: must be json or proto",
                http=415,
                code=grpc.StatusCode.UNIMPLEMENTED,
            )
        text = params.get("message")
        if text is None:
            raise _bad_query("message", "the request message is required")
        if params.get("base64") == "1":
            try:
                data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            except (binascii.Error, ValueError):
                raise _bad_query("message", "base64=1 but the message is not base64url") from None
        else:
            data = text.encode()
        compression = params.get("compression", "").strip().lower()
        return self.codec.decode(_compression.inflate(data, compression, "compression", limit))

    async def reply(
        self,
        send: Send,
        response: Any,
        initial: MetadataPairs,
        trailing: MetadataPairs,
        headers: RequestHeaders,
    ) -> None:
        out = [CACHE_CONTROL, _GET_VARY]
        out += metadata_headers(initial)
        out += metadata_headers(trailing, b"trailer-")
        etag_of = self.procedure.etag_of
        etag = None if etag_of is None else etag_of(self.codec.message(response))
        if etag is not None:
            out.append((b"etag", etag))
            if not_modified(headers, etag):
                await send({"type": "http.response.start", "status": 304, "headers": out})
                await send({"type": "http.response.body", "body": b""})
                return
        await self._send(send, 200, self.codec.encode(response), out, headers)


def _bad_query(name: str, description: str) -> RequestError:
    return RequestError("INVALID_QUERY_PARAMETER", name, f"{name}: {description}")


class ConnectStream(_ConnectCall):
    """A server stream: one enveloped request message in, enveloped messages out."""

    __slots__ = ()

    async def read(
        self, receive: Receive, headers: RequestHeaders, query: bytes, limit: int
    ) -> Any:
        check_version(headers)
        return await enveloped_message(
            self.codec, receive, headers, limit, b"connect-content-encoding"
        )

    async def reply(
        self,
        send: Send,
        response: Any,
        initial: MetadataPairs,
        trailing: MetadataPairs,
        headers: RequestHeaders,
    ) -> None:
        raise AssertionError("a stream is written by its writer")

    def writer(self, headers: RequestHeaders, settings: Settings) -> Writer:
        gzip = _compression.accepts_gzip(headers.get(b"connect-accept-encoding"))
        framing = ConnectFraming(self.codec, gzip, settings.sse_heartbeat_seconds)
        return Writer(None, framing)

    async def fail(self, send: Send, error: GatewayError) -> None:
        await fail_stream(send, error, self.codec.name)


async def fail_stream(send: Send, error: GatewayError, encoding: str) -> None:
    """A stream's error before its first message: 200, and the end-of-stream message."""
    body = pack(END_STREAM, orjson.dumps(end_of_stream(error.status, error.trailing)))
    out = [(b"content-type", b"application/connect+" + encoding.encode()), *error.headers]
    await respond(send, 200, body, out)


def end_of_stream(status: status_pb2.Status | None, trailing: MetadataPairs) -> dict[str, object]:
    """The end-of-stream message: the error (None: the stream ended well) and trailers."""
    message: dict[str, object] = {} if status is None else {"error": connect_error(status)}
    metadata = connect_metadata(trailing)
    if metadata:
        message["metadata"] = metadata
    return message


class ConnectFraming:
    """A Connect stream's parts: each message enveloped (compressed when accepted and worth
    it), then the end-of-stream message. A quiet stream starts after `heartbeat` seconds
    with its headers alone: Connect has no ping."""

    __slots__ = ("_codec", "_gzip", "headers", "heartbeat")
    kind = KIND
    preamble = b""
    ping = b""

    def __init__(self, codec: Codec, gzip: bool, heartbeat: float | None) -> None:
        self._codec = codec
        self._gzip = gzip
        self.heartbeat = heartbeat
        headers = [(b"content-type", b"application/connect+" + codec.name.encode())]
        if gzip:
            headers.append((b"connect-content-encoding", b"gzip"))
        self.headers = tuple(headers)

    def message(self, response: Message | bytes, value: object) -> bytes:
        data = self._codec.encode(response)
        if self._gzip and len(data) >= _compression.MIN_BYTES:
            return pack(COMPRESSED, _compression.deflate(data))
        return pack(0, data)

    def metadata_headers(self, initial: MetadataPairs) -> Headers:
        return metadata_headers(initial)

    def error(self, status: status_pb2.Status, trailing: MetadataPairs) -> bytes:
        return pack(END_STREAM, orjson.dumps(end_of_stream(status, trailing)))

    def end(self, trailing: MetadataPairs) -> bytes:
        return pack(END_STREAM, orjson.dumps(end_of_stream(None, trailing)))
