"""Writing a whole response: a unary call's (its JSON, `ETag`, `Location`, 204 and 304, the
backend's metadata as headers) and any other, errors included."""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.protobuf.message import Message

from gateway.errors import from_rpc_error, pairs
from gateway.headers import RequestHeaders
from gateway.metadata import response_headers
from gateway.routes import Route
from gateway.semantics import Semantics, not_modified
from gateway.types import Headers, Send
from shop_common.telemetry import MethodMetrics, ended_code

JSON = (b"content-type", b"application/json")


async def respond(send: Send, status: int, body: bytes, headers: Headers | None = None) -> None:
    """A whole response: JSON unless `headers` name another content type; a 204 has no
    content at all (not even its length, RFC 9110 8.6)."""
    extra = headers or []
    if status == 204:
        start = extra
    else:
        typed = any(name == b"content-type" for name, _ in extra)
        start = [*(() if typed else (JSON,)), (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


async def unary_reply(
    route: Route,
    semantics: Semantics,
    call: grpc.aio.UnaryUnaryCall[Message, Message],
    conditional: bool,
    headers: RequestHeaders,
    send: Send,
    calls: MethodMetrics | None = None,
    sent_at: float = 0.0,
) -> None:
    """Awaits `call` and sends its response; a backend's error is raised as `GatewayError`.
    `conditional`: an `If-Match` was applied, so ABORTED means it did not hold (412).
    `calls`: where the call's end is recorded (its start was, at `sent_at`)."""
    try:
        response = await finished(call, calls, sent_at)
    except grpc.aio.AioRpcError as error:
        extra = response_headers(pairs(error.initial_metadata()), pairs(error.trailing_metadata()))
        failure = from_rpc_error(error, extra)
        if conditional and error.code() == grpc.StatusCode.ABORTED:
            failure.http_status = 412
        raise failure from None
    status = semantics.status
    reply: Headers = []
    if semantics.etag_out or semantics.location is not None:
        resource = getattr(response, route.response_body) if route.response_body else response
        etag = semantics.etag_of(resource)
        if etag is not None:
            reply.append((b"etag", etag))
            if route.http_method == "GET" and not_modified(headers, etag):
                status = 304
        if status == 201:
            location = semantics.location_of(resource)
            if location is not None:
                reply.append((b"location", location))
    initial = await call.initial_metadata()
    trailing = await call.trailing_metadata()
    if initial or trailing:
        reply.extend(response_headers(initial, trailing))
    if status in (204, 304):
        await send({"type": "http.response.start", "status": status, "headers": reply})
        await send({"type": "http.response.body", "body": b""})
        return
    body = route.encoder.encode(response)
    reply += [JSON, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": reply})
    await send({"type": "http.response.body", "body": body})


async def finished(
    call: grpc.aio.UnaryUnaryCall[Any, Any], calls: MethodMetrics | None, sent_at: float
) -> Any:
    """`call`'s response (`AioRpcError` as it came), its end recorded in `calls` (None:
    nowhere), its start having been at `sent_at`."""
    try:
        response = await call
    except grpc.aio.AioRpcError as error:
        if calls is not None:
            _ended(calls, error.code(), sent_at)
        raise
    except BaseException:  # cancelled (the client left), or the call failed to run
        if calls is not None:
            _ended(calls, ended_code(call), sent_at)
        raise
    if calls is not None:
        _ended(calls, grpc.StatusCode.OK, sent_at)
        calls.received.inc()
    return response


def _ended(calls: MethodMetrics, code: grpc.StatusCode, sent_at: float) -> None:
    calls.handled[code].inc()
    calls.seconds.observe(time.perf_counter() - sent_at)
