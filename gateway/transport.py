"""The gateway's HTTP connections: uvicorn's httptools protocol, with two changes.

- Writes of one step of the event loop leave together. uvicorn writes a response's status
  line and headers, then its body, each straight to the socket: two system calls and two TCP
  segments for every small JSON reply. Held until the end of the step, they leave in one.
  Streamed responses (NDJSON, SSE) still go out at once: each chunk is written in a step of
  its own.
- A client that closes its connection before its response is complete cancels the
  request's task (`left_mid_call` then says so): the gRPC call in flight is cancelled with
  it, so the backend sees CANCELLED and stops working for nobody (as grpc-gateway and Envoy
  do). It costs nothing per request: no task listens for the disconnect.

And three defences against hostile clients (issue 13), each answered with a google.rpc.Status
JSON body (`refusals`) where an answer is possible, never uvicorn's plain text:

- What the parser refuses (a malformed request line or header, a bad `Content-Length`, an
  unsupported HTTP version), a request target over `max_url_bytes` (414), a head over
  `max_head_bytes` (431: httptools itself has no limit), an upgrade with a body.
- A cap on open connections, below the open-file limit: one more is accepted, answered 503
  with `Retry-After` as soon as its request is read (or after a second of silence), and
  closed. It never waits in the accept queue, and refused connections linger only within a
  budget (`LingerBudget`), so accepting never fails for want of descriptors.
- Deadlines, one timer per connection, re-armed as the connection moves on: a head must be
  complete `head_seconds` after the connection opened or (kept alive) after its first byte,
  a body `body_seconds` after its head (408, and the gRPC call is never made), and a
  kept-alive connection with no request begun is closed after `idle_seconds`. Bytes alone
  do not reset a deadline: a client trickling its head is cut off all the same. Once a
  request is read, nothing times its response: a watch streams as long as it lasts.

A refused connection, and one answered before its body was read (413), lingers a moment, its
writing side shut, dropping what still comes: closed at once, the body still coming would be
met with a reset, which can destroy the answer before the client reads it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import resource
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, cast

import httptools
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from gateway import refusals
from gateway.config import Settings
from gateway.errors import RequestError
from gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

LINGER_SECONDS = 1.0
"""How long a refused connection may stay, its writing side shut and what it still sends
dropped, to read its answer before it is closed. (Closing at once, with what the client sent
unread, sends a reset, which can destroy the answer before the client reads it.)"""


@dataclass
class LingerBudget:
    """How many refused connections may stay a moment (`LINGER_SECONDS`) for their answer
    to be read: they hold a descriptor outside the cap, so half the descriptors the cap leaves
    free, no more; a flood must not reach the open-file limit, where accepting fails and
    every client waits."""

    free: int
    silent: dict[GatewayHttpProtocol, None] = field(default_factory=dict)
    """Connections over the cap that have sent nothing yet, oldest first: when the budget is
    spent, the oldest is answered and closed to make room (having sent nothing, it can close
    cleanly), so that a flood of silent connections cannot take every place."""

    @classmethod
    def for_cap(cls, max_connections: int) -> LingerBudget:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return cls(max_connections)
        return cls(max(0, (soft - max_connections) // 2))

    def take(self) -> bool:
        """A place, if one is free or a silent connection can give up its own."""
        if self.free > 0:
            self.free -= 1
            return True
        if self.silent:
            next(iter(self.silent)).give_up_place()  # returns its place: taken at once
            self.free -= 1
            return True
        return False


Deadline = Literal["idle", "head", "body"]

_left: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
"""Requests' tasks cancelled because their client left (a cancellation's message does not
survive the gRPC call it passes through)."""


def left_mid_call(task: asyncio.Task[Any] | None) -> bool:
    """Whether `task` was cancelled because its client left before the response was done."""
    return task in _left


class CoalescingTransport:
    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        lingers: Callable[[], bool] | None = None,
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._lingers = lingers
        """Asked on `close`: whether the protocol keeps the connection a moment instead."""

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        if self._lingers is None or not self._lingers():
            self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Refused(Exception):
    """Raised in a parser callback to stop parsing; the protocol's `_refusal` says why."""


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a `CoalescingTransport`, cancelling
    the running request when its client leaves, and refusing hostile clients. `for_settings`
    makes the class uvicorn is given."""

    settings: ClassVar[Settings]
    at_cap: ClassVar[bytes]
    """The whole 503 answer to a connection over the cap, made once."""
    linger_budget: ClassVar[LingerBudget]
    metrics: ClassVar[GatewayMetrics | None] = None
    """Where refusals are counted (None: metrics off)."""

    _running: tuple[RequestResponseCycle, asyncio.Task[None]] | None = None
    """The request being served (pipelined ones wait their turn) and its task."""
    _timer: asyncio.TimerHandle | None = None
    _deadline: Deadline = "head"
    """What `_timer`, when set, is the deadline of."""
    _head_by = 0.0
    """When the head being read must be complete (loop time)."""
    _in_head = False
    _in_body = False
    _head_read = 0
    """Bytes read while the head was incomplete (bounds what the parser holds of a header
    that never ends)."""
    _head_bytes = 0
    """Bytes of the head's complete headers (catches a large head read at once)."""
    _refusal: RequestError | None = None
    _over_cap = False
    _lingering = False
    _holds_budget = False
    _lost = False

    @classmethod
    def for_settings(
        cls, settings: Settings, metrics: GatewayMetrics | None = None
    ) -> type[GatewayHttpProtocol]:
        at_cap = refusals.response(refusals.too_many_connections(settings.max_connections))
        budget = LingerBudget.for_cap(settings.max_connections)
        configured = type(
            cls.__name__,
            (cls,),
            {"settings": settings, "at_cap": at_cap, "linger_budget": budget, "metrics": metrics},
        )
        return cast(type[GatewayHttpProtocol], configured)

    # The connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.settings.max_connections:
            self._refuse_over_cap(transport)
            return
        coalescing = CoalescingTransport(transport, self.loop, self._lingers_on_close)
        super().connection_made(coalescing)  # type: ignore[arg-type]
        self._head_by = self.loop.time() + self.settings.head_seconds
        self._arm("head", self.settings.head_seconds)

    def _refuse_over_cap(self, transport: asyncio.Transport) -> None:
        """Answers 503 once the client's request is read (answered before, the request
        arriving at a closed socket would be met with a reset), or after `LINGER_SECONDS`
        if it sends nothing; at once, and closes, if no place is left to wait in."""
        self._over_cap = True
        self.transport = transport
        if not self.linger_budget.take():
            self._count_at_cap()
            transport.write(self.at_cap)
            transport.close()
            return
        self._holds_budget = True
        self.linger_budget.silent[self] = None
        self._timer = self.loop.call_later(LINGER_SECONDS, self.give_up_place)

    def give_up_place(self) -> None:
        """An over-cap connection that has sent nothing (for `LINGER_SECONDS`, or when
        another needs its place): answered and closed, its place returned."""
        self.linger_budget.silent.pop(self, None)
        if self._holds_budget:
            self._holds_budget = False
            self.linger_budget.free += 1
        self._disarm()
        if not self.transport.is_closing():
            self._count_at_cap()
            self.transport.write(self.at_cap)
            self.transport.close()

    def _count_at_cap(self) -> None:
        if self.metrics is not None:
            self.metrics.refused(503, "TOO_MANY_CONNECTIONS")

    def _linger(self) -> None:
        """Shuts the writing side once the answer is out, drops what the client still
        sends, and closes when the client does, or after `LINGER_SECONDS` (at once when
        the `linger_budget` has no place)."""
        self._lingering = True
        self.connections.discard(self)  # no longer counts against the cap
        self._disarm()
        if not self._holds_budget:
            if not self.linger_budget.take():
                self.transport.close()
                return
            self._holds_budget = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self.flow is not None:
            self.flow.resume_reading()
        self._timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _lingers_on_close(self) -> bool:
        """A response that ends the connection before its request's body is all read (413)
        lingers, or the body still coming would reset the connection, answer and all."""
        if self._lingering or self._lost or not self._in_body:
            return False
        self._linger()
        return True

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self._over_cap:  # its request: answered now
            self.linger_budget.silent.pop(self, None)
            self._count_at_cap()
            self.transport.write(self.at_cap)
            self._linger()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Served as HTTP/1.1, as if no upgrade had been asked (RFC 9110, 7.8); what
            # follows on the connection is not HTTP/1.1, so it ends with the response.
            if self.cycle is not None:
                self.cycle.keep_alive = False
            return
        except httptools.HttpParserError as error:
            self._refuse(self._refusal or refusals.unparsable(error))
            return
        if self._in_head:
            self._head_read += len(data)
            if self._head_read > self.settings.max_head_bytes:
                self._refuse(refusals.head_too_large(self.settings.max_head_bytes))
        elif self._in_body and self._timer is None and self._serving(self.cycle):
            self._arm("body", self.settings.body_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._holds_budget:
            self._holds_budget = False
            self.linger_budget.free += 1
        if self._over_cap:
            self.linger_budget.silent.pop(self, None)
            return
        super().connection_lost(exc)
        self._cancel_running()

    def _cancel_running(self) -> None:
        """Cancels the request being served, if its response is not complete."""
        if self._running is not None:
            cycle, task = self._running
            self._running = None
            if not cycle.response_complete and not task.done():
                cycle.disconnected = True  # as uvicorn marks it when the client leaves
                cycle.message_event.set()
                _left.add(task)
                task.cancel()

    def eof_received(self) -> None:
        if self._lingering:
            self.transport.close()
        elif self._over_cap:
            self.give_up_place()

    # The parser's callbacks, in the order of a request

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_read = self._head_bytes = 0
        if self._deadline != "head" or self._timer is None:
            # A request begun on a kept-alive connection (or behind a running one).
            self._head_by = self.loop.time() + self.settings.head_seconds
            if self._timer is not None and self._timer.when() <= self._head_by:
                self._deadline = "head"  # the idle timer fires first and re-arms for the rest
            else:
                self._arm("head", self.settings.head_seconds)

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.settings.max_url_bytes:
            self._refusal = refusals.url_too_long(self.settings.max_url_bytes)
            raise Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's own (0.54, pinned), inlined: this runs for every header.
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.settings.max_head_bytes:
            self._refusal = refusals.head_too_large(self.settings.max_head_bytes)
            raise Refused

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        if self.parser.should_upgrade() and _declares_body(self.headers):
            self._refusal = refusals.upgrade_with_body()
            raise Refused
        super().on_headers_complete()
        self._in_body = True

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False
        if self._deadline == "body":
            self._disarm()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        # uvicorn's own (0.54, pinned), keeping the task.
        context = contextvars.Context() if self.config.reset_contextvars else None
        task = self.loop.create_task(cycle.run_asgi(app), context=context)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        self._running = (cycle, task)

    def on_response_complete(self) -> None:
        # uvicorn's own (0.54, pinned), with our deadlines for its keep-alive timer.
        self.server_state.total_requests += 1
        if self._lingering or self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            if self._in_body and self._timer is None and cycle is self.cycle:
                self._arm("body", self.settings.body_seconds)
        elif not self._in_head and not self._in_body:
            self._arm("idle", self.settings.idle_seconds)

    # Deadlines

    def _serving(self, cycle: RequestResponseCycle) -> bool:
        return self._running is not None and self._running[0] is cycle

    def _arm(self, deadline: Deadline, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._deadline = deadline
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        answerable = self.cycle is None or self.cycle.response_complete
        if self._deadline == "head":
            if self.loop.time() < self._head_by:  # it was the idle timer: the rest
                self._timer = self.loop.call_at(self._head_by, self._expired)
            elif self._in_head and answerable:
                self._refuse(refusals.head_timeout(self.settings.head_seconds))
            else:  # nothing sent at all, or behind a response being written
                self.transport.close()
        elif self._deadline == "body" and not self.cycle.response_started:
            self._refuse(refusals.body_timeout(self.settings.body_seconds))
        else:
            self.transport.close()

    def _refuse(self, error: RequestError) -> None:
        """Answers `error` unless a response is being written, cancels the request waiting
        for its body if any, and ends the connection."""
        log.debug("refused %s: %s", self.client, error.description)
        if self.metrics is not None:
            self.metrics.refused(error.http_status, error.reason)
        cycle = self.cycle
        answerable = cycle is None or cycle.response_complete or not cycle.response_started
        self._cancel_running()
        if answerable:
            self.transport.write(refusals.response(error))
            self._linger()
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # Not called by this class; kept JSON for anything in uvicorn that would.
        self._refuse(refusals.unparsable(httptools.HttpParserError(msg)))


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip(b"0 ")):
            return True
    return False
