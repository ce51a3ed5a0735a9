"""Database threads: units run off the loop, one transaction each, answered in batches."""

from __future__ import annotations

import asyncio
import pathlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shop_common.storage import Database, driver_url
from shop_common.storage.database import _sqlite_engine
from shop_common.storage.threads import LONG_UNIT_SECONDS, DatabaseThread, DatabaseThreads

T = TypeVar("T")


@pytest.fixture
def engine(tmp_path: pathlib.Path) -> Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'threads.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    return engine


@pytest.fixture
async def thread(engine: Engine) -> AsyncIterator[DatabaseThread]:
    thread = DatabaseThread(engine, "test-db")
    yield thread
    await asyncio.to_thread(thread.close)


def insert(n: int) -> Callable[[Connection], int]:
    def work(conn: Connection) -> int:
        conn.exec_driver_sql(f"INSERT INTO t VALUES ({n})")
        return n

    return work


def sleep_then(seconds: float, then: Callable[[], T]) -> Callable[[Connection], T]:
    def work(_conn: Connection) -> T:
        time.sleep(seconds)
        return then()

    return work


def thread_name() -> str:
    return threading.current_thread().name


def count(conn: Connection) -> int:
    return int(conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one())


async def test_many_units_at_once_each_get_their_own_result(thread: DatabaseThread) -> None:
    results = await asyncio.gather(*(thread.submit(insert(n)) for n in range(200)))
    assert results == list(range(200))
    assert await thread.submit(count) == 200
    assert thread.queued == 0


async def test_a_failing_unit_rolls_back_alone_and_raises_to_its_caller(
    thread: DatabaseThread,
) -> None:
    def half_then_fail(conn: Connection) -> None:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        raise ValueError("refused")

    outcomes = await asyncio.gather(
        thread.submit(insert(0)),
        thread.submit(half_then_fail),
        thread.submit(insert(2)),
        return_exceptions=True,
    )
    assert outcomes[0] == 0
    assert outcomes[2] == 2
    assert isinstance(outcomes[1], ValueError)
    assert str(outcomes[1]) == "refused"
    rows = await thread.submit(lambda conn: conn.exec_driver_sql("SELECT n FROM t").all())
    assert sorted(n for (n,) in rows) == [0, 2]


async def test_units_run_off_the_event_loop(thread: DatabaseThread) -> None:
    loop_thread = threading.get_ident()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticking = asyncio.create_task(tick())
    try:
        ran_in = await thread.submit(sleep_then(0.2, threading.get_ident))
    finally:
        ticking.cancel()
    assert ran_in != loop_thread
    assert ticks >= 10  # the loop went on while the unit slept


async def test_a_caller_that_gives_up_does_not_disturb_the_others(thread: DatabaseThread) -> None:
    slow = thread.submit(sleep_then(0.1, lambda: None))
    after = thread.submit(insert(7))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slow, 0.01)
    assert await after == 7
    await asyncio.sleep(0)  # the cancelled unit's answer is dropped, not raised
    assert thread.queued == 0


async def test_close_finishes_the_units_handed_over_then_refuses_more(engine: Engine) -> None:
    thread = DatabaseThread(engine, "test-db")
    pending = [thread.submit(insert(n)) for n in range(50)]
    await asyncio.to_thread(thread.close)
    assert await asyncio.gather(*pending) == list(range(50))
    with pytest.raises(RuntimeError, match="closed"):
        thread.submit(count)
    with engine.connect() as conn:
        assert count(conn) == 50


async def test_a_long_unit_sends_the_next_units_to_another_thread(engine: Engine) -> None:
    threads = DatabaseThreads(engine, 2, "test-db", depth=64)
    try:
        names = [threads.submit(lambda _c: thread_name()) for _ in range(3)]
        assert set(await asyncio.gather(*names)) == {"test-db-0"}  # idle: the first thread
        long = threads.submit(sleep_then(LONG_UNIT_SECONDS * 10, lambda: "long"))
        await asyncio.sleep(LONG_UNIT_SECONDS * 3)
        beside = await threads.submit(lambda _c: thread_name())
        assert beside == "test-db-1"
        assert await long == "long"
    finally:
        await asyncio.to_thread(threads.close)


async def test_depth_one_spreads_units_over_the_threads(engine: Engine) -> None:
    threads = DatabaseThreads(engine, 3, "test-db", depth=1)
    try:
        names = [threads.submit(sleep_then(0.05, thread_name)) for _ in range(3)]
        assert sorted(await asyncio.gather(*names)) == ["test-db-0", "test-db-1", "test-db-2"]
    finally:
        await asyncio.to_thread(threads.close)


async def test_database_reads_see_what_writes_committed(tmp_path: pathlib.Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        await db.write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (n INTEGER)"))
        for n in range(20):
            await db.write(insert(n))
            assert await db.read(count) == n + 1
    finally:
        await db.close()


@pytest.mark.parametrize("outcome", ["commits", "raises"])
async def test_a_write_whose_caller_left_is_announced_once_it_has_committed(
    tmp_path: pathlib.Path, outcome: str
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    running, release = threading.Event(), threading.Event()

    def slow_insert(conn: Connection) -> int:
        running.set()
        release.wait(10)
        if outcome == "raises":
            raise ValueError("refused")
        return insert(7)(conn)

    announced: list[int] = []
    try:
        await db.write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (n INTEGER)"))
        caller = asyncio.create_task(db.write(slow_insert, abandoned=announced.append))
        assert await asyncio.to_thread(running.wait, 10)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert announced == []  # not before the unit has finished
        release.set()
        # The unit's outcome reaches the loop, then a read queued after it: the order is kept.
        rows = await db.write(count)
        await asyncio.sleep(0)  # the announcement is a callback of the unit's future
        assert (rows, announced) == ((1, [7]) if outcome == "commits" else (0, []))
    finally:
        await db.close()


def writer_engine(url: str) -> Engine:
    """As the services' writer: on SQLite, BEGIN IMMEDIATE and foreign keys on."""
    parsed = driver_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, "BEGIN IMMEDIATE", pool_size=1)
    return sa.create_engine(parsed)


async def test_a_turn_of_units_commits_once_and_a_failing_unit_is_undone_alone(
    database_url: str,
) -> None:
    engine = writer_engine(database_url)
    commits = 0

    def counted(_conn: Connection) -> None:
        nonlocal commits
        commits += 1

    sa.event.listen(engine, "commit", counted)
    thread = DatabaseThread(engine, "test-db", group=True)
    try:
        await thread.submit(lambda conn: conn.exec_driver_sql("CREATE TABLE t (n INTEGER)"))
        busy = thread.submit(sleep_then(0.2, lambda: None))
        await asyncio.sleep(0.05)  # the thread has taken it: the others queue up meanwhile

        def half_then_fail(conn: Connection) -> None:
            conn.exec_driver_sql("INSERT INTO t VALUES (100)")
            raise ValueError("refused")

        units = [thread.submit(insert(n)) for n in range(5)]
        failing = thread.submit(half_then_fail)
        units += [thread.submit(insert(n)) for n in range(10, 13)]
        await busy
        assert await asyncio.gather(*units) == [0, 1, 2, 3, 4, 10, 11, 12]
        with pytest.raises(ValueError, match="refused"):
            await failing
        assert commits == 3  # the table, the busy unit, then the nine others together
        rows = await thread.submit(lambda conn: conn.exec_driver_sql("SELECT n FROM t").all())
        assert sorted(n for (n,) in rows) == [0, 1, 2, 3, 4, 10, 11, 12]
    finally:
        await asyncio.to_thread(thread.close)
        engine.dispose()


def late_failing_engine(tmp_path: pathlib.Path) -> Engine:
    """A writer engine over `t` and `child`, whose foreign key is checked at commit: a row
    in `child` with no parent fails the whole transaction, late."""
    engine = writer_engine(f"sqlite:///{tmp_path / 'fk.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE child (n INTEGER REFERENCES t (n) DEFERRABLE INITIALLY DEFERRED)"
        )
    return engine


async def test_when_a_shared_commit_fails_no_unit_of_the_turn_is_told_it_succeeded(
    tmp_path: pathlib.Path,
) -> None:
    thread = DatabaseThread(late_failing_engine(tmp_path), "test-db", group=True)
    try:
        await thread.submit(count)  # the thread is up: the next units queue behind `busy`
        busy = thread.submit(sleep_then(0.2, lambda: None))
        await asyncio.sleep(0.05)
        fine = [thread.submit(insert(n)) for n in range(3)]
        orphan = thread.submit(lambda conn: conn.exec_driver_sql("INSERT INTO child VALUES (99)"))
        await busy
        outcomes = await asyncio.gather(*fine, orphan, return_exceptions=True)
        assert all(isinstance(o, sa.exc.IntegrityError) for o in outcomes), outcomes
        assert await thread.submit(count) == 0
    finally:
        await asyncio.to_thread(thread.close)


async def test_a_unit_whose_commit_fails_leaves_the_connection_usable(
    tmp_path: pathlib.Path,
) -> None:
    thread = DatabaseThread(late_failing_engine(tmp_path), "test-db")
    try:
        with pytest.raises(sa.exc.IntegrityError):
            await thread.submit(lambda conn: conn.exec_driver_sql("INSERT INTO child VALUES (9)"))
        assert await thread.submit(insert(1)) == 1
        assert await thread.submit(count) == 1
    finally:
        await asyncio.to_thread(thread.close)


async def test_a_turn_runs_once_unless_a_unit_fails_then_again_a_savepoint_each(
    database_url: str,
) -> None:
    """A turn first runs with no savepoint (one statement less per unit); when a unit raises,
    all of it is rolled back and it runs again, a savepoint each: only then do units run twice
    (those up to the failing one), and only the second run is kept and told."""
    engine = writer_engine(database_url)
    thread = DatabaseThread(engine, "test-db", group=True)
    runs: dict[int, int] = {}

    def counted(n: int, fail: bool = False) -> Callable[[Connection], int]:
        def work(conn: Connection) -> int:
            runs[n] = runs.get(n, 0) + 1
            conn.exec_driver_sql(f"INSERT INTO t VALUES ({n})")
            if fail:
                raise ValueError("refused")
            return n

        return work

    async def turn(*units: Callable[[Connection], int]) -> list[int | BaseException]:
        busy = thread.submit(sleep_then(0.2, lambda: 0))
        await asyncio.sleep(0.05)  # the thread has taken it: the others queue up meanwhile
        futures = [thread.submit(unit) for unit in units]
        await busy
        return list(await asyncio.gather(*futures, return_exceptions=True))

    try:
        await thread.submit(lambda conn: conn.exec_driver_sql("CREATE TABLE t (n INTEGER)"))
        assert await turn(counted(1), counted(2), counted(3)) == [1, 2, 3]
        assert runs == {1: 1, 2: 1, 3: 1}
        outcomes = await turn(counted(4), counted(5, fail=True), counted(6))
        assert outcomes[0::2] == [4, 6]
        assert isinstance(outcomes[1], ValueError)
        assert runs == {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 1}  # 6 came after the failure
        rows = await thread.submit(lambda conn: conn.exec_driver_sql("SELECT n FROM t").all())
        assert sorted(n for (n,) in rows) == [1, 2, 3, 4, 6]
    finally:
        await asyncio.to_thread(thread.close)
        engine.dispose()


async def test_a_turn_whose_transaction_cannot_begin_fails_whole_and_the_thread_goes_on(
    tmp_path: pathlib.Path,
) -> None:
    """BEGIN itself fails (on PostgreSQL it also takes the writer lock: a lost connection,
    say): every unit of the turn is told, and the thread serves the next units."""
    engine = writer_engine(f"sqlite:///{tmp_path / 'begin.db'}")
    failing = threading.Event()

    def begin(_conn: Connection) -> None:
        if failing.is_set():
            failing.clear()
            raise sa.exc.OperationalError("BEGIN", None, Exception("no transaction today"))

    sa.event.listen(engine, "begin", begin)
    thread = DatabaseThread(engine, "test-db", group=True)
    try:
        await thread.submit(lambda conn: conn.exec_driver_sql("CREATE TABLE t (n INTEGER)"))
        busy = thread.submit(sleep_then(0.2, failing.set))
        await asyncio.sleep(0.05)  # the thread has taken it: the others queue up meanwhile
        units = [thread.submit(insert(n)) for n in range(3)]
        await busy
        outcomes = await asyncio.gather(*units, return_exceptions=True)
        assert all(isinstance(o, sa.exc.OperationalError) for o in outcomes), outcomes
        assert await thread.submit(insert(7)) == 7
        assert await thread.submit(count) == 1
    finally:
        await asyncio.to_thread(thread.close)
        engine.dispose()
