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
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from typing import Any

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

_left: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
"""Requests' tasks cancelled because their client left (a cancellation's message does not
survive the gRPC call it passes through)."""


def left_mid_call(task: asyncio.Task[Any] | None) -> bool:
    """Whether `task` was cancelled because its client left before the response was done."""
    return task in _left


class CoalescingTransport:
    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

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
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a `CoalescingTransport` and cancelling
    the running request when its client leaves."""

    _running: tuple[RequestResponseCycle, asyncio.Task[None]] | None = None
    """The request being served (pipelined ones wait their turn) and its task."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        # uvicorn's own (0.54, pinned), keeping the task.
        context = contextvars.Context() if self.config.reset_contextvars else None
        task = self.loop.create_task(cycle.run_asgi(app), context=context)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        self._running = (cycle, task)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._running is not None:
            cycle, task = self._running
            self._running = None
            if not cycle.response_complete and not task.done():
                _left.add(task)
                task.cancel()
