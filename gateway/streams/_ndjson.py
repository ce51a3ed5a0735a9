"""Newline-delimited JSON: `{"result": ...}` per message and, when the stream fails after
its first message, a last `{"error": <google.rpc.Status>}` line."""

from __future__ import annotations

from typing import Final

import orjson
from google.protobuf.message import Message
from google.rpc import status_pb2

from gateway.errors import status_dict
from gateway.metadata import response_headers
from gateway.types import Headers, MetadataPairs

CONTENT_TYPE: Final = b"application/x-ndjson"


class Ndjson:
    """Newline-delimited JSON: no preamble, no heartbeats, no ids."""

    __slots__ = ()

    kind = "ndjson"
    headers: tuple[tuple[bytes, bytes], ...] = ((b"content-type", CONTENT_TYPE),)
    preamble = b""
    heartbeat: float | None = None
    ping = b""

    def message(self, response: Message, value: object) -> bytes:
        return orjson.dumps({"result": value}) + b"\n"

    def error(self, status: status_pb2.Status, trailing: MetadataPairs) -> bytes:
        return orjson.dumps({"error": status_dict(status)}) + b"\n"

    def metadata_headers(self, initial: MetadataPairs) -> Headers:
        return response_headers(initial, None)

    def end(self, trailing: MetadataPairs) -> bytes:
        return b""
