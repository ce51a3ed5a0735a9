"""The storage engine: one code path over SQLite (embedded default) and PostgreSQL.

SQLAlchemy Core on plain (synchronous) connections, every unit of work run whole in a
database thread (see `storage.threads`), so no driver call blocks the loop (cheaper than
SQLAlchemy's asyncio layer: the README has the figures). SQLite: WAL mode; one writer
thread and connection whose transactions open with BEGIN IMMEDIATE, so writers queue
instead of failing on a lock upgrade, and a few readers. PostgreSQL (psycopg) alike: one
writer thread and connection whose transactions open by taking the writer lock (an advisory
lock, in the same round trip as BEGIN), so that the writers of every replica queue on one
lock taken before any other; reads in REPEATABLE READ see one snapshot.

On both, writers are serialized whole: a writer's turn of units commits together (one
commit, one flush of the log, for the whole turn; see `storage.threads`), and no order of
row locks between writers can deadlock, since each takes the writer lock first.

Maintenance (compaction: removing history nobody may read any more) is a write of its own
kind (`maintain`): on PostgreSQL it runs on a connection of its own under a lock of its own
(the replicas' maintenance takes turns), not the writer lock, so that writers never wait for
its units, nor their commits; what it removes no writer touches, and the point it records
only moves forward. On SQLite, which writes one
transaction at a time anyway, it goes through the writer like any write.
"""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from shop_common.process import private_dir, private_file
from shop_common.storage.deferral import send_deferred
from shop_common.storage.prepared import driver_cursor
from shop_common.storage.threads import DatabaseThreads
from shop_common.telemetry import StorageMetrics, Tracing

T = TypeVar("T")

_SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=10000",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
_WAL_SWITCH_SECONDS = 10.0
READERS = 4
READ_DEPTH = 64
WRITER_LOCK_KEY = 0x5E0B_0002
"""The advisory lock every PostgreSQL write transaction takes first (one per database: the
replicas of a service share it; a migration takes its own lock after it)."""
_POSTGRES_BEGIN_WRITE = f"BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK_KEY})"
MAINTAINER_LOCK_KEY = 0x5E0B_0003
"""The advisory lock every PostgreSQL maintenance transaction (`Database.maintain`) takes
first: the replicas' compactions take turns, never the writers' lock."""
_POSTGRES_BEGIN_MAINTAIN = f"BEGIN; SELECT pg_advisory_xact_lock({MAINTAINER_LOCK_KEY})"


def driver_url(url: str) -> URL:
    """`sqlite:///…` and `postgresql://…` with the driver this module uses filled in."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    raise ValueError(f"unsupported database URL {parsed.render_as_string()!r}")


def kind_of(url: str) -> str:
    """`sqlite` or `postgresql`: the database behind `url` (the `database` label of the
    storage metrics)."""
    return driver_url(url).get_backend_name()


def _sqlite_engine(url: URL, begin: str, pool_size: int) -> Engine:
    engine = sa.create_engine(
        url, pool_size=pool_size, max_overflow=0, connect_args={"check_same_thread": False}
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        for pragma in _SQLITE_PRAGMAS:
            dbapi_connection.execute(pragma)
        _enable_wal(dbapi_connection)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Straight to the driver: exec_driver_sql costs measurably more per transaction.
        connection.connection.driver_connection.execute(begin)  # type: ignore[union-attr]

    return engine


def _postgres_writer(url: URL, begin: str = _POSTGRES_BEGIN_WRITE) -> Engine:
    """The writer's engine (or the maintainer's, with its own lock): its transactions open
    with BEGIN and the lock, in one round trip (psycopg in autocommit sends no BEGIN of its
    own; COMMIT and ROLLBACK it sends whenever a transaction is open)."""
    engine = sa.create_engine(url, pool_size=1, max_overflow=0, isolation_level="AUTOCOMMIT")

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        driver_cursor(connection).execute(begin)

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _before(connection: Connection, *_statement: Any) -> None:
        # A statement sees what the units before it wrote (`storage.deferral`): the writer's
        # thread lets its units defer inserts (`DatabaseThread(defer=True)`) for this.
        send_deferred(connection)

    return engine


def _enable_wal(dbapi_connection: Any) -> None:
    # Switching a fresh file to WAL ignores busy_timeout: while another process (a replica
    # migrating at the same time) holds a write lock it fails at once, so retry for a while.
    give_up = time.monotonic() + _WAL_SWITCH_SECONDS
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > give_up:
                raise
            time.sleep(0.005)  # in a database thread, never on the event loop


class Database:
    """With `tracing`, each unit of work run within a trace is a span of it ("db write",
    "db read"; `db.system`), current in its database thread while it runs."""

    def __init__(
        self, url: str, metrics: StorageMetrics | None = None, *, tracing: Tracing | None = None
    ) -> None:
        """`metrics`, if given, records units of work (when metrics are on)."""
        self.url = driver_url(url)
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        self._metrics = metrics
        committed = None if metrics is None else metrics.group.observe
        system = "postgresql" if self.is_postgres else "sqlite"
        write: dict[str, Any] = {
            "tracing": tracing,
            "committed": committed,
            "span_name": "db write",
            "span_attributes": {"db.system": system, "shop.unit_of_work.kind": "write"},
        }
        read: dict[str, Any] = {
            "tracing": tracing,
            "span_name": "db read",
            "span_attributes": {"db.system": system, "shop.unit_of_work.kind": "read"},
        }
        if self.is_postgres:
            self._writer = _postgres_writer(self.url)
            self._reader = sa.create_engine(
                self.url, pool_size=READERS, max_overflow=0, isolation_level="REPEATABLE READ"
            )
        else:
            if self.url.database and self.url.database != ":memory:":
                path = pathlib.Path(self.url.database)
                private_dir(path.parent)
                private_file(path)
                for suffix in ("-wal", "-shm"):  # left by an earlier version, maybe 0644
                    if (kept := path.with_name(path.name + suffix)).exists():
                        private_file(kept)
            self._writer = _sqlite_engine(self.url, "BEGIN IMMEDIATE", pool_size=1)
            self._reader = _sqlite_engine(self.url, "BEGIN", pool_size=READERS)
        # The one writer: its turn's units commit together. Readers: a turn's units share one
        # read transaction (one snapshot, taken after all of them were handed over).
        self._write_threads = DatabaseThreads(
            self._writer, 1, "db-write", depth=1, group=True, defer=self.is_postgres, **write
        )
        self._read_threads = DatabaseThreads(
            self._reader, READERS, "db-read", depth=READ_DEPTH, shared=True, **read
        )
        self._maintainer: Engine | None = None
        self._maintain_threads = self._write_threads
        if self.is_postgres:
            self._maintainer = _postgres_writer(self.url, _POSTGRES_BEGIN_MAINTAIN)
            self._maintain_threads = DatabaseThreads(
                self._maintainer, 1, "db-maintain", depth=1, **(write | {"committed": None})
            )
        if metrics is not None:
            metrics.read_from(writer_queue=lambda: self._write_threads.queued)

    @property
    def libpq_dsn(self) -> str:
        """The PostgreSQL URL as libpq takes it (no `+driver`), for direct psycopg use."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def write(
        self, work: Callable[[Connection], T], *, abandoned: Callable[[T], None] | None = None
    ) -> T:
        """Runs `work` in one transaction that may write; commits unless it raises.

        A caller cancelled (its client left, its deadline passed) does not stop a unit
        already handed over: it may still commit. `abandoned` is then called with its result
        once it has, so that what it wrote is not left unannounced.
        """
        if self._metrics is None:
            return await self._write_threads.submit(work, abandoned)
        started = time.perf_counter()
        try:
            return await self._write_threads.submit(work, abandoned)
        finally:
            self._metrics.write.observe(time.perf_counter() - started)

    async def maintain(self, work: Callable[[Connection], T]) -> T:
        """Runs `work`, which removes what no reader may ask for any more, in one transaction:
        beside the writers on PostgreSQL (without the writer lock), as a write on SQLite. It
        must touch no row a writer may write, and record nothing that can move backwards."""
        return await self._maintain_threads.submit(work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        """Runs `work` in one read transaction: one consistent snapshot for its statements."""
        if self._metrics is None:
            return await self._read_threads.submit(work)
        started = time.perf_counter()
        try:
            return await self._read_threads.submit(work)
        finally:
            self._metrics.read.observe(time.perf_counter() - started)

    async def close(self) -> None:
        """Waits for units of work in flight, then closes every connection."""

        def close_all() -> None:
            if self._maintainer is not None:
                self._maintain_threads.close()
                self._maintainer.dispose()
            self._write_threads.close()
            self._read_threads.close()
            self._writer.dispose()
            self._reader.dispose()

        await asyncio.to_thread(close_all)
