"""The wire formats of Connect and gRPC-Web, written from their specifications rather than
taken from the gateway: envelopes, base64 as each spec spells it, gzip, the gRPC-Web
trailer block and gRPC's percent-encoding of `grpc-message`."""

from __future__ import annotations

import base64
import gzip
import re
import struct
import urllib.parse
from dataclasses import dataclass

from google.protobuf.message import Message

COMPRESSED = 0x01
"""Envelope flag, both protocols: the message is compressed."""
END_STREAM = 0x02
"""Connect envelope flag: the message is the EndStreamResponse (JSON)."""
TRAILERS = 0x80
"""gRPC-Web frame flag (the most significant bit): the message is the trailer block."""
_PREFIX = struct.Struct(">BI")
_PERCENT_ENCODED = re.compile(r"(?:[\x20-\x24\x26-\x7e]|%[0-9A-Fa-f]{2})*\Z")
"""gRPC's Percent-Encoded: space and VCHAR except `%`, or `%` and two hex digits."""


@dataclass(frozen=True)
class Envelope:
    flags: int
    data: bytes


def envelope(data: bytes | Message, flags: int = 0) -> bytes:
    """One length-prefixed message: a flag byte, a 4-byte big-endian length, the bytes."""
    if isinstance(data, Message):
        data = data.SerializeToString()
    return _PREFIX.pack(flags, len(data)) + data


def prefix(flags: int, length: int) -> bytes:
    """An envelope's prefix alone, promising `length` bytes (that may never come)."""
    return _PREFIX.pack(flags, length)


def envelopes(body: bytes) -> list[Envelope]:
    """Every envelope of `body`, which must hold whole envelopes and nothing else."""
    found = []
    offset = 0
    while offset < len(body):
        assert len(body) - offset >= _PREFIX.size, f"a truncated prefix at {offset}: {body!r}"
        flags, length = _PREFIX.unpack_from(body, offset)
        start = offset + _PREFIX.size
        assert len(body) - start >= length, f"an envelope promised {length} bytes: {body!r}"
        found.append(Envelope(flags, body[start : start + length]))
        offset = start + length
    return found


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def gunzipped(data: bytes) -> bytes:
    assert data[:2] == b"\x1f\x8b", f"not gzip: {data[:16]!r}"
    return gzip.decompress(data)


def b64_unpadded(data: bytes) -> str:
    """Standard base64 without `=`, as Connect's error details and binary metadata carry."""
    return base64.b64encode(data).decode().rstrip("=")


def b64url(data: bytes, padded: bool = False) -> str:
    """URL-safe base64 (RFC 4648 section 5), as a Connect GET's `message` with `base64=1`."""
    text = base64.urlsafe_b64encode(data).decode()
    return text if padded else text.rstrip("=")


def b64_decode_any(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not ("implementations must accept both")."""
    text = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def grpc_web_text_decode(body: bytes) -> bytes:
    """A grpc-web-text body: base64 chunks, each padded, concatenated (PROTOCOL-WEB: padding
    may come at any flush, not only at the end), decoded 4 characters at a time."""
    text = body.decode("ascii")
    assert len(text) % 4 == 0, f"a grpc-web-text body of {len(text)} characters"
    return b"".join(
        base64.b64decode(text[i : i + 4], validate=True) for i in range(0, len(text), 4)
    )


def trailer_block(payload: bytes) -> dict[str, str]:
    """A gRPC-Web trailer frame's payload: `name: value` lines, each ending in CRLF (an
    HTTP/1 header block without the empty line), names in lower case."""
    text = payload.decode("ascii")
    assert text.endswith("\r\n"), f"the trailer block does not end in CRLF: {text!r}"
    trailers: dict[str, str] = {}
    for line in text[:-2].split("\r\n"):
        name, colon, value = line.partition(":")
        assert colon, f"not a header line: {line!r}"
        assert name, f"not a header line: {line!r}"
        assert name == name.lower(), f"a trailer name not in lower case: {name!r}"
        trailers[name] = f"{trailers[name]},{value.strip()}" if name in trailers else value.strip()
    return trailers


def percent_decoded(value: str) -> str:
    """`grpc-message` as sent: it must be gRPC's Percent-Encoded, and UTF-8 once decoded."""
    assert _PERCENT_ENCODED.match(value), f"grpc-message is not percent-encoded: {value!r}"
    return urllib.parse.unquote(value, errors="strict")


def query_json(value: str) -> str:
    """A JSON message as a percent-encoded query value (RFC 3986, as browsers encode)."""
    return urllib.parse.quote(value, safe="")
