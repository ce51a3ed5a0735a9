"""A request's header block, read in one pass when the request comes in.

Values are kept as received (bytes) and each is checked where it is used, as before this
block was parsed once: a request with several faults is refused for the one checked first.
Repeated lines of a name stay in order; so do the lines that become metadata, and those
that set request fields, as their readers take them one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final

from gateway.errors import RequestError

_BY_NAME: Final = (
    b"accept",
    b"accept-encoding",
    b"access-control-request-headers",
    b"access-control-request-method",
    b"connect-accept-encoding",
    b"connect-content-encoding",
    b"connect-protocol-version",
    b"connect-timeout-ms",
    b"content-encoding",
    b"content-length",
    b"content-type",
    b"grpc-encoding",
    b"host",
    b"if-none-match",
    b"last-event-id",
    b"origin",
    b"transfer-encoding",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-request-id",
)
"""The headers read by name (`get`, `lines`)."""
METADATA_PREFIX: Final = b"grpc-metadata-"
_READ_BY_NAME, _METADATA, _REQUEST_FIELD = 0, 1, 2
_KINDS: Final = {
    **dict.fromkeys(_BY_NAME, _READ_BY_NAME),
    b"authorization": _METADATA,
    b"grpc-timeout": _METADATA,
    b"if-match": _REQUEST_FIELD,
    b"idempotency-key": _REQUEST_FIELD,
}
_NONE: Final[tuple[tuple[bytes, bytes], ...]] = ()


class RequestHeaders:
    """The headers of one request that the gateway reads."""

    __slots__ = ("_last", "_repeated", "get", "metadata", "request_fields")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        """`raw`: the ASGI scope's headers (lower-case names)."""
        last: dict[bytes, bytes] = {}
        repeated: dict[bytes, list[bytes]] | None = None
        metadata: list[tuple[bytes, bytes]] | None = None
        request_fields: list[tuple[bytes, bytes]] | None = None
        for name, value in raw:
            kind = _KINDS.get(name)
            if kind is None:
                if name.startswith(METADATA_PREFIX):
                    metadata = metadata or []
                    metadata.append((name, value))
            elif kind == _READ_BY_NAME:
                earlier = last.get(name)
                if earlier is not None:  # rare: kept whole for the readers of every line
                    repeated = repeated or {}
                    repeated.setdefault(name, [earlier]).append(value)
                last[name] = value
            elif kind == _METADATA:
                metadata = metadata or []
                metadata.append((name, value))
            else:
                request_fields = request_fields or []
                request_fields.append((name, value))
        self._last = last
        self._repeated = repeated
        self.get: Callable[[bytes], bytes | None] = last.get
        """The last line of a header read by name; None when the request has none."""
        self.metadata: Sequence[tuple[bytes, bytes]] = metadata or _NONE
        """`Grpc-Metadata-*`, `Authorization` and `Grpc-Timeout` lines, in order."""
        self.request_fields: Sequence[tuple[bytes, bytes]] = request_fields or _NONE
        """`If-Match` and `Idempotency-Key` lines, in order."""

    def lines(self, name: bytes) -> Sequence[bytes]:
        """Every line of a header read by name, in order."""
        if self._repeated is not None:
            several = self._repeated.get(name)
            if several is not None:
                return several
        value = self._last.get(name)
        return () if value is None else (value,)

    def joined(self, name: bytes) -> str | None:
        """A header's lines as one value, joined as HTTP says (RFC 9110 5.3)."""
        lines = self.lines(name)
        return b", ".join(lines).decode("latin-1") if lines else None


def invalid_header(header: str, description: str, *, http: int | None = None) -> RequestError:
    """A request header the gateway cannot take: `header` is its name as received."""
    return RequestError("INVALID_HEADER", header, description, http=http)
