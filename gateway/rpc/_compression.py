"""Message compression both ways: gzip, or none (`identity`). What a client sends is
inflated under the body limit (a small bomb cannot become a large message); what it accepts
is compressed only when worth it (`MIN_BYTES`)."""

from __future__ import annotations

import zlib
from typing import Final

import grpc

from gateway.body import too_large
from gateway.errors import RequestError

GZIP: Final = "gzip"
IDENTITY: Final = "identity"
SUPPORTED: Final = (GZIP, IDENTITY)
ACCEPTED: Final = b"gzip, identity"
"""What the gateway accepts, as `Accept-Encoding` (and its protocol variants) say it."""
MIN_BYTES: Final = 1024
"""Smaller messages go out uncompressed: gzip's header and CPU buy nothing on them."""
LEVEL: Final = 6


def inflate(data: bytes, encoding: str, header: str, limit: int) -> bytes:
    """`data` as sent with `encoding` (named by the `header` the client set), inflated;
    `RequestError` for an encoding not supported (UNIMPLEMENTED, as both protocols ask),
    data that is not what it says, or more than `limit` bytes once inflated (413)."""
    if encoding in ("", IDENTITY) or not data:
        return data  # zero-length content is never decompressed (Connect's rule)
    if encoding != GZIP:
        raise unsupported(header, encoding)
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as error:
        raise RequestError("INVALID_COMPRESSION", header, f"not gzip data: {error}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise too_large(limit)
    if not inflater.eof:
        raise RequestError("INVALID_COMPRESSION", header, "the gzip data is truncated")
    return out


def deflate(data: bytes) -> bytes:
    """gzip, with no name or time in its header (the same message compresses the same)."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def accepts_gzip(header: bytes | None) -> bool:
    """Whether an `Accept-Encoding`-style list accepts gzip (RFC 9110 12.5.3: `q=0` refuses)."""
    if not header or b"gzip" not in header.lower():
        return False
    for item in header.lower().split(b","):
        name, _, params = item.partition(b";")
        if name.strip() in (b"gzip", b"*"):
            quality = params.strip().removeprefix(b"q=").strip() if params else b"1"
            return quality not in (b"0", b"0.", b"0.0", b"0.00", b"0.000")
    return False


def unsupported(header: str, encoding: str) -> RequestError:
    return RequestError(
        "UNSUPPORTED_ENCODING",
        header,
        f"{encoding[:40]!r} is not supported; the gateway takes {ACCEPTED.decode()}",
        code=grpc.StatusCode.UNIMPLEMENTED,
        headers=[(b"accept-encoding", ACCEPTED)],
    )
