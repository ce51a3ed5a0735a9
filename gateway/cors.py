"""Cross-origin requests from browsers (the Fetch standard's CORS protocol).

A preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin is
answered 204 with the methods the path really has; any other request from an allowed
origin gets `Access-Control-Allow-Origin` and the response headers a page may read.
Requests from other origins are served as usual, without those headers, so the browser
keeps the response from the page.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import grpc

from gateway.errors import RequestError, allow_header, method_not_allowed
from gateway.headers import RequestHeaders
from gateway.types import Headers

MAX_AGE_SECONDS = 600
EXPOSED = (
    b"etag, location, x-request-id, allow, www-authenticate, retry-after, "
    b"ratelimit, ratelimit-policy, grpc-status, grpc-message, grpc-status-details-bin, "
    b"connect-content-encoding, connect-accept-encoding, accept-encoding, accept-post"
)
"""Response headers a page may read beyond the CORS-safelisted ones (the RPC protocols'
included: a gRPC-Web client reads a trailers-only error's status from them)."""
ALLOWED_HEADERS = frozenset(
    {
        "authorization",
        "content-encoding",
        "content-type",
        "grpc-accept-encoding",
        "grpc-encoding",
        "grpc-timeout",
        "idempotency-key",
        "if-match",
        "if-none-match",
        "last-event-id",
        "x-grpc-web",
        "x-request-id",
        "x-user-agent",
    }
)
"""Request headers a page may send, besides `grpc-metadata-*` and `connect-*` (the Connect
protocol's own); `x-grpc-web` and `x-user-agent` are what gRPC-Web clients send."""
ALLOWED_PREFIXES = ("grpc-metadata-", "connect-")


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

    def options(self, allowed: Collection[str], headers: RequestHeaders, path: str) -> Headers:
        """The headers of the 204 that answers an OPTIONS to `path`, whose methods are
        `allowed`: a preflight's grant, or else `Allow`. `RequestError` refuses a
        preflight from another origin, for another method or with another header."""
        origin = headers.get(b"origin") or b""
        asked = headers.get(b"access-control-request-method") or b""
        if not (asked and origin and self.enabled):
            return allow_header(allowed)
        if not self.allows(origin):
            raise RequestError(
                "CORS_ORIGIN_NOT_ALLOWED",
                None,
                f"the origin {origin.decode('latin-1')} may not call this API",
                code=grpc.StatusCode.PERMISSION_DENIED,
            )
        method = asked.decode("latin-1")
        if method not in allowed:
            raise method_not_allowed(method, path, allowed)
        requested = headers.get(b"access-control-request-headers") or b""
        return self._preflight_headers(allowed, requested)

    def _preflight_headers(self, methods: Iterable[str], requested: bytes) -> Headers:
        asked = [h.strip().lower() for h in requested.decode("latin-1").split(",") if h.strip()]
        for header in asked:
            if header not in ALLOWED_HEADERS and not header.startswith(ALLOWED_PREFIXES):
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
            # The grant echoes what was asked: a cache must not reuse it for another ask.
            (b"vary", b"Access-Control-Request-Method, Access-Control-Request-Headers"),
        ]
        if asked:
            headers.append((b"access-control-allow-headers", ", ".join(asked).encode()))
        return headers
