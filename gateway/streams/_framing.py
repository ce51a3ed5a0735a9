"""What a stream's format is made of: the interface each framing implements (NDJSON in
`_ndjson`, Server-Sent Events in `_sse`, the RPC protocols' envelopes in `gateway.rpc`), and
the writer a request gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import Message
from google.rpc import status_pb2

from gateway.codec import ResponseEncoder
from gateway.types import MetadataPairs


class Framing(Protocol):
    """How one format puts a stream's parts on the wire."""

    headers: tuple[tuple[bytes, bytes], ...]
    """Response headers, content-type first."""
    kind: str
    """The format's short name (`ndjson`, `sse`, `connect`, `grpc-web`): the `kind` label
    of open streams."""
    preamble: bytes
    """Sent once, right after the status line."""
    heartbeat: float | None
    """Seconds of silence after which `ping` is sent (None: never)."""
    ping: bytes

    def message(self, response: Message, value: object) -> bytes:
        """One response; `value` is its proto3 JSON (after `response_body`), or None when
        the writer has no encoder (the framing encodes `response` itself: it may be the
        message's bytes, as the backend sent them)."""
        ...

    def error(self, status: status_pb2.Status, trailing: MetadataPairs) -> bytes:
        """The error that ends the stream, with the backend's trailing metadata."""
        ...

    def metadata_headers(self, initial: MetadataPairs) -> list[tuple[bytes, bytes]]:
        """The backend's initial metadata as response headers."""
        ...

    def end(self, trailing: MetadataPairs) -> bytes:
        """What ends a stream that ended well (may be empty)."""
        ...


@dataclass(frozen=True, slots=True)
class Writer:
    """How one stream's messages go out (chosen per request by `writer_for`)."""

    encoder: ResponseEncoder | None
    """None: `framing.message` is given the response alone."""
    framing: Framing
