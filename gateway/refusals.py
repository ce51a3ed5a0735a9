"""The HTTP server's own refusals, made before a request reaches the gateway's routes: a
request that does not parse, a head or URL too large, a client too slow, a connection over
the cap. Each is a `RequestError` (the same google.rpc.Status JSON body as every other
error), written as a whole HTTP/1.1 response that closes the connection."""

from __future__ import annotations

import http

import grpc
import httptools

from gateway.errors import RequestError

C = grpc.StatusCode


def response(error: RequestError) -> bytes:
    """`error` as a complete response, `Connection: close` (the connection ends with it)."""
    body = error.body()
    phrase = http.HTTPStatus(error.http_status).phrase
    lines = [
        f"HTTP/1.1 {error.http_status} {phrase}".encode(),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        *(name + b": " + value for name, value in error.headers),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def unparsable(error: httptools.HttpParserError) -> RequestError:
    """What the HTTP parser refused, in its own words (llhttp's are short and exact)."""
    said = str(error) if not isinstance(error, httptools.HttpParserCallbackError) else ""
    if "Content-Length" in said:
        return RequestError("INVALID_CONTENT_LENGTH", "content-length", said)
    if "HTTP version" in said or "PRI/Upgrade" in said:
        return RequestError(
            "HTTP_VERSION_UNSUPPORTED",
            None,
            f"only HTTP/1.0 and HTTP/1.1 are served ({said})",
            code=C.UNIMPLEMENTED,
            http=505,
        )
    described = f"malformed HTTP request: {said}" if said else "malformed HTTP request"
    return RequestError("MALFORMED_HTTP", None, described)


def url_too_long(limit: int) -> RequestError:
    return RequestError(
        "URL_TOO_LONG",
        None,
        f"the request target is longer than {limit} bytes",
        code=C.RESOURCE_EXHAUSTED,
        http=414,
        metadata={"limit": str(limit)},
    )


def head_too_large(limit: int) -> RequestError:
    return RequestError(
        "HEADERS_TOO_LARGE",
        None,
        f"the request line and headers are larger than {limit} bytes",
        code=C.RESOURCE_EXHAUSTED,
        http=431,
        metadata={"limit": str(limit)},
    )


def upgrade_with_body() -> RequestError:
    # Without the upgrade the body would be read as the upgraded protocol's first bytes.
    return RequestError(
        "UPGRADE_UNSUPPORTED",
        "upgrade",
        "protocol upgrades are not supported, and this request has a body",
    )


def head_timeout(seconds: float) -> RequestError:
    return RequestError(
        "HEAD_TIMEOUT",
        None,
        f"the request line and headers did not arrive within {seconds:g} s",
        code=C.DEADLINE_EXCEEDED,
        http=408,
        metadata={"seconds": f"{seconds:g}"},
    )


def body_timeout(seconds: float) -> RequestError:
    return RequestError(
        "BODY_TIMEOUT",
        None,
        f"the request body did not arrive within {seconds:g} s of its headers",
        code=C.DEADLINE_EXCEEDED,
        http=408,
        metadata={"seconds": f"{seconds:g}"},
    )


RETRY_AFTER_SECONDS = 1


def too_many_connections(limit: int) -> RequestError:
    return RequestError(
        "TOO_MANY_CONNECTIONS",
        None,
        f"the gateway has {limit} connections open, its limit; retry shortly",
        code=C.UNAVAILABLE,
        http=503,
        headers=[(b"retry-after", b"%d" % RETRY_AFTER_SECONDS)],
        metadata={"limit": str(limit)},
    )
