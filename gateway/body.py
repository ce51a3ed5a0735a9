"""Reading a request body under a size limit: refused from `Content-Length` before a byte
is read, and counted while reading when the length is not declared (chunked)."""

from __future__ import annotations

import grpc

from gateway.errors import RequestError
from gateway.headers import RequestHeaders, invalid_header
from gateway.types import Receive


class ClientGone(Exception):
    """The client disconnected before its request was read: there is no one to answer."""


def too_large(limit: int) -> RequestError:
    return RequestError(
        "BODY_TOO_LARGE",
        "",
        f"the request body is larger than {limit} bytes",
        code=grpc.StatusCode.RESOURCE_EXHAUSTED,
        http=413,
        metadata={"limit": str(limit)},
        # The rest of the body stays unread: the connection cannot be reused.
        headers=[(b"connection", b"close")],
    )


def declared_length(headers: RequestHeaders) -> int | None:
    """The first `Content-Length`, if any."""
    lines = headers.lines(b"content-length")
    if not lines:
        return None
    if not lines[0].isdigit():
        raise invalid_header("content-length", "not a length")
    return int(lines[0])


def has_body(headers: RequestHeaders) -> bool:
    """Whether the request declares a body (a non-zero length, or chunked)."""
    if headers.get(b"transfer-encoding") is not None:
        return True
    return any(value.strip(b"0 ") for value in headers.lines(b"content-length"))


async def read_body(headers: RequestHeaders, receive: Receive, limit: int) -> bytes:
    """The whole body, or `RequestError` 413 as soon as it is known to exceed `limit`."""
    declared = declared_length(headers)
    if declared is not None and declared > limit:
        raise too_large(limit)
    first = await receive()
    if first["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = first.get("body", b"")
    if not first.get("more_body", False):
        if len(body) > limit:
            raise too_large(limit)
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
