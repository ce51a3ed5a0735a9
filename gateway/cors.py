"""Cross-origin requests from browsers (the Fetch standard's CORS protocol).

A preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin is
answered 204 with the methods the path really has; any other request from an allowed
origin gets `Access-Control-Allow-Origin` and the response headers a page may read.
Requests from other origins are served as usual, without those headers, so the browser
keeps the response from the page.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from gateway.errors import RequestError
from gateway.types import Headers

MAX_AGE_SECONDS = 600
EXPOSED = b"etag, location, x-request-id, allow, www-authenticate, retry-after"
"""Response headers a page may read beyond the CORS-safelisted ones."""
ALLOWED_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "grpc-timeout",
        "idempotency-key",
        "if-match",
        "if-none-match",
        "last-event-id",
        "x-request-id",
    }
)
"""Request headers a page may send, besides `grpc-metadata-*`."""


class Cors:
    def __init__(self, origins: Iterable[str]) -> None:
        allowed = {origin.lower().encode() for origin in origins}
        self._any = b"*" in allowed
        self._origins = frozenset(allowed - {b"*"})
        self.enabled = self._any or bool(self._origins)

    def allows(self, origin: bytes) -> bool:
        return self._any or origin.lower() in self._origins

    def response_headers(self, origin: bytes) -> Headers:
        """For every response: the grant when `origin` (empty: none) is allowed, and `Vary:
        Origin` whenever the answer depends on it, so a shared cache does not hand one
        origin's response to another (Fetch standard, "CORS protocol and HTTP caches")."""
        if self._any:
            return [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-expose-headers", EXPOSED),
            ]
        if not self._origins:
            return []
        if origin and self.allows(origin):
            return [
                (b"access-control-allow-origin", origin),
                (b"access-control-expose-headers", EXPOSED),
                (b"vary", b"Origin"),
            ]
        return [(b"vary", b"Origin")]

    def preflight_headers(self, methods: Iterable[str], requested: bytes) -> Headers:
        """The 204's headers; `RequestError` when the preflight asks for a header that may
        not be sent."""
        asked = [h.strip().lower() for h in requested.decode("latin-1").split(",") if h.strip()]
        for header in asked:
            if header not in ALLOWED_HEADERS and not header.startswith("grpc-metadata-"):
                raise RequestError(
                    "CORS_HEADER_NOT_ALLOWED",
                    None,
                    f"the header {header!r} may not be sent cross-origin",
                    code=grpc.StatusCode.PERMISSION_DENIED,
                )
        # `Access-Control-Allow-Origin` comes with every response to an allowed origin.
        headers = [
            (b"access-control-allow-methods", ", ".join(sorted(methods)).encode()),
            (b"access-control-max-age", b"%d" % MAX_AGE_SECONDS),
        ]
        if asked:
            headers.append((b"access-control-allow-headers", ", ".join(asked).encode()))
        return headers
