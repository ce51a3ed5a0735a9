"""Database threads: where units of work run, off the event loop.

Each thread owns one connection, kept for its lifetime, and runs the units handed to it
in turn; it sends their results back to the event loop in batches: one wake-up of the
loop for all the units a turn finished, however many. That costs a fraction of
`loop.run_in_executor` with a pool checkout per unit (the executor's per-item futures, a
wake-up of the loop per result, and the pool's checkout, reset and return): the README
has the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine, RootTransaction
from sqlalchemy.exc import SQLAlchemyError

from shop_common.storage.deferral import allow_deferral, send_deferred, transaction_state
from shop_common.storage.prepared import driver_cursor
from shop_common.telemetry import Tracing

T = TypeVar("T")

Work = Callable[[Connection], Any]
Abandoned = Callable[[Any], None] | None
"""Told the result of a unit that committed after its caller gave up (see `submit`)."""
_Unit = tuple[asyncio.AbstractEventLoop, Work, "asyncio.Future[Any]", Abandoned]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None, Abandoned]
_Ran = list[tuple[asyncio.AbstractEventLoop, _Outcome]]

Committed = Callable[[int], None] | None
"""Told how many units each write transaction committed (the commit group's size)."""

_STOP = None

log = logging.getLogger(__name__)

LONG_UNIT_SECONDS = 0.02
"""A unit running this long (a page of history, say) sends the next units to other threads."""


class DatabaseThread:
    """With `group`, the units of one turn share one transaction, each in a savepoint of its
    own: a unit that raises is undone alone, the others commit together (one commit, one
    write of each page touched, for a writer that would otherwise commit every unit). The
    turn is first run with no savepoint; only when one of its units raises is it rolled back
    and run again with them, so the units of such a turn up to the failing one run twice
    (their spans too), the first run undone and never told.

    With `defer` too (a PostgreSQL writer, whose engine sends what was deferred before each
    of SQLAlchemy's statements: `storage.database`), the units of a turn run with no savepoint
    may leave inserts to be sent together (`storage.deferral`), before the commit at the
    latest. An insert that fails when sent fails that first run, most often after every unit
    of the turn ran: then all of them run twice. The statement that sends them belongs to the
    span of the unit whose statement sent them, or to none when the commit does.

    With `shared`, for readers, the units of one turn share one read transaction: one
    snapshot, taken after every one of them was handed over, so each still sees all that
    was committed before it was submitted (two round trips saved per unit on PostgreSQL).

    With `tracing`, a unit submitted within a trace runs as a span of it, in the submitter's
    trace context (`Tracing.unit_of_work`): `span_name`, with `span_attributes`."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        *,
        group: bool = False,
        defer: bool = False,
        shared: bool = False,
        committed: Committed = None,
        tracing: Tracing | None = None,
        span_name: str = "db",
        span_attributes: dict[str, str] | None = None,
    ) -> None:
        self._engine = engine
        self._name = name
        self._group = group
        self._defer = defer
        self._shared = shared
        # PostgreSQL takes several statements in one round trip (sqlite3 takes one a call).
        self._next_savepoint = (
            "RELEASE SAVEPOINT unit; SAVEPOINT unit"
            if engine.dialect.name == "postgresql"
            else None
        )
        self._committed = committed
        self._tracing = tracing
        self._span = span_name
        self._span_attributes = span_attributes or {}
        self._units: queue.SimpleQueue[_Unit | None] = queue.SimpleQueue()
        self.queued = 0
        """Units handed over and not yet answered by the thread (read and written on the
        loop only; one loop per thread, in practice)."""
        self._thread: threading.Thread | None = None
        self._closed = False
        self._unit_started = 0.0
        """When the unit in progress started (0: none); set by the thread, read on the loop."""

    def stuck(self, now: float) -> bool:
        """Whether the unit in progress has run longer than LONG_UNIT_SECONDS."""
        started = self._unit_started
        return started != 0.0 and now - started > LONG_UNIT_SECONDS

    def submit(
        self, work: Callable[[Connection], T], abandoned: Callable[[T], None] | None = None
    ) -> asyncio.Future[T]:
        """Runs `work(conn)` in one transaction on this thread; commits unless it raises.

        A unit handed over runs even if its caller gives up (cancels the future): it may
        commit all the same, and `abandoned`, if given, is then called with its result.
        """
        if self._closed:
            raise RuntimeError("the database is closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        if self._tracing is not None:  # the context is captured here, on the loop
            work = self._tracing.unit_of_work(
                work, self._span, self._span_attributes, (SQLAlchemyError,)
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.queued += 1
        self._units.put((loop, work, future, abandoned))
        return future

    def close(self) -> None:
        """Lets the units already handed over finish, then closes the connection (blocks)."""
        self._closed = True
        if self._thread is not None:
            self._units.put(_STOP)
            self._thread.join()

    def _serve(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                first = self._units.get()
                if first is _STOP:
                    return
                turn = [first]
                with contextlib.suppress(queue.Empty):
                    while (unit := self._units.get_nowait()) is not _STOP:
                        turn.append(unit)
                    self._units.put(_STOP)  # seen: stop after this turn
                if conn is None or conn.closed:
                    conn = self._engine.connect()
                self._answer(self._run(conn, turn))
                self._unit_started = 0.0
        finally:
            if conn is not None:
                conn.close()

    def _run(self, conn: Connection, turn: Sequence[_Unit]) -> _Ran:
        if self._shared and len(turn) > 1:
            return self._run_in_one_snapshot(conn, turn)
        if self._group and len(turn) > 1:
            together = self._run_optimistically(conn, turn)
            return together if together is not None else self._run_together(conn, turn)
        ran: _Ran = []
        for loop, work, future, abandoned in turn:
            self._unit_started = time.monotonic()
            transaction_state(conn).clear()
            try:
                with conn.begin():
                    outcome: _Outcome = (future, work(conn), None, abandoned)
            except BaseException as error:  # handed to the caller, as an executor would
                _reset(conn)
                outcome = (future, None, error, abandoned)
            else:
                if self._committed is not None:
                    self._committed(1)
            ran.append((loop, outcome))
        return ran

    def _run_optimistically(self, conn: Connection, turn: Sequence[_Unit]) -> _Ran | None:
        """The turn's units in one transaction with no savepoint: a savepoint costs a
        statement per unit, and most turns have no unit that fails. None when a unit raised:
        all was rolled back (nothing was committed nor told), and the turn is to run again
        with a savepoint each (`_run_together`), where that unit is undone alone. Its units
        may leave writes to be sent with the next ones' (`storage.deferral`): what fails when
        they are sent fails the turn too."""
        results: list[Any] = []
        try:
            tx = conn.begin()
        except BaseException as error:  # no transaction (the connection is lost, say)
            _reset(conn)
            return [(loop, (future, None, error, a)) for loop, _w, future, a in turn]
        transaction_state(conn).clear()
        if self._defer:
            allow_deferral(conn)
        try:
            for _loop, work, _future, _abandoned in turn:
                self._unit_started = time.monotonic()
                results.append(work(conn))
            send_deferred(conn)
        except BaseException:
            _roll_back(conn, tx)
            return None
        try:
            tx.commit()
        except BaseException as error:  # the commit failed: no unit is kept (none runs again)
            _roll_back(conn, tx)
            _reset(conn)
            return [(loop, (future, None, error, a)) for loop, _w, future, a in turn]
        if self._committed is not None:
            self._committed(len(turn))
        return [
            (loop, (future, result, None, a))
            for (loop, _w, future, a), result in zip(turn, results, strict=True)
        ]

    def _run_together(self, conn: Connection, turn: Sequence[_Unit]) -> _Ran:
        ran: _Ran = []
        try:
            with conn.begin():
                driver = driver_cursor(conn)
                state = transaction_state(conn)
                state.clear()
                for loop, work, future, abandoned in turn:
                    self._unit_started = time.monotonic()
                    before = dict(state)
                    if ran and self._next_savepoint is not None:
                        driver.execute(self._next_savepoint)
                    else:
                        if ran:
                            driver.execute("RELEASE SAVEPOINT unit")
                        driver.execute("SAVEPOINT unit")
                    try:
                        outcome: _Outcome = (future, work(conn), None, abandoned)
                    except BaseException as error:
                        driver.execute("ROLLBACK TO SAVEPOINT unit")
                        state.clear()
                        state.update(before)
                        outcome = (future, None, error, abandoned)
                    ran.append((loop, outcome))
                # The commit releases the last savepoint.
        except BaseException as error:  # the commit failed: no unit is kept
            _reset(conn)
            ran = [(loop, (f, None, e or error, a)) for loop, (f, _r, e, a) in ran]
            ran += [(loop, (f, None, error, a)) for loop, _w, f, a in turn[len(ran) :]]
        else:
            kept = sum(1 for _loop, (_f, _r, error, _a) in ran if error is None)
            if self._committed is not None and kept:
                self._committed(kept)
        return ran

    def _run_in_one_snapshot(self, conn: Connection, turn: Sequence[_Unit]) -> _Ran:
        ran: _Ran = []
        tx: RootTransaction | None = None
        for loop, work, future, abandoned in turn:
            self._unit_started = time.monotonic()
            try:
                if tx is None:
                    tx = conn.begin()
                outcome: _Outcome = (future, work(conn), None, abandoned)
            except BaseException as error:
                outcome = (future, None, error, abandoned)
                if isinstance(error, SQLAlchemyError) or not isinstance(error, Exception):
                    # PostgreSQL refuses every statement after a failed one: the next
                    # units read in a transaction of their own.
                    _roll_back(conn, tx)
                    tx = None
            ran.append((loop, outcome))
        _roll_back(conn, tx)
        return ran

    def _answer(self, ran: _Ran) -> None:
        """One wake-up of each loop waiting (one, in practice) for all it gets."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for loop, outcome in ran:
            by_loop.setdefault(loop, []).append(outcome)
        for loop, outcomes in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(self._settle, outcomes)

    def _settle(self, outcomes: list[_Outcome]) -> None:
        self.queued -= len(outcomes)
        for future, result, error, abandoned in outcomes:
            if future.done():  # the caller gave up (cancelled) while the unit ran
                if abandoned is not None and error is None:
                    try:
                        abandoned(result)
                    except Exception:
                        log.exception("telling of a unit whose caller gave up failed")
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)


def _roll_back(conn: Connection, tx: RootTransaction | None) -> None:
    """Rolls back (a read: nothing to commit); a connection that cannot is replaced."""
    if tx is None:
        return
    try:
        tx.rollback()
    except Exception:
        _reset(conn)


def _reset(conn: Connection) -> None:
    """After a unit failed: no transaction may stay open on a connection the thread keeps,
    whatever SQLAlchemy believes (a COMMIT that fails on SQLite, on a deferred constraint,
    leaves its transaction open). The driver rolls back only what is open."""
    try:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        dbapi.rollback()
    except Exception:
        conn.invalidate()  # a new connection for the next unit


class DatabaseThreads:
    """A few database threads over one engine. Each unit goes to the first thread with fewer
    than `depth` units queued and no long unit in progress, else to the least busy.

    A large depth keeps most of the load on one thread, in large turns (every other thread
    adds handoffs of the GIL, and on PostgreSQL a turn of reads shares one BEGIN and one
    ROLLBACK); the others take over while a long unit runs.
    """

    def __init__(
        self,
        engine: Engine,
        count: int,
        name: str,
        *,
        depth: int,
        group: bool = False,
        defer: bool = False,
        shared: bool = False,
        committed: Committed = None,
        tracing: Tracing | None = None,
        span_name: str = "db",
        span_attributes: dict[str, str] | None = None,
    ) -> None:
        self._threads = [
            DatabaseThread(
                engine,
                f"{name}-{n}",
                group=group,
                defer=defer,
                shared=shared,
                committed=committed,
                tracing=tracing,
                span_name=span_name,
                span_attributes=span_attributes,
            )
            for n in range(count)
        ]
        self._depth = depth

    @property
    def queued(self) -> int:
        """Units handed over and not yet answered, on every thread (safe to read from any
        thread: a sum of ints the loop keeps)."""
        return sum(thread.queued for thread in self._threads)

    def submit(
        self, work: Callable[[Connection], T], abandoned: Callable[[T], None] | None = None
    ) -> asyncio.Future[T]:
        now = time.monotonic()
        for thread in self._threads:
            if thread.queued < self._depth and not thread.stuck(now):
                return thread.submit(work, abandoned)
        return min(self._threads, key=lambda thread: thread.queued).submit(work, abandoned)

    def close(self) -> None:
        for thread in self._threads:
            thread.close()
