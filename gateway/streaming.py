"""Server streaming as newline-delimited JSON: `{"result": ...}` per message and, when the
stream fails after its first message, a last `{"error": <google.rpc.Status>}` line. A stream
that fails before its first message gets the error's own HTTP status instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
from google.protobuf.message import Message
from google.rpc import status_pb2

from gateway.codec import ResponseEncoder
from gateway.config import Settings
from gateway.errors import GatewayError, from_rpc_error, refusal, status_dict
from gateway.metadata import response_headers
from gateway.routes import Route
from gateway.types import Headers, Receive, Send

log = logging.getLogger(__name__)

NDJSON = b"application/x-ndjson"
Call = grpc.aio.UnaryStreamCall[Any, Message]


@dataclass(frozen=True, slots=True)
class Writer:
    """How one stream's messages go out (chosen per request by `writer_for`)."""

    encoder: ResponseEncoder


def writer_for(route: Route, headers: Headers, request: Message, settings: Settings) -> Writer:
    """The writer the request's `Accept` asks for; may adjust `request` to resume a stream.
    Raises `GatewayError` for a request it cannot serve."""
    return Writer(route.encoder)


async def relay(
    call: Call, writer: Writer, receive: Receive, send: Send, stopping: Callable[[], bool]
) -> None:
    """Relays `call` to the client in `writer`'s format (see `send_ndjson`)."""
    await send_ndjson(call, writer.encoder, receive, send, stopping)


def stopping_error() -> GatewayError:
    return refusal(grpc.StatusCode.UNAVAILABLE, "GATEWAY_STOPPING", "the gateway is stopping")


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def send_ndjson(
    call: Call,
    encoder: ResponseEncoder,
    receive: Receive,
    send: Send,
    stopping: Callable[[], bool],
) -> None:
    """Relays `call` to the client until it ends, the client leaves or the gateway stops
    (whoever stops the gateway cancels `call`; `stopping()` then says so)."""
    gone = asyncio.ensure_future(_until_disconnect(receive))
    gone.add_done_callback(lambda _: call.cancel())
    try:
        await _relay(call, encoder, send, stopping, gone)
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone


async def _relay(
    call: Call,
    encoder: ResponseEncoder,
    send: Send,
    stopping: Callable[[], bool],
    gone: asyncio.Future[None],
) -> None:
    try:
        first = await call.read()
    except grpc.aio.AioRpcError as error:
        raise from_rpc_error(error, response_headers(error.initial_metadata(), None)) from None
    except asyncio.CancelledError:
        if gone.done():
            return
        if stopping():
            raise stopping_error() from None
        raise
    headers = [(b"content-type", NDJSON), *response_headers(await call.initial_metadata(), None)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    try:
        await _relay_rest(call, first, encoder, send, stopping, gone)
    except Exception:
        # The status line is sent: the error can only be the last line.
        log.exception("stream of %s failed", call)
        failure = refusal(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error")
        await send(_error_line(failure.status))
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _relay_rest(
    call: Call,
    first: object,
    encoder: ResponseEncoder,
    send: Send,
    stopping: Callable[[], bool],
    gone: asyncio.Future[None],
) -> None:
    message = first
    while isinstance(message, Message):  # else grpc.aio.EOF
        line = orjson.dumps({"result": encoder.to_dict(message)}) + b"\n"
        await send({"type": "http.response.body", "body": line, "more_body": True})
        try:
            message = await call.read()
        except grpc.aio.AioRpcError as error:
            await send(_error_line(from_rpc_error(error).status))
            return
        except asyncio.CancelledError:
            if gone.done():
                return  # the client left: no one to tell
            if not stopping():
                raise
            await send(_error_line(stopping_error().status))
            return


def _error_line(status: status_pb2.Status) -> dict[str, object]:
    body = orjson.dumps({"error": status_dict(status)}) + b"\n"
    return {"type": "http.response.body", "body": body, "more_body": True}
