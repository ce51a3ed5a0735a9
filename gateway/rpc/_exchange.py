"""What every protocol's exchange does for the gateway (`Exchange`), and the request parts
both protocols read alike: the body's one enveloped message, and its compression."""

from __future__ import annotations

from typing import Any, Protocol

from gateway.body import read_body
from gateway.config import Settings
from gateway.errors import GatewayError, RequestError
from gateway.headers import RequestHeaders
from gateway.rpc import _compression, _envelope
from gateway.rpc._codecs import Codec
from gateway.streams import Writer
from gateway.types import MetadataPairs, Receive, Send


class Exchange(Protocol):
    """One request in one protocol, from its body to its response (or error)."""

    kind: str
    """`connect` or `grpc-web`: the `kind` of open streams."""
    codec: Codec

    def timeout(self, headers: RequestHeaders) -> float | None:
        """The deadline the client set in this protocol's own header (None: none there)."""
        ...

    async def read(
        self, receive: Receive, headers: RequestHeaders, query: bytes, limit: int
    ) -> Any:
        """The request to call the service with (`codec.raw`: its bytes)."""
        ...

    async def reply(
        self,
        send: Send,
        response: Any,
        initial: MetadataPairs,
        trailing: MetadataPairs,
        headers: RequestHeaders,
    ) -> None:
        """A unary call's response, with the service's metadata."""
        ...

    def writer(self, headers: RequestHeaders, settings: Settings) -> Writer:
        """How a server stream's messages, error and end go out."""
        ...

    async def fail(self, send: Send, error: GatewayError) -> None:
        """The error response, when nothing of a response has been sent yet."""
        ...


async def enveloped_message(
    codec: Codec,
    receive: Receive,
    headers: RequestHeaders,
    limit: int,
    encoding_header: bytes,
    body: bytes | None = None,
) -> Any:
    """The request of a body holding one enveloped message (Connect streams, gRPC-Web),
    compressed or not as its flag says, with the encoding `encoding_header` names."""
    if body is None:
        body = await read_body(headers, receive, limit)
    compressed, data = _envelope.unpack_single(body)
    sent = headers.get(encoding_header)
    if sent is None and not compressed:
        return codec.decode(data)
    name = encoding_header.decode()
    encoding = (sent or b"").decode("latin-1").strip().lower()
    if encoding not in _compression.SUPPORTED and encoding:
        raise _compression.unsupported(name, encoding)
    if compressed:
        if encoding in ("", _compression.IDENTITY):
            raise RequestError(
                "INVALID_ENVELOPE",
                name,
                f"the message is flagged compressed but {name} names no compression",
            )
        data = _compression.inflate(data, encoding, name, limit)
    return codec.decode(data)
