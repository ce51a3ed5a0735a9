"""Batched lookups on each backend: concurrent reads by key answered by fewer units than
calls, each its own row; a cancelled caller, a failing batch, the cap; what was written
before a call is seen, also when its batch ran late in a turn whose snapshot was older; and
the one-statement reads by many ids they make."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

import order_svc.schema
import user_svc.schema
from order_svc.domain import LineItem, Money, Order, new_order
from order_svc.ownership import Ownership
from order_svc.store import order_table
from shop_common.domain import ids
from shop_common.storage import (
    BatchedLookup,
    Changelog,
    Database,
    IdempotencyStore,
    UnitOfWork,
    driver_url,
    migrate,
)
from shop_common.storage.batched import MAX_BATCH
from shop_common.storage.database import _sqlite_engine
from shop_common.storage.threads import DatabaseThread
from tests.integration.helpers import user_database
from user_svc.domain import User, new_user
from user_svc.store import user_table

T = TypeVar("T")

CHANGELOG = Changelog(user_svc.schema.changelog)
USERS = user_table(CHANGELOG)


class Harness:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.uow = UnitOfWork(db, CHANGELOG, IdempotencyStore(user_svc.schema.idempotency_keys))
        self.batches: list[list[str]] = []
        """The keys of each batch read, in order."""

    def counting(self, conn: Connection, keys: Sequence[str]) -> dict[str, User]:
        self.batches.append(list(keys))
        return USERS.get_many(conn, keys)

    def lookup(self, **options: Any) -> BatchedLookup[str, User]:
        return BatchedLookup(self.uow, self.counting, **options)

    async def users(self, count: int) -> list[User]:
        drafts = [draft() for _ in range(count)]
        return await self.uow.write(lambda tx: [USERS.insert(tx, d) for d in drafts])


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with user_database(database_url) as db:
        yield Harness(db)


def draft() -> User:
    return new_user(ids.new_id(), f"{ids.new_id()}@example.com", "Ada", datetime.now(UTC))


async def test_concurrent_gets_are_read_together_each_getting_its_own_row(
    harness: Harness,
) -> None:
    stored = await harness.users(40)
    wanted = [u.id for u in stored] + [stored[0].id, stored[1].id]  # two asked twice
    lookup = harness.lookup()
    found = await asyncio.gather(*(lookup.get(key) for key in wanted))
    assert [u.id if u else None for u in found] == wanted
    assert found[0] == stored[0]
    assert len(harness.batches) == 1, "one unit, one statement for all of them"
    assert sorted(harness.batches[0]) == sorted(wanted)


def busy(seconds: float) -> None:
    """The loop busy elsewhere (another request's work) without the GIL: a database thread
    is free meanwhile to start any unit handed over."""
    threading.Event().wait(seconds)


async def test_while_calls_overlap_those_of_one_turn_of_the_loop_share_a_batch(
    harness: Harness,
) -> None:
    """After a batch of several keys, the opener waits one turn of the loop before handing
    its unit over: a call made later in that turn joins it, though the database thread was
    idle and would have started the unit at once."""
    stored = await harness.users(3)
    lookup = harness.lookup()
    together = await asyncio.gather(lookup.get(stored[0].id), lookup.get(stored[1].id))
    assert list(together) == stored[:2]

    async def later_in_the_turn(key: str) -> User | None:
        busy(0.1)
        return await lookup.get(key)

    found = await asyncio.gather(lookup.get(stored[0].id), later_in_the_turn(stored[2].id))
    assert list(found) == [stored[0], stored[2]]
    assert harness.batches[1:] == [[stored[0].id, stored[2].id]]


async def test_an_opener_cancelled_before_it_handed_its_unit_over_leaves_the_others_answered(
    harness: Harness,
) -> None:
    stored = await harness.users(5)
    lookup = harness.lookup()
    assert len(await asyncio.gather(lookup.get(stored[0].id), lookup.get(stored[1].id))) == 2
    harness.batches.clear()
    calls = [asyncio.create_task(lookup.get(u.id)) for u in stored]
    await asyncio.sleep(0)  # the opener waits its turn of the loop; the others have joined
    calls[0].cancel()
    outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert outcomes[1:] == stored[1:]
    assert harness.batches == [[u.id for u in stored]], "read once, for the others"


async def test_missing_ids_give_none(harness: Harness) -> None:
    [there] = await harness.users(1)
    lookup = harness.lookup()
    missing = ids.new_id()
    found = await asyncio.gather(lookup.get(missing), lookup.get(there.id))
    assert list(found) == [None, there]


async def test_later_calls_open_a_new_batch_and_see_new_rows(harness: Harness) -> None:
    lookup = harness.lookup()
    user = draft()
    assert await lookup.get(user.id) is None
    await harness.uow.write(lambda tx: USERS.insert(tx, user))  # acknowledged: then asked
    found = await lookup.get(user.id)
    assert found is not None
    assert found.id == user.id
    assert len(harness.batches) == 2


@pytest.mark.parametrize(
    ("cancelled", "reads"),
    [
        pytest.param(2, 1, id="another caller"),
        # Its unit's result is lost with it: the others' keys are read again.
        pytest.param(0, 2, id="the opener, which runs the unit"),
    ],
)
async def test_a_cancelled_caller_leaves_the_others_answered(
    harness: Harness, cancelled: int, reads: int
) -> None:
    stored = await harness.users(5)
    running, go = threading.Event(), threading.Event()

    def slow(conn: Connection, keys: Sequence[str]) -> dict[str, User]:
        running.set()
        go.wait(10)
        return harness.counting(conn, keys)

    lookup = BatchedLookup(harness.uow, slow)
    calls = [asyncio.create_task(lookup.get(u.id)) for u in stored]
    assert await asyncio.to_thread(running.wait, 10)
    calls[cancelled].cancel()
    await asyncio.sleep(0)
    go.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
    assert isinstance(outcomes[cancelled], asyncio.CancelledError)
    assert [o.id for o in outcomes if isinstance(o, User)] == [
        u.id for n, u in enumerate(stored) if n != cancelled
    ]
    assert len(harness.batches) == reads


async def test_a_failing_batch_fails_each_of_its_callers_and_the_next_batch_works(
    harness: Harness,
) -> None:
    stored = await harness.users(4)
    failures = [RuntimeError("the read failed")]

    def failing_once(conn: Connection, keys: Sequence[str]) -> dict[str, User]:
        if failures:
            raise failures.pop()
        return harness.counting(conn, keys)

    lookup = BatchedLookup(harness.uow, failing_once)
    outcomes = await asyncio.gather(*(lookup.get(u.id) for u in stored), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes), outcomes
    again = await asyncio.gather(*(lookup.get(u.id) for u in stored))
    assert again == stored
    assert len(harness.batches) == 1


async def test_a_statement_that_fails_reaches_every_caller_of_its_batch(
    harness: Harness,
) -> None:
    """As a database refuses it (here: a table that does not exist), through the read path."""
    [user] = await harness.users(1)
    missing = sa.table("no_such_table", sa.column("id"))

    def broken(conn: Connection, keys: Sequence[str]) -> dict[str, Any]:
        conn.execute(sa.select(missing.c.id).where(missing.c.id.in_(keys))).all()
        return {}

    lookup = BatchedLookup(harness.uow, broken)
    outcomes = await asyncio.gather(
        *(lookup.get(user.id) for _ in range(4)), return_exceptions=True
    )
    assert all(isinstance(o, sa.exc.DBAPIError) for o in outcomes), outcomes
    assert await harness.lookup().get(user.id) == user, "the reader's connection still works"


async def test_a_closed_database_fails_the_callers_and_leaves_none_waiting(
    harness: Harness,
) -> None:
    lookup = harness.lookup()
    await harness.db.close()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(lookup.get(ids.new_id()) for _ in range(3)), return_exceptions=True), 10
    )
    assert all(isinstance(o, RuntimeError) for o in outcomes), outcomes


async def test_a_full_batch_makes_the_next_call_open_another(harness: Harness) -> None:
    stored = await harness.users(25)
    lookup = harness.lookup(limit=10)
    found = await asyncio.gather(*(lookup.get(u.id) for u in stored))
    assert found == stored
    assert [len(b) for b in harness.batches] == [10, 10, 5]


async def test_batches_hold_at_most_max_batch_keys(harness: Harness) -> None:
    stored = await harness.users(MAX_BATCH + 20)
    lookup = harness.lookup()
    found = await asyncio.gather(*(lookup.get(u.id) for u in stored))
    assert found == stored
    assert [len(b) for b in harness.batches] == [MAX_BATCH, 20]


# -- read-your-writes in a turn whose snapshot was taken before the call ---------------------


def reader_engine(url: str) -> Engine:
    """A reader's engine as `Database` makes it: deferred BEGIN on SQLite, REPEATABLE READ
    on PostgreSQL (psycopg begins at the first statement)."""
    parsed = driver_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, "BEGIN", pool_size=1)
    return sa.create_engine(parsed, pool_size=1, isolation_level="REPEATABLE READ")


class OneReader:
    """Reads on one database thread of shared turns, as `Database.read` runs them, so that
    the test decides which units make a turn."""

    def __init__(self, engine: Engine) -> None:
        self.thread = DatabaseThread(engine, "test-read", shared=True)

    def read(self, work: Callable[[Connection], T], /) -> Awaitable[T]:
        return self.thread.submit(work)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("never happened")


async def test_a_call_joining_a_batch_late_in_a_turn_sees_what_was_written_before_it(
    harness: Harness,
) -> None:
    """The turn [peek, batch]: peek takes the turn's snapshot; then a user is written, and
    only then is it asked for, joining the batch, which has not started yet. The batch must
    not answer from peek's snapshot, which predates the write."""
    [first] = await harness.users(1)
    engine = reader_engine(str(harness.db.url.render_as_string(hide_password=False)))
    reader = OneReader(engine)
    lookup = BatchedLookup(reader, harness.counting)
    holding, release_hold = threading.Event(), threading.Event()
    snapshot_taken, release_peek = threading.Event(), threading.Event()

    def hold(_conn: Connection) -> None:  # keeps the thread busy while the next turn queues
        holding.set()
        release_hold.wait(10)

    def peek(conn: Connection) -> User | None:
        found = USERS.get(conn, first.id)  # takes the turn's snapshot
        snapshot_taken.set()
        release_peek.wait(10)
        return found

    try:
        held = reader.read(hold)
        assert await asyncio.to_thread(holding.wait, 10)
        peeked = reader.read(peek)
        early = asyncio.create_task(lookup.get(first.id))
        await until(lambda: reader.thread.queued == 3)  # hold, peek, the batch's unit
        release_hold.set()
        assert await asyncio.to_thread(snapshot_taken.wait, 10)
        written = draft()
        await harness.uow.write(lambda tx: USERS.insert(tx, written))
        late = asyncio.create_task(lookup.get(written.id))
        await asyncio.sleep(0.01)
        assert reader.thread.queued == 2, "joined the batch queued behind peek, not a new one"
        release_peek.set()
        await held
        assert await peeked == first
        assert await early == first
        found = await late
        assert found is not None, "a write acknowledged before the call was not seen"
        assert found.id == written.id
        assert harness.batches == [[first.id, written.id]]
    finally:
        release_hold.set()
        release_peek.set()
        await asyncio.to_thread(reader.thread.close)
        engine.dispose()


# -- reads by many ids in one statement -------------------------------------------------------


async def test_get_many_reads_the_rows_found_by_id(harness: Harness) -> None:
    stored = await harness.users(3)
    missing = ids.new_id()
    wanted = [stored[0].id, missing, stored[1].id, stored[0].id]
    found = await harness.db.read(lambda conn: USERS.get_many(conn, wanted))
    assert found == {stored[0].id: stored[0], stored[1].id: stored[1]}
    assert await harness.db.read(lambda conn: USERS.get_many(conn, [])) == {}
    longer = [stored[2].id + "0"]  # cast to VARCHAR(36), it would find stored[2]
    assert await harness.db.read(lambda conn: USERS.get_many(conn, longer)) == {}


async def test_get_many_reads_more_ids_than_sqlite_binds_parameters(harness: Harness) -> None:
    stored = await harness.users(10)
    wanted = [u.id for u in stored] + [ids.new_id() for _ in range(33_000)]
    found = await harness.db.read(lambda conn: USERS.get_many(conn, wanted))
    assert found == {u.id: u for u in stored}


@pytest.fixture
async def order_db(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    try:
        await migrate(db, order_svc.schema.MIGRATIONS)
        yield db
    finally:
        await db.close()


async def test_orders_are_read_by_many_ids_with_their_owners(order_db: Database) -> None:
    changelog = Changelog(order_svc.schema.changelog)
    uow = UnitOfWork(order_db, changelog, IdempotencyStore(order_svc.schema.idempotency_keys))
    orders = order_table(changelog)
    owned_user, unseen_user = ids.new_id(), ids.new_id()
    known = order_svc.schema.known_users
    await order_db.write(
        lambda conn: conn.execute(
            known.insert(), [{"id": owned_user, "revision": 1, "deleted": False, "subject": "s"}]
        )
    )

    def place(user_id: str) -> Order:
        items = [LineItem("TEA-1", 1, Money("EUR", 3_000_000_000))]
        return new_order(ids.new_id(), user_id, items, datetime.now(UTC))

    owned, unseen = place(owned_user), place(unseen_user)
    await uow.write(lambda tx: [orders.insert(tx, owned), orders.insert(tx, unseen)])
    missing = ids.new_id()
    wanted = [owned.id, unseen.id, missing, owned.id]
    found = await order_db.read(lambda conn: Ownership().orders(conn, wanted))
    assert {k: (o.id, o.user_id, owner) for k, (o, owner) in found.items()} == {
        owned.id: (owned.id, owned_user, "s"),
        unseen.id: (unseen.id, unseen_user, None),
    }
    by_id = await order_db.read(lambda conn: orders.get_many(conn, wanted))
    assert sorted(by_id) == sorted([owned.id, unseen.id])
    assert by_id[owned.id].items == owned.items
