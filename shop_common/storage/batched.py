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
import itertools
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import psycopg
import sqlalchemy as sa
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
    """The keys of one batch: the first its opener's, each other's caller waiting on a future
    (`waiters[n]` is the caller of `keys[n + 1]`)."""

    __slots__ = ("closed", "handed", "keys", "waiters")

    def __init__(self, key: K) -> None:
        self.keys = [key]
        self.waiters: list[asyncio.Future[V | None]] = []
        self.closed = False
        """Set (under the lookup's lock) when its unit starts: later calls open a new batch."""
        self.handed = 1
        """How many keys it held when its unit was handed to a database thread."""


class BatchedLookup(Generic[K, V]):
    """Reads by key in batches: a call joins the batch whose unit of work has not started
    yet, or opens one and runs its unit, through `reader.read` like any read (its metrics
    and its trace span are a unit's, in the opener's trace). When the unit starts, in its
    database thread, it closes the batch, and `fetch` reads every key of it at once.

    Read-your-writes holds as for a unit of its own: each key's statement runs in a
    snapshot taken after the call was made, so it sees all that was committed before. The
    batch is closed before `fetch` runs; and where its database thread's turn may already
    have taken the snapshot it shares (a unit ran before this one in the turn, and a call
    joined the batch after the turn was handed over), a fresh one is taken first (see
    `_snapshot_from_now`).

    The opener waits for the unit itself, the others each on a future of their own: no task
    per call, nor per batch. A caller that is cancelled leaves the batch to the others; when
    it is the opener, a task reads the batch again for them (in a snapshot taken after all
    of their calls). When the unit fails, every caller of that batch gets its error, and the
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
        self._together = False
        """Whether the last batch read held more than one key. While calls overlap, an opener
        lets one turn of the loop pass before it hands its unit over, so that the calls of
        that turn join (at 32 callers, batches of 32 rather than ~20); calls made one at a
        time, whose batches hold one key, are spared that turn (~15 µs each)."""
        self._rescues: set[asyncio.Task[None]] = set()

    async def get(self, key: K) -> V | None:
        """The value of `key`, or None where there is none."""
        batch = self._open
        waiter: asyncio.Future[V | None] | None = None
        with self._lock:
            if batch is not None and not batch.closed and len(batch.keys) < self._limit:
                waiter = asyncio.get_running_loop().create_future()
                batch.keys.append(key)
                batch.waiters.append(waiter)
        if waiter is not None:
            return await waiter
        batch = self._open = _Batch(key)
        unit = functools.partial(self._unit, batch)
        try:
            if self._together:
                # Calls overlap: those of this turn of the loop join before the handover.
                await asyncio.sleep(0)
                batch.handed = len(batch.keys)  # none is added before the handover
            found = await self._reader.read(unit)
        except asyncio.CancelledError:
            self._rescue(batch)
            raise
        except BaseException as error:
            self._fail(batch, error)
            raise
        self._answer(batch, found)
        return found.get(key)

    def _unit(self, batch: _Batch[K, V], conn: Connection) -> Mapping[K, V]:
        with self._lock:
            batch.closed = True
        keys = batch.keys  # no key is added any more
        if len(keys) > batch.handed:
            _snapshot_from_now(conn)
        return self._fetch(conn, keys)

    def _answer(self, batch: _Batch[K, V], found: Mapping[K, V]) -> None:
        self._together = len(batch.keys) > 1
        for key, waiter in zip(itertools.islice(batch.keys, 1, None), batch.waiters, strict=True):
            if not waiter.done():  # else its caller was cancelled
                waiter.set_result(found.get(key))

    def _fail(self, batch: _Batch[K, V], error: BaseException) -> None:
        with self._lock:  # its unit may never have started (the database was closed)
            batch.closed = True
        for waiter in batch.waiters:
            if waiter.done():
                continue
            if isinstance(error, Exception):
                waiter.set_exception(error)
            else:
                waiter.cancel()

    def _rescue(self, batch: _Batch[K, V]) -> None:
        """The opener was cancelled, and its unit's result with it: the others' keys are read
        again, by a unit handed over now, after all of their calls."""
        with self._lock:
            batch.closed = True
        if all(waiter.done() for waiter in batch.waiters):
            return
        batch.handed = len(batch.keys)
        task = asyncio.get_running_loop().create_task(self._reread(batch))
        self._rescues.add(task)
        task.add_done_callback(self._rescues.discard)

    async def _reread(self, batch: _Batch[K, V]) -> None:
        try:
            found = await self._reader.read(functools.partial(self._unit, batch))
        except BaseException as error:
            self._fail(batch, error)
            if not isinstance(error, Exception):
                raise
            return
        self._answer(batch, found)


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
    Outside a transaction each statement reads a snapshot of its own: nothing to do.
    """
    dbapi: Any = conn.connection.dbapi_connection
    try:
        if conn.dialect.name == "postgresql":
            if dbapi.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                dbapi.rollback()
        elif dbapi.in_transaction:
            dbapi.rollback()
            dbapi.execute("BEGIN")
    except conn.dialect.loaded_dbapi.Error as error:
        # As SQLAlchemy would raise it: the thread then drops the turn's transaction.
        raise sa.exc.DBAPIError.instance(
            "ROLLBACK", None, error, conn.dialect.loaded_dbapi.Error
        ) from error
