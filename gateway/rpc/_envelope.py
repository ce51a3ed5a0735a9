"""The length-prefixed envelope both RPC protocols put a message in: one flags byte, the
length as four big-endian bytes, then the message (gRPC's own framing, which Connect's
streams and gRPC-Web both take)."""

from __future__ import annotations

import struct
from typing import Final

from gateway.errors import RequestError

PREFIX: Final = struct.Struct(">BI")
COMPRESSED: Final = 0x01
"""The message is compressed with the stream's encoding."""
END_STREAM: Final = 0x02
"""Connect: the end-of-stream message (JSON: the error, if any, and the trailers)."""
TRAILERS: Final = 0x80
"""gRPC-Web: the trailers, as an HTTP/1 header block."""


def pack(flags: int, data: bytes) -> bytes:
    return PREFIX.pack(flags, len(data)) + data


def unpack_single(body: bytes) -> tuple[bool, bytes]:
    """The one message of a request body (a server-streaming or unary call sends one):
    whether it is compressed, and its bytes. `RequestError` says what is wrong with it."""
    if len(body) < PREFIX.size:
        raise _invalid(f"the body is {len(body)} bytes, shorter than an envelope's 5-byte prefix")
    flags, length = PREFIX.unpack_from(body)
    if flags & ~COMPRESSED:
        raise _invalid(f"a request message cannot carry the flags 0x{flags:02x}")
    if length != len(body) - PREFIX.size:
        raise _invalid(
            f"the envelope announces {length} bytes but {len(body) - PREFIX.size} follow "
            "(one message per request)"
        )
    return bool(flags & COMPRESSED), body[PREFIX.size :]


def _invalid(description: str) -> RequestError:
    return RequestError("INVALID_ENVELOPE", "", description)
