"""One Watch call, whatever the resource: replay, hand-over to the live feed, progress
notifications, and how the stream ends.

The promises (etcd's Watch, Kubernetes' list-then-watch): revisions in order, each once,
a revision's events in one response (one too large goes out in `fragment`s, as etcd's);
below the compaction point a `compact_revision` response, then OUT_OF_RANGE; bookmarks
for an idle stream that asked; RESOURCE_EXHAUSTED for a watcher that does not read;
UNAVAILABLE on shutdown; RESOURCE_EXHAUSTED for a watch over the caps of its caller, of its
connection or of the process (`slots`), before anything is read. A task of its own writes
the responses, so that the call can end while a write waits on a client that does not read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.descriptor import Descriptor

from shop_common.domain import FieldViolation, InvalidArgument
from shop_common.feed.tail import Feed, Watcher, compacted_error
from shop_common.storage import Batch, Change, Compacted

M = TypeVar("M", covariant=True)

COALESCE_SECONDS = 0.005
"""How long a woken watch waits for more revisions before it writes, unless it has written
nothing for that long (the first revision after a quiet spell goes out at once)."""

RESPONSE_BUDGET_BYTES = 1_000_000
"""A response stops taking revisions at about this much change data (gRPC allows 4 MiB);
a revision larger than this alone goes out in fragments."""


class Encoder(Protocol[M]):
    """Builds one service's watch responses, filtered and shaped as its request asked."""

    def wants(self, change: Change) -> bool:
        """Whether the watch asked for this change (e.g. WatchOrders' `user_id`)."""

    def event(self, change: Change) -> bytes:
        """The change as a serialized event message (computed once, shared by watchers)."""

    def compacted(self, compact_revision: int, header_revision: int) -> M: ...

    def progress(self, header_revision: int) -> M: ...


# The responses of every feed share one layout (`check_layout`), so a response is built by
# concatenating the already serialized events: each watcher then costs a join, not a
# serialization of every event again (protobuf's wire format: field 1 length-delimited
# repeated, field 2 and 5 varints).
_LAYOUT = {
    "events": 1,
    "header_revision": 2,
    "compact_revision": 3,
    "progress_notify": 4,
    "fragment": 5,
}


def check_layout(response: Descriptor) -> None:
    """Fails at import when a watch response's fields are not where this module puts them."""
    found = {f.name: f.number for f in response.fields}
    if found != _LAYOUT:
        raise TypeError(f"{response.full_name} fields {found} are not {_LAYOUT}")


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _response(events: list[bytes], header_revision: int, fragment: bool) -> bytes:
    parts: list[bytes] = []
    for event in events:
        parts += (b"\x0a", _varint(len(event)), event)
    if header_revision:
        parts += (b"\x10", _varint(header_revision))
    if fragment:
        parts.append(b"\x28\x01")
    return b"".join(parts)


def _size(change: Change) -> int:
    return len(change.data) + len(change.prev or "")


def _chunks(batches: Sequence[Batch]) -> Iterator[tuple[list[Batch], bool]]:
    """Groups whole revisions into responses of about the budget; a revision over the
    budget alone is split into fragments: (batches, whether more of the last follows)."""
    chunk: list[Batch] = []
    spent = 0
    for batch in batches:
        size = sum(_size(c) for c in batch.changes)
        if chunk and spent + size > RESPONSE_BUDGET_BYTES:
            yield chunk, False
            chunk, spent = [], 0
        if size <= RESPONSE_BUDGET_BYTES:
            chunk.append(batch)
            spent += size
            continue
        piece: list[Change] = []
        piece_size = 0
        for change in batch.changes:
            if piece and piece_size + _size(change) > RESPONSE_BUDGET_BYTES:
                yield [Batch(batch.revision, tuple(piece))], True
                piece, piece_size = [], 0
            piece.append(change)
            piece_size += _size(change)
        yield [Batch(batch.revision, tuple(piece))], False
    if chunk:
        yield chunk, False


class _Stream:
    def __init__(
        self,
        feed: Feed,
        watcher: Watcher,
        encoder: Encoder[Any],
        context: grpc.aio.ServicerContext[Any, Any],
        progress_notify: bool,
    ) -> None:
        self._feed = feed
        self._watcher = watcher
        self._encoder = encoder
        self._context = context
        self._progress = progress_notify
        self._cursor = 0

    async def _send(self, batches: Sequence[Batch]) -> None:
        wanted = []
        for batch in batches:
            if batch.revision <= self._cursor:
                continue
            changes = tuple(c for c in batch.changes if self._encoder.wants(c))
            if changes:
                wanted.append(
                    batch if len(changes) == len(batch.changes) else Batch(batch.revision, changes)
                )
        event = self._encoder.event
        metrics = self._feed.metrics
        for chunk, fragment in _chunks(wanted):
            events = [event(c) for b in chunk for c in b.changes]
            await self._context.write(_response(events, self._feed.last, fragment))
            if metrics is not None:
                metrics.sent.inc(len(events))
        if batches:
            self._cursor = max(self._cursor, batches[-1].revision)

    async def run(self, start_revision: int) -> None:
        feed = self._feed
        await feed.sync()
        if start_revision == 0:
            self._cursor = feed.last
        else:
            self._cursor = start_revision - 1
            try:
                await feed.check_kept(self._cursor)
                while self._cursor < feed.last:
                    batches = feed.recent(self._cursor)
                    if batches is None:
                        batches = await feed.history(self._cursor, feed.last)
                    if not batches:  # nothing kept in between: a hole in the numbering
                        self._cursor = feed.last
                    await self._send(batches)
            except Compacted as compacted:
                response = self._encoder.compacted(compacted.compact_revision, feed.last)
                await self._context.write(response)
                raise compacted_error(compacted.compact_revision) from None
        # Caught up: no await between the last check of `feed.last` and this hand-over.
        feed.attach(self._watcher, max(self._cursor, feed.last))
        await self._live()

    async def _live(self) -> None:
        wait = self._feed.settings.progress_seconds if self._progress else None
        if self._progress:
            # Caught up (the queue is empty: nothing has been offered since the hand-over):
            # say so at once, as Kubernetes' bookmark at the end of the initial events.
            await self._context.write(self._encoder.progress(self._feed.last))
        ready = self._watcher.ready
        loop = asyncio.get_running_loop()
        sent = 0.0
        while True:
            try:
                if not ready.is_set():
                    async with asyncio.timeout(wait):  # no task per wait, unlike wait_for
                        await ready.wait()
            except TimeoutError:
                # Idle and caught up: everything up to `last` was sent or filtered out.
                await self._context.write(self._encoder.progress(self._feed.last))
                continue
            # On a busy feed, linger a moment to send fewer, fuller responses: each write
            # costs gRPC (both ends) about the same whether it carries one revision or twenty.
            if loop.time() - sent < COALESCE_SECONDS:
                await asyncio.sleep(COALESCE_SECONDS)
            await self._send(self._watcher.take())
            sent = loop.time()


async def serve(
    feed: Feed,
    context: grpc.aio.ServicerContext[Any, Any],
    encoder: Encoder[Any],
    *,
    start_revision: int,
    progress_notify: bool,
) -> None:
    """Streams the feed to `context` until the client leaves or the watch must end."""
    if start_revision < 0:
        raise InvalidArgument.of(
            FieldViolation("start_revision", "must be 0 (from now) or a revision", "OUT_OF_RANGE")
        )
    # The slot is held until the call ends, however it ends: its client leaving cancels it.
    with feed.slots.take(context.peer() or "", feed.caller_key()):
        watcher = feed.watcher()
        stream = _Stream(feed, watcher, encoder, context, progress_notify)
        runner = asyncio.create_task(stream.run(start_revision))
        ended = asyncio.create_task(watcher.ended.wait())
        try:
            await asyncio.wait({runner, ended}, return_when=asyncio.FIRST_COMPLETED)
            if runner.done():
                runner.result()  # the stream's own error, e.g. OUT_OF_RANGE
                return
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            assert watcher.error is not None
            raise watcher.error
        finally:
            runner.cancel()
            ended.cancel()
            feed.forget(watcher)
