"""What a stream's format is made of: the interface each framing implements (NDJSON in
`_ndjson`, Server-Sent Events in `_sse`), and the writer a request gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import Message

from gateway.codec import ResponseEncoder


class Framing(Protocol):
    """How one format puts a stream's parts on the wire."""

    headers: tuple[tuple[bytes, bytes], ...]
    """Response headers, content-type first."""
    kind: str
    """The format's short name (`ndjson`, `sse`): the `kind` label of open streams."""
    preamble: bytes
    """Sent once, right after the status line."""
    heartbeat: float | None
    """Seconds of silence after which `ping` is sent (None: never)."""
    ping: bytes

    def message(self, response: Message, value: object) -> bytes:
        """One response; `value` is its proto3 JSON (after `response_body`)."""
        ...

    def error(self, status: dict[str, object]) -> bytes:
        """The error that ends the stream, as a google.rpc.Status in JSON."""
        ...


@dataclass(frozen=True, slots=True)
class Writer:
    """How one stream's messages go out (chosen per request by `writer_for`)."""

    encoder: ResponseEncoder
    framing: Framing
