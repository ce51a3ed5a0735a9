"""gRPC-Web (github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md), as Envoy's `grpc_web`
filter serves it: `application/grpc-web[+proto|+json]` and `application/grpc-web-text[+proto]`
(the same bytes in base64, both ways), unary and server streaming, one enveloped message in,
enveloped messages out, then the trailers in the body (an envelope flagged 0x80 holding
`grpc-status`, `grpc-message` and the service's trailing metadata as an HTTP/1 header block).

Every call is answered 200; its outcome is in the trailers. An error before any message is
also in the response's headers (a trailers-only response), which clients read first."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final

from google.protobuf.message import Message
from google.rpc import status_pb2

from gateway.body import read_body
from gateway.config import Settings
from gateway.errors import GatewayError, RequestError
from gateway.headers import RequestHeaders
from gateway.metadata import metadata_headers
from gateway.reply import respond
from gateway.rpc._codecs import Codec
from gateway.rpc._envelope import TRAILERS, pack
from gateway.rpc._exchange import enveloped_message
from gateway.rpc._procedures import Procedure
from gateway.rpc._status import grpc_status_headers, trailer_block
from gateway.streams import Writer
from gateway.types import Headers, MetadataPairs, Receive, Send

KIND: Final = "grpc-web"
TYPES: Final = {
    # media type → (encoding, base64 text)
    b"application/grpc-web": ("proto", False),
    b"application/grpc-web+proto": ("proto", False),
    b"application/grpc-web+json": ("json", False),
    b"application/grpc-web-text": ("proto", True),
    b"application/grpc-web-text+proto": ("proto", True),
}
_OK: Final = status_pb2.Status(code=0)
_ENDED_OK: Final = pack(TRAILERS, trailer_block(_OK, ()))
"""The trailers of a call that ended well with no trailing metadata: made once."""
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


class GrpcWeb:
    """One gRPC-Web call, unary or server streaming."""

    __slots__ = ("_type", "codec", "procedure", "text")
    kind = KIND

    def __init__(self, procedure: Procedure, codec: Codec, media_type: bytes, text: bool) -> None:
        self.procedure = procedure
        self.codec = codec
        self.text = text
        self._type = media_type

    def timeout(self, headers: RequestHeaders) -> float | None:
        return None  # `Grpc-Timeout`, read with the metadata

    async def read(
        self, receive: Receive, headers: RequestHeaders, query: bytes, limit: int
    ) -> Any:
        body = await read_body(headers, receive, limit)
        if self.text:
            body = decode_text(body)
        return await enveloped_message(
            self.codec, receive, headers, limit, b"grpc-encoding", body=body
        )

    async def reply(
        self,
        send: Send,
        response: Any,
        initial: MetadataPairs,
        trailing: MetadataPairs,
        headers: RequestHeaders,
    ) -> None:
        ended = pack(TRAILERS, trailer_block(_OK, trailing)) if trailing else _ENDED_OK
        body = pack(0, self.codec.encode(response)) + ended
        if self.text:
            body = base64.b64encode(body)
        out = metadata_headers(initial) if initial else []
        out += [(b"content-type", self._type), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": body})

    def writer(self, headers: RequestHeaders, settings: Settings) -> Writer:
        framing = GrpcWebFraming(self.codec, self._type, self.text, settings.sse_heartbeat_seconds)
        return Writer(None, framing)

    async def fail(self, send: Send, error: GatewayError) -> None:
        await fail(send, error, self._type, self.text)


async def fail(send: Send, error: GatewayError, media_type: bytes, text: bool) -> None:
    """A call's error before its first message: 200, the status in the trailers and, for
    clients that read a trailers-only response, in the headers too."""
    body = pack(TRAILERS, trailer_block(error.status, error.trailing))
    if text:
        body = base64.b64encode(body)
    out = [(b"content-type", media_type), *error.headers, *grpc_status_headers(error.status)]
    await respond(send, 200, body, out)


def decode_text(body: bytes) -> bytes:
    """A grpc-web-text body: base64, possibly several padded runs one after another (each
    write of a client may be encoded on its own), whitespace ignored."""
    compact = b"".join(body.split())
    try:
        if b"=" not in compact[:-2]:
            return base64.b64decode(compact, validate=True)
        runs = [run for run in _BASE64_RUN.findall(compact) if run]
        if sum(map(len, runs)) != len(compact):
            raise binascii.Error("not base64")
        return b"".join(base64.b64decode(run, validate=True) for run in runs)
    except (binascii.Error, ValueError):
        raise RequestError(
            "INVALID_BASE64", "", "a grpc-web-text body must be base64 (RFC 4648, padded)"
        ) from None


class GrpcWebFraming:
    """A gRPC-Web stream's parts: each message enveloped, then the trailers; in base64 for
    grpc-web-text (each part on its own, padded: clients decode run by run)."""

    __slots__ = ("_codec", "_text", "headers", "heartbeat")
    kind = KIND
    preamble = b""
    ping = b""

    def __init__(self, codec: Codec, media_type: bytes, text: bool, heartbeat: float) -> None:
        self._codec = codec
        self._text = text
        self.heartbeat: float | None = heartbeat
        self.headers: tuple[tuple[bytes, bytes], ...] = ((b"content-type", media_type),)

    def message(self, response: Message | bytes, value: object) -> bytes:
        return self._out(pack(0, self._codec.encode(response)))

    def metadata_headers(self, initial: MetadataPairs) -> Headers:
        return metadata_headers(initial)

    def error(self, status: status_pb2.Status, trailing: MetadataPairs) -> bytes:
        return self._out(pack(TRAILERS, trailer_block(status, trailing)))

    def end(self, trailing: MetadataPairs) -> bytes:
        return self._out(pack(TRAILERS, trailer_block(_OK, trailing)) if trailing else _ENDED_OK)

    def _out(self, data: bytes) -> bytes:
        return base64.b64encode(data) if self._text else data
