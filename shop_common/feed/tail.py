"""The live side of a service's change feed, one per replica: it tails the changelog
and hands each new revision to the watchers that are caught up.

Revisions reach the feed from this replica's commits (`committed`) and by reading the
changelog when woken: by PostgreSQL notifications of other replicas' commits, and at the
latest every `poll_seconds`. The log is the only source, so every watcher on every replica
sees the same revisions in the same order. A watcher replays history (`recent`, else
`history`) up to `last`, then `attach`es: from then on each new revision is offered to its
bounded queue; a watcher whose queue is full is ended with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from shop_common.domain import DomainError, OutOfRange, ResourceExhausted, Unavailable
from shop_common.feed.settings import FeedSettings
from shop_common.feed.slots import WatchSlots
from shop_common.storage import NOTIFY_CHANNEL, Batch, Changelog, Compacted, Database
from shop_common.telemetry import FeedMetrics

log = logging.getLogger(__name__)

TAIL_LIMIT = 5_000
"""Changes read per query while tailing or replaying."""


class Watcher:
    """One watch's place in the feed: a bounded queue of revisions, and how it ended."""

    def __init__(self, capacity: int, cut_off: Callable[[], None] | None = None) -> None:
        self._capacity = capacity
        self._cut_off = cut_off
        """Told when the watcher is cut off as too slow (the metric's counter)."""
        self._queue: deque[Batch] = deque()
        self.ready = asyncio.Event()
        """Set while revisions wait in the queue."""
        self.ended = asyncio.Event()
        self.error: DomainError | None = None

    def offer(self, batch: Batch) -> None:
        if self.error is not None:
            return
        if len(self._queue) >= self._capacity:
            self._queue.clear()
            if self._cut_off is not None:
                self._cut_off()
            self.end(
                ResourceExhausted(
                    f"the watch fell {self._capacity} revisions behind and was cut off: "
                    "read faster, then watch again from the last revision received",
                    reason="WATCH_TOO_SLOW",
                    metadata={"buffer_revisions": str(self._capacity)},
                )
            )
            return
        self._queue.append(batch)
        self.ready.set()

    def take(self) -> list[Batch]:
        batches = list(self._queue)
        self._queue.clear()
        self.ready.clear()
        return batches

    def end(self, error: DomainError) -> None:
        if self.error is None:
            self.error = error
            self.ended.set()


COMPACTION_BATCH = 500
"""Revisions one unit of compaction forgets at most: a few milliseconds of work. (Measured
while 1M changes were compacted on PostgreSQL: units of 2,000 took 4-19 ms and lifted a
writer's p99 2.1-2.5 times; units of 500 with the rest below, 1.2-1.9 times. README, "At
scale".)"""
COMPACTION_REST = 2.0
"""After each unit, compaction waits this many times as long as the unit took: it takes at
most a third of the database's time, and of the machine's, from the writers."""


def compacted_error(compact_revision: int) -> OutOfRange:
    return OutOfRange(
        f"revisions up to {compact_revision} are compacted: list again, "
        "then watch from the listing's revision + 1",
        reason="REVISION_COMPACTED",
        metadata={"compact_revision": str(compact_revision)},
    )


def _uncounted() -> str | None:
    return None


class Feed:
    def __init__(
        self,
        db: Database,
        changelog: Changelog,
        settings: FeedSettings,
        *,
        caller_key: Callable[[], str | None] = _uncounted,
        metrics: FeedMetrics | None = None,
    ) -> None:
        self._db = db
        self._log = changelog
        self.settings = settings
        self.slots = WatchSlots(
            settings.max_watches_per_connection,
            settings.max_watches,
            settings.max_watches_per_caller,
        )
        """Who may open one more watch (taken by each Watch call)."""
        self.caller_key = caller_key
        """The key the current call's caller is counted under, None for one not counted:
        given by the serving layer, which knows who calls (by default no one is counted)."""
        self.last = 0
        """The newest revision this feed has read from the log."""
        self._committed_last = 0
        """The newest revision this replica committed (`last` lags it while nobody is
        attached: then the feed does not read the log)."""
        self.compact_revision = 0
        """The compaction point as last seen (this replica's compactions, a watch's check,
        or another replica's found while tailing)."""
        self.metrics = metrics
        """Where the feed's metrics are recorded (None: metrics off)."""
        self._cut_off = None if metrics is None else metrics.cut_off.inc
        self._ring: list[Batch] = []
        self._ring_floor = 0
        """Every revision in (ring_floor, last] is in the ring."""
        self._watchers: set[Watcher] = set()
        self._attached: set[Watcher] = set()
        self._wakeup = asyncio.Event()
        self._dirty = False
        """Something may have been committed since the log was last read."""
        self._reading = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    async def start(self) -> None:
        self.last = self._ring_floor = await self._db.read(self._log.current_revision)
        self.compact_revision = await self._db.read(self._log.compact_revision)
        if self.metrics is not None:
            self.metrics.read_from(
                head=lambda: self.head,
                compact=lambda: self.compact_revision,
                watchers=lambda: len(self._watchers),
            )
        self._tasks.append(asyncio.create_task(self._tail(), name="feed-tail"))
        if self._db.is_postgres:
            self._tasks.append(asyncio.create_task(self._listen(), name="feed-listen"))

    def wake(self) -> None:
        """Something was committed: read the log now, if anyone is attached to hear of it
        (else `attach` wakes the tail, and `sync` reads the log itself)."""
        self._dirty = True
        if self._attached:
            self._wakeup.set()

    def committed(self, batch: Batch) -> None:
        """This replica committed `batch`.

        The next revision is passed on at once, no query needed: it is exactly what reading
        the log would return next (nothing can commit between two revisions, whose numbers
        are taken under the counter's lock). Anything else: read the log.
        """
        if batch.revision > self._committed_last:
            self._committed_last = batch.revision
        if self._attached and batch.revision == self.last + 1:
            self._publish(batch)
        else:
            self.wake()

    async def sync(self) -> None:
        """Brings `last` up to date with the log (whoever committed: another process too).
        Called by a watch before it starts.

        While nobody is attached the feed does not read the log at all (a service that
        nobody watches pays nothing per write); the next watch jumps `last` to the
        current revision and replays what it needs from the database.
        """
        async with self._reading:
            if self._attached:
                await self._read_new()
                return
            self._dirty = False
            current = await self._db.read(self._log.current_revision)
            if self._attached:
                # A watch attached while the revision was read (it had synced before this
                # one): it is owed every revision after `last`, so no jumping past them.
                await self._read_new()
                return
            if current != self.last:
                self._ring.clear()
                self.last = self._ring_floor = current

    async def close(self) -> None:
        """Ends every watch with UNAVAILABLE (clients resume elsewhere) and stops tailing."""
        self._closed = True
        for watcher in list(self._watchers):
            watcher.end(
                Unavailable(
                    "the server is shutting down: watch again from the last revision received",
                    reason="SHUTTING_DOWN",
                )
            )
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- watchers ---------------------------------------------------------------------------

    def watcher(self) -> Watcher:
        watcher = Watcher(self.settings.buffer_revisions, self._cut_off)
        if self._closed:
            watcher.end(Unavailable("the server is shutting down", reason="SHUTTING_DOWN"))
        self._watchers.add(watcher)
        return watcher

    def attach(self, watcher: Watcher, after: int) -> None:
        """From now on, offers `watcher` every revision after `last` (which must be `after`
        or less: the caller has seen everything up to `last`)."""
        if after < self.last:
            raise ValueError(f"attach after {after} would skip revisions up to {self.last}")
        self._attached.add(watcher)
        if self._dirty:
            self._wakeup.set()  # commits the tail skipped while nobody was attached

    def forget(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)
        self._attached.discard(watcher)

    @property
    def head(self) -> int:
        """The newest revision this replica knows of: read from the log, or committed here.
        (Another replica's commits are known once the log is read: while watchers are
        attached, or when the next watch starts.)"""
        return max(self.last, self._committed_last)

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)

    def recent(self, after: int) -> list[Batch] | None:
        """The revisions after `after` held in memory, or None when memory does not reach."""
        if after < self._ring_floor:
            return None
        start = bisect.bisect_right(self._ring, after, key=lambda b: b.revision)
        return self._ring[start : start + TAIL_LIMIT]

    async def history(self, after: int, upto: int) -> list[Batch]:
        """Revisions in (after, upto] from the database; raises `Compacted`."""
        return await self._db.read(lambda conn: self._log.read(conn, after, upto, TAIL_LIMIT))

    async def check_kept(self, after: int) -> None:
        """Raises `Compacted` unless every revision after `after` is still in the log."""
        compacted = self.compact_revision = await self._db.read(self._log.compact_revision)
        if after < compacted:
            raise Compacted(compacted)

    async def compact(self, now: datetime | None = None) -> int:
        """Forgets history older than the retention; returns the compaction point. In units
        of COMPACTION_BATCH revisions, each a transaction of its own (`Database.maintain`:
        beside the writers on PostgreSQL, queued with them on SQLite) and a rest after it."""
        moment = (now or datetime.now(UTC)).timestamp() - self.settings.retention_seconds
        before_us = int(moment * 1e6)
        # Read, not remembered: another replica may have gone further.
        point = first = await self._db.read(self._log.compact_revision)
        began, units, longest = time.perf_counter(), 0, 0.0
        while True:
            # The next batch's target, read from the batch's revisions alone: the cost of a
            # pass is that of the history it forgets, not of all the retention keeps.
            target = await self._db.read(
                functools.partial(
                    self._log.batch_target, before_us=before_us, after=point, most=COMPACTION_BATCH
                )
            )
            if target is None or target <= point:
                break
            unit = time.perf_counter()
            point = await self._db.maintain(
                functools.partial(self._log.compact_to, target=target, most=COMPACTION_BATCH)
            )
            took = time.perf_counter() - unit
            units, longest = units + 1, max(longest, took)
            await asyncio.sleep(COMPACTION_REST * took)
        if units:
            log.info(
                "compacted %d revisions (to %d) in %d unit%s over %.2f s; longest unit %.1f ms",
                point - first,
                point,
                units,
                "" if units == 1 else "s",
                time.perf_counter() - began,
                longest * 1000,
            )
        self.compact_revision = max(self.compact_revision, point)
        return point

    # -- tailing ----------------------------------------------------------------------------

    def _publish(self, batch: Batch) -> None:
        if batch.revision <= self.last:
            return  # passed on by `committed` while the tail was reading it too
        self._ring.append(batch)
        if len(self._ring) >= 2 * self.settings.memory_revisions:
            dropped = len(self._ring) - self.settings.memory_revisions
            self._ring_floor = self._ring[dropped - 1].revision
            del self._ring[:dropped]
        self.last = batch.revision
        for watcher in self._attached:
            watcher.offer(batch)
        for watcher in [w for w in self._attached if w.error is not None]:
            self._attached.discard(watcher)

    async def _read_new(self) -> None:
        while True:
            self._dirty = False
            try:
                batches = await self._db.read(
                    functools.partial(self._log.read, after=self.last, upto=None, limit=TAIL_LIMIT)
                )
            except Compacted as compacted:
                # Another replica compacted revisions this one had not read yet: its
                # watchers cannot be served without a hole, so they must list again.
                for watcher in list(self._attached):
                    watcher.end(compacted_error(compacted.compact_revision))
                self._attached.clear()
                self._ring.clear()
                self.last = self._ring_floor = compacted.compact_revision
                self.compact_revision = max(self.compact_revision, compacted.compact_revision)
                continue
            for batch in batches:
                self._publish(batch)
            if not batches or sum(len(b.changes) for b in batches) < TAIL_LIMIT // 2:
                return

    async def _tail(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the event is set, and close() would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_seconds):
                    await self._wakeup.wait()
            self._wakeup.clear()
            if not self._attached:
                continue  # nobody to tell: `sync` catches up when a watch starts
            try:
                async with self._reading:
                    await self._read_new()
            except Exception:
                log.exception("reading the changelog failed; retrying")
                await asyncio.sleep(min(1.0, self.settings.poll_seconds))

    async def _listen(self) -> None:
        """Wakes the feed on every commit of any replica (PostgreSQL LISTEN/NOTIFY)."""
        # psycopg may turn a cancellation during connect into an error of its own, so
        # the loop also ends on `_closed`, not only on CancelledError.
        while not self._closed:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._db.libpq_dsn, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.wake()  # whatever was committed while nobody listened
                    async for _ in conn.notifies():
                        self.wake()
            except Exception as error:
                if self._closed:
                    return
                log.warning("change notifications lost (%s); polling until they return", error)
                await asyncio.sleep(1.0)
