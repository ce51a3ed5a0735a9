"""Server streaming in the format the request's `Accept` asks for: newline-delimited JSON
(the default) or Server-Sent Events (`text/event-stream`, see `gateway.sse`).

NDJSON: `{"result": ...}` per message and, when the stream fails after its first message, a
last `{"error": <google.rpc.Status>}` line. SSE: an event per message (with the revision as
its id on a resumable stream), heartbeats while idle, and an `error` event last. A stream
that fails before its response has started gets the error's own HTTP status and JSON body.
An SSE response starts at its first message or after a heartbeat period without one,
whichever comes first (so that a quiet watch is seen open); NDJSON's at its first message.

`Last-Event-ID` (what an EventSource sends when it reconnects) resumes an SSE stream after
the revision it names, overriding `start_revision`; NDJSON, which sends no ids, ignores it
like any other header. A watch from "now" (`startRevision` 0) has no id to resume from
until its first event: `progressNotify=true` gives it one at once.

An `Accept` that allows neither format is refused with 406 before the backend is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import grpc
import orjson
from google.protobuf.message import Message

from gateway import sse
from gateway.codec import ResponseEncoder
from gateway.config import Settings
from gateway.errors import RequestError, from_rpc_error, internal_error, status_dict
from gateway.headers import RequestHeaders
from gateway.metadata import response_headers
from gateway.routes import Route
from gateway.types import MetadataPairs, Receive, Send

log = logging.getLogger(__name__)

NDJSON = b"application/x-ndjson"
Call = grpc.aio.UnaryStreamCall[Any, Message]
_VARY: Final = (b"vary", b"accept")  # the format depends on it

NDJSON_FORMAT: Final = "application/x-ndjson"
SSE_FORMAT: Final = "text/event-stream"
FORMATS: Final = (NDJSON_FORMAT, SSE_FORMAT)
# The media types each format is served for, the default first, and whether only a range
# naming the type exactly counts: NDJSON also goes to a client that asks for JSON by name,
# but `application/*` or `*/*` stand for NDJSON's own type (which the client may refuse).
_OFFERS: Final = (
    (NDJSON_FORMAT, ("application", "x-ndjson"), False),
    (NDJSON_FORMAT, ("application", "json"), True),
    (SSE_FORMAT, ("text", "event-stream"), False),
)


class Framing(Protocol):
    """How one format puts a stream's parts on the wire."""

    headers: tuple[tuple[bytes, bytes], ...]
    """Response headers, content-type first."""
    preamble: bytes
    """Sent once, right after the status line."""
    heartbeat: float | None
    """Seconds of silence after which `ping` is sent (None: never)."""
    ping: bytes

    def message(self, response: Message, value: object) -> bytes:
        """One response; `value` is its proto3 JSON (after `response_body`)."""
        ...

    def error(self, status: dict[str, object]) -> bytes:
        """The error that ends the stream, as a google.rpc.Status in JSON."""
        ...


class Ndjson:
    """Newline-delimited JSON: no preamble, no heartbeats, no ids."""

    __slots__ = ()

    headers: tuple[tuple[bytes, bytes], ...] = ((b"content-type", NDJSON),)
    preamble = b""
    heartbeat: float | None = None
    ping = b""

    def message(self, response: Message, value: object) -> bytes:
        return orjson.dumps({"result": value}) + b"\n"

    def error(self, status: dict[str, object]) -> bytes:
        return orjson.dumps({"error": status}) + b"\n"


@dataclass(frozen=True, slots=True)
class Writer:
    """How one stream's messages go out (chosen per request by `writer_for`)."""

    encoder: ResponseEncoder
    framing: Framing


def writer_for(
    route: Route, headers: RequestHeaders, request: Message, settings: Settings
) -> Writer:
    """The writer the request's `Accept` asks for; may adjust `request` to resume a stream.
    Raises `RequestError` for a request it cannot serve."""
    chosen = negotiate(headers.joined(b"accept"))
    if chosen is None:
        raise RequestError(
            "NOT_ACCEPTABLE",
            None,
            f"a stream is sent as {' or '.join(FORMATS)}, which Accept does not allow",
            http=406,
            headers=[(b"vary", b"Accept")],
            metadata={"supported": ", ".join(FORMATS)},
        )
    if chosen == NDJSON_FORMAT:
        return Writer(route.encoder, Ndjson())
    revisions = sse.revisions_of(route.method)
    last = headers.joined(b"last-event-id")
    if revisions is not None and last is not None and last.strip(" \t"):
        event_id = sse.parse_event_id(last)
        if event_id is None:
            raise RequestError(
                "INVALID_LAST_EVENT_ID",
                sse.LAST_EVENT_ID,
                f"{sse.LAST_EVENT_ID} must be a revision from 0 to {sse.MAX_EVENT_ID}, "
                f"not {last[:40]!r}",
            )
        revisions.resume_after(request, event_id)
    return Writer(route.encoder, sse.EventStream(revisions, settings.sse_heartbeat_seconds))


def negotiate(accept: str | None) -> str | None:
    """The format `accept` prefers (RFC 9110 §12.5.1), or None when it allows neither.

    An offer's quality is that of the most specific range that matches it; the highest
    quality wins, then the offer named more specifically (`text/event-stream, */*` is
    SSE), then NDJSON. Ranges that do not parse are ignored, and an Accept with none
    that does is as good as none.
    """
    ranges = _ranges(accept or "")
    if not ranges:
        return NDJSON_FORMAT
    best: tuple[float, int] = (0.0, 0)
    chosen: str | None = None
    for name, offer, exact in _OFFERS:
        score = _score(offer, ranges)
        if exact and score[1] < 2:
            continue
        if score[0] > 0 and score > best:
            best, chosen = score, name
    return chosen


def _ranges(accept: str) -> list[tuple[str, str, float]]:
    found = []
    for item in accept.split(","):
        media, *params = item.split(";")
        kind, slash, sub = media.strip().lower().partition("/")
        if not slash or not kind or not sub or (kind == "*" and sub != "*"):
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                quality = _quality(value.strip())
                break
        if quality >= 0:
            found.append((kind, sub, quality))
    return found


def _quality(text: str) -> float:
    """A qvalue (0 to 1, at most three decimals); -1 when it is not one."""
    whole, _, decimals = text.partition(".")
    if whole not in ("0", "1") or len(decimals) > 3 or not (decimals or "0").isdigit():
        return -1.0
    value = float(text)
    return value if value <= 1 else -1.0


def _score(offer: tuple[str, str], ranges: list[tuple[str, str, float]]) -> tuple[float, int]:
    """(quality, specificity) of the most specific range matching `offer`."""
    best = (0.0, -1)
    for kind, sub, quality in ranges:
        if (kind, sub) == offer:
            specificity = 2
        elif kind == offer[0] and sub == "*":
            specificity = 1
        elif kind == "*":
            specificity = 0
        else:
            continue
        if specificity > best[1]:
            best = (quality, specificity)
    return best


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
        raise from_rpc_error(error, response_headers(error.initial_metadata(), None)) from None
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
    headers = [*framing.headers, _VARY, *response_headers(metadata, None)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if framing.preamble:
        await _send_body(send, framing.preamble)
    try:
        await _relay_rest(reads, first, writer, send, stopping, gone)
    except Exception:
        # The status line is sent: the error can only be the last line.
        log.exception("stream of %s failed", call)
        await _send_body(send, framing.error(status_dict(internal_error().status)))
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
        elif isinstance(message, Message):
            await _send_body(send, framing.message(message, encoder.to_dict(message)))
        else:
            return  # grpc.aio.EOF
        try:
            message = await reads.next()
        except grpc.aio.AioRpcError as error:
            await _send_body(send, framing.error(status_dict(from_rpc_error(error).status)))
            return
        except asyncio.CancelledError:
            if gone.done():
                return  # the client left: no one to tell
            if not stopping():
                raise
            await _send_body(send, framing.error(status_dict(stopping_error().status)))
            return


async def _send_body(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})
