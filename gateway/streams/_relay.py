"""Relaying a server stream to the client until it ends, the client leaves or the gateway
stops. A stream that fails before its response has started gets the error's own HTTP
status and JSON body (or the protocol's error, `gateway.rpc`); after that, the framing's
error is its last part, and a stream that ends well gets the framing's end (the RPC
protocols' trailers). A response starts at the first message, or after a heartbeat period
without one (so that a quiet watch is seen open)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Final, cast

import grpc
from google.protobuf.message import Message

from gateway.errors import RequestError, from_rpc_error, internal_error, pairs
from gateway.streams._framing import Writer
from gateway.types import MetadataPairs, Receive, Send

# The subpackage's modules are private: it logs under its own name.
log = logging.getLogger(__package__)

Call = grpc.aio.UnaryStreamCall[Any, Message]
_VARY: Final = (b"vary", b"accept")  # the format depends on it


async def relay(
    call: Call, writer: Writer, receive: Receive, send: Send, stopping: Callable[[], bool]
) -> None:
    """Relays `call` to the client in `writer`'s format until it ends, the client leaves or
    the gateway stops (whoever stops the gateway cancels `call`; `stopping()` then says so)."""
    gone = asyncio.ensure_future(_until_disconnect(receive))
    gone.add_done_callback(lambda _: call.cancel())
    reads = _Reads(call, writer.framing.heartbeat)
    try:
        await _relay(call, reads, writer, send, stopping, gone)
    finally:
        reads.close()
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone


def stopping_error() -> RequestError:
    return RequestError(
        "GATEWAY_STOPPING", None, "the gateway is stopping", code=grpc.StatusCode.UNAVAILABLE
    )


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


_IDLE: Final = object()
"""What `_Reads.next` returns when a heartbeat is due."""


class _Reads:
    """The call's messages, each awaited for at most a heartbeat period. A read waited on
    past that goes on in a task of its own: cancelling a read would cancel the call."""

    def __init__(self, call: Call, heartbeat: float | None) -> None:
        self._call = call
        self._heartbeat = heartbeat
        self._pending: asyncio.Future[object] | None = None
        self._metadata: asyncio.Future[MetadataPairs] | None = None
        if heartbeat is not None:
            self._metadata = asyncio.ensure_future(call.initial_metadata())

    async def next(self) -> object:
        """A message, `grpc.aio.EOF`, or `_IDLE`; raises as `call.read()` does."""
        if self._heartbeat is None:
            return await self._call.read()
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._call.read())
        done, _ = await asyncio.wait((self._pending,), timeout=self._heartbeat)
        if not done:
            return _IDLE
        pending, self._pending = self._pending, None
        return pending.result()

    async def trailing_metadata(self) -> MetadataPairs:
        return await self._call.trailing_metadata()

    async def initial_metadata(self, *, wait: bool) -> MetadataPairs:
        """The backend's initial metadata; without `wait`, only if it has come."""
        if self._metadata is None:
            return await self._call.initial_metadata()
        if wait or self._metadata.done():
            return await self._metadata
        return ()

    def close(self) -> None:
        for task in (self._pending, self._metadata):
            if task is not None and not task.done():
                task.cancel()
            elif task is not None and not task.cancelled():
                task.exception()  # retrieved: nothing to log at garbage collection


async def _relay(
    call: Call,
    reads: _Reads,
    writer: Writer,
    send: Send,
    stopping: Callable[[], bool],
    gone: asyncio.Future[None],
) -> None:
    framing = writer.framing
    try:
        first = await reads.next()
    except grpc.aio.AioRpcError as error:
        extra = framing.metadata_headers(pairs(error.initial_metadata()))
        raise from_rpc_error(error, extra) from None
    except asyncio.CancelledError:
        if gone.done():
            return
        if stopping():
            raise stopping_error() from None
        raise
    # A stream silent for a heartbeat period starts all the same (status 200, a heartbeat),
    # so that the client and the proxies on the way see it open; then a failure can only
    # be its last event.
    metadata = await reads.initial_metadata(wait=first is not _IDLE)
    headers = [*framing.headers, _VARY, *framing.metadata_headers(metadata)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if framing.preamble:
        await _send_body(send, framing.preamble)
    try:
        await _relay_rest(reads, first, writer, send, stopping, gone)
    except Exception:
        # The status line is sent: the error can only be the last line.
        log.exception("stream of %s failed", call)
        await _send_body(send, framing.error(internal_error().status, ()))
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _relay_rest(
    reads: _Reads,
    first: object,
    writer: Writer,
    send: Send,
    stopping: Callable[[], bool],
    gone: asyncio.Future[None],
) -> None:
    framing, encoder = writer.framing, writer.encoder
    message = first
    while True:
        if message is _IDLE:
            await _send_body(send, framing.ping)
        elif message is grpc.aio.EOF:  # type: ignore[attr-defined]  # the stubs lack EOF
            await _send_body(send, framing.end(pairs(await reads.trailing_metadata())))
            return
        else:  # a message, or its bytes for a framing without an encoder
            response = cast(Message, message)
            value = None if encoder is None else encoder.to_dict(response)
            await _send_body(send, framing.message(response, value))
        try:
            message = await reads.next()
        except grpc.aio.AioRpcError as error:
            trailing = pairs(error.trailing_metadata())
            await _send_body(send, framing.error(from_rpc_error(error).status, trailing))
            return
        except asyncio.CancelledError:
            if gone.done():
                return  # the client left: no one to tell
            if not stopping():
                raise
            await _send_body(send, framing.error(stopping_error().status, ()))
            return


async def _send_body(send: Send, body: bytes) -> None:
    if body:  # an empty part is no part (a framing without pings, or without an end)
        await send({"type": "http.response.body", "body": body, "more_body": True})
