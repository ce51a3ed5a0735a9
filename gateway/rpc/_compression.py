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


def inflate(data: bytes, encoding: str, header: str, limit: int, accept: bytes) -> bytes:
    """`data` as sent with `encoding` (named by the `header` the client set), inflated;
    `RequestError` for an encoding not supported (UNIMPLEMENTED, as both protocols ask, with
    what is supported in the `accept` header), data that is not what it says, or more than
    `limit` bytes once inflated (413). Several gzip members one after another are one
    stream (RFC 1952), as Go's reader takes them."""
    if encoding in ("", IDENTITY) or not data:
        return data  # zero-length content is never decompressed (Connect's rule)
    if encoding != GZIP:
        raise unsupported(header, encoding, accept)
    parts: list[bytes] = []
    size = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as error:
            raise RequestError("INVALID_COMPRESSION", header, f"not gzip data: {error}") from None
        size += len(out)
        if size > limit or inflater.unconsumed_tail:
            raise too_large(limit)
        if not inflater.eof:
            raise RequestError("INVALID_COMPRESSION", header, "the gzip data is truncated")
        parts.append(out)
        rest = inflater.unused_data
    return parts[0] if len(parts) == 1 else b"".join(parts)


def deflate(data: bytes) -> bytes:
    """gzip, with no name or time in its header (the same message compresses the same)."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def accepts_gzip(header: bytes | None) -> bool:
    """Whether an `Accept-Encoding`-style list accepts gzip (RFC 9110 12.5.3): named, or by
    `*` when not named; `q=0` refuses."""
    if not header:
        return False
    wildcard: bool | None = None
    for item in header.lower().split(b","):
        name, _, params = item.partition(b";")
        name = name.strip()
        if name not in (b"gzip", b"*"):
            continue
        accepted = _quality(params) > 0
        if name == b"gzip":
            return accepted
        wildcard = accepted
    return bool(wildcard)


def _quality(params: bytes) -> float:
    for param in params.split(b";"):
        key, _, value = param.partition(b"=")
        if key.strip() == b"q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def unsupported(header: str, encoding: str, accept: bytes) -> RequestError:
    """An encoding the gateway does not take: UNIMPLEMENTED, and what it takes in the
    protocol's `accept` header (`Accept-Encoding`, `Connect-Accept-Encoding`,
    `Grpc-Accept-Encoding`)."""
    return RequestError(
        "UNSUPPORTED_ENCODING",
        header,
        f"{encoding[:40]!r} is not supported; the gateway takes {ACCEPTED.decode()}",
        code=grpc.StatusCode.UNIMPLEMENTED,
        headers=[(accept, ACCEPTED)],
    )
