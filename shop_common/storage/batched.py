"""Batched lookups: concurrent reads of rows by key, answered together by one statement.

On PostgreSQL a primary-key SELECT costs far more per statement than per row (measured
here: ~55 µs of client CPU and ~55 µs of backend CPU alone, ~14 µs and ~15 µs a key when
16 keys are read by one `= ANY(…)`), so the GetUser and GetOrder calls that arrive while a
read is waiting for its database thread are read with it, as DataLoader batches a tick's
loads: one unit of work, one statement (`PreparedByKeys`), for all of them.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import psycopg
from sqlalchemy.engine import Connection

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

MAX_BATCH = 500
"""Keys read by one statement at most: a full batch makes the next call open another."""


class Reads(Protocol):
    """What runs read units of work: `UnitOfWork` or `Database`."""

    def read(self, work: Callable[[Connection], T], /) -> Awaitable[T]: ...


class _Batch(Generic[K, V]):
    """The keys of one batch and their callers' futures, in the same order."""

    __slots__ = ("closed", "handed", "keys", "waiters")

    def __init__(self, key: K, waiter: asyncio.Future[V | None]) -> None:
        self.keys = [key]
        self.waiters = [waiter]
        self.closed = False
        """Set (under the lookup's lock) when its unit starts: later calls open a new batch."""
        self.handed = 0
        """How many keys it held when its unit was handed to a database thread."""


class BatchedLookup(Generic[K, V]):
    """Reads by key in batches: a call joins the batch whose unit of work has not started
    yet, or opens one, submitted through `reader.read` like any read (its metrics and trace
    span are a unit's, in the trace of the call that opened it). When the unit starts, in
    its database thread, it closes the batch, and `fetch` reads every key of it at once.

    Read-your-writes holds as for a unit of its own: each key's statement runs in a
    snapshot taken after the call was made, so it sees all that was committed before. The
    batch is closed before `fetch` runs; and where its database thread's turn may already
    have taken the snapshot it shares (a unit ran before this one in the turn, and a call
    joined the batch after the turn was handed over), a fresh one is taken first (see
    `_snapshot_from_now`).

    A caller that is cancelled leaves the batch to the others (each caller waits on a future
    of its own); when the unit fails, every caller of that batch gets its error, and the
    next call opens a new batch. For one event loop at a time.
    """

    def __init__(
        self,
        reader: Reads,
        fetch: Callable[[Connection, Sequence[K]], Mapping[K, V]],
        *,
        limit: int = MAX_BATCH,
    ) -> None:
        """`fetch(conn, keys)`: the values found (a key given twice is given once)."""
        self._reader = reader
        self._fetch = fetch
        self._limit = limit
        self._lock = threading.Lock()  # keys are added on the loop, a batch closed in a thread
        self._open: _Batch[K, V] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def get(self, key: K) -> V | None:
        """The value of `key`, or None where there is none."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[V | None] = loop.create_future()
        batch = self._open
        with self._lock:
            joined = batch is not None and not batch.closed and len(batch.keys) < self._limit
            if joined:
                assert batch is not None
                batch.keys.append(key)
                batch.waiters.append(waiter)
        if not joined:
            batch = self._open = _Batch(key, waiter)
            # One task a batch, not a call: it runs the unit and answers every caller.
            task = loop.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return await waiter

    async def _run(self, batch: _Batch[K, V]) -> None:
        # Keys are added on the loop only: none is added between here and the handover
        # (no await comes between), so these were all added before it.
        batch.handed = len(batch.keys)
        try:
            found = await self._reader.read(functools.partial(self._unit, batch))
        except BaseException as error:
            with self._lock:  # the unit may never have started (the database was closed)
                batch.closed = True
            for waiter in batch.waiters:
                if waiter.done():
                    continue
                if isinstance(error, asyncio.CancelledError):
                    waiter.cancel()
                else:
                    waiter.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for key, waiter in zip(batch.keys, batch.waiters, strict=True):
            if not waiter.done():  # else its caller was cancelled
                waiter.set_result(found.get(key))

    def _unit(self, batch: _Batch[K, V], conn: Connection) -> Mapping[K, V]:
        with self._lock:
            batch.closed = True
        keys = batch.keys  # no key is added any more
        if len(keys) > batch.handed:
            _snapshot_from_now(conn)
        return self._fetch(conn, keys)


def _snapshot_from_now(conn: Connection) -> None:
    """Makes the unit's next statement read a snapshot taken now, not earlier in its turn.

    A reader's turn of units shares one transaction (`storage.threads`), whose snapshot its
    first statement takes: after every unit of the turn was handed over, but maybe before a
    call joined a batch that ran later in the turn. The transaction holds only reads, so
    ending it loses nothing; the turn's later units then read the newer snapshot, which
    still holds all that was committed before they were submitted.

    PostgreSQL: only when a statement ran in the transaction (psycopg then begins the next
    with the engine's isolation level, at the next statement). SQLite begins deferred
    transactions (the reader's BEGIN, `storage.database`), whose snapshot the first read
    takes, and tells no one whether it has: a new one is begun each time (a few µs).
    """
    dbapi: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        if dbapi.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            dbapi.rollback()
        return
    dbapi.rollback()
    dbapi.execute("BEGIN")
