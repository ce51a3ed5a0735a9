"""Storage on each backend: migrations (once, under a lock) and the changelog of writes."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import pathlib
import sqlite3
import stat
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import orjson
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

import order_svc.schema
import shop_common.feed.tail
import user_svc.schema
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.domain import ids
from shop_common.feed import Feed, FeedSettings
from shop_common.storage import (
    Changelog,
    ChangeType,
    Compacted,
    Database,
    IdempotencyStore,
    Migration,
    UnitOfWork,
    migrate,
)
from shop_common.storage.database import WRITER_LOCK_KEY
from tests.integration.helpers import create_user, order_request
from tests.support import (
    Databases,
    PostgresDatabases,
    Services,
    channel_to,
    eventually,
    running_user_svc,
)
from user_svc.domain import User, new_user
from user_svc.store import UserRows, user_table

SCHEMAS = [
    pytest.param(user_svc.schema, id="users"),
    pytest.param(order_svc.schema, id="orders"),
]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.close()


def table_names(conn: Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_second_migration_run_applies_nothing(db: Database, schema: Any) -> None:
    assert await migrate(db, schema.MIGRATIONS) == [m.version for m in schema.MIGRATIONS]
    assert await migrate(db, schema.MIGRATIONS) == []
    tables = await db.read(table_names)
    assert set(schema.metadata.tables) | {"schema_migrations"} <= tables


def indexes(conn: Connection, tables: list[str]) -> dict[str, set[tuple[Any, ...]]]:
    """Each table's indexes (name and columns), but those of unique constraints."""
    inspector = sa.inspect(conn)
    return {
        t: {
            (i["name"], *i["column_names"])
            for i in inspector.get_indexes(t)
            if "duplicates_constraint" not in i
        }
        for t in tables
    }


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_migrated_indexes_are_those_the_tables_declare(db: Database, schema: Any) -> None:
    """The tables the code queries describe the migrated database: each migration that
    changes an index changes the table's declaration too (the plans' tests rely on them)."""
    await migrate(db, schema.MIGRATIONS)
    tables = sorted(schema.metadata.tables)
    declared = {
        t: {(i.name, *(c.name for c in i.columns)) for i in schema.metadata.tables[t].indexes}
        for t in tables
    }
    assert await db.read(lambda conn: indexes(conn, tables)) == declared


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_concurrent_migrations_apply_once(databases: Databases, schema: Any) -> None:
    # Replicas starting together on a fresh database: the race is short, so it is run
    # several times, each on a new database.
    for _ in range(3 if databases.is_postgres else 40):
        url = await databases.new()
        migrators = [Database(url) for _ in range(3)]
        try:
            results = await asyncio.gather(*(migrate(d, schema.MIGRATIONS) for d in migrators))
            assert sorted(results) == [[], [], [m.version for m in schema.MIGRATIONS]]
            versions = await migrators[0].read(
                lambda conn: conn.execute(sa.text("SELECT version FROM schema_migrations")).all()
            )
            assert [v for (v,) in versions] == [m.version for m in schema.MIGRATIONS]
        finally:
            for migrator in migrators:
                await migrator.close()


async def test_migration_on_a_fresh_sqlite_file_waits_for_another_writer(
    tmp_path: pathlib.Path,
) -> None:
    # Another replica is inside its write transaction on a database that is not in WAL mode
    # yet: this one must queue behind it (busy timeout), not fail with "database is locked".
    path = tmp_path / "fresh.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("CREATE TABLE other_replica (x INTEGER)")
        db = Database(f"sqlite:///{path}")
        try:
            migrating = asyncio.create_task(migrate(db, user_svc.schema.MIGRATIONS))
            # Long enough for a migrator that gives up at once to have done so.
            done, _ = await asyncio.wait({migrating}, timeout=0.5)
            assert not done, f"gave up instead of waiting: {migrating.exception()!r}"
            other.execute("COMMIT")
            assert await migrating == [m.version for m in user_svc.schema.MIGRATIONS]
        finally:
            await db.close()
    finally:
        other.close()


async def test_users_stored_before_owners_were_recorded_have_none(db: Database) -> None:
    """Migration 3 adds the owning subject to a users table that already holds users."""
    released = [m for m in user_svc.schema.MIGRATIONS if m.version < 3]
    assert await migrate(db, released) == [1, 2]
    await db.write(
        lambda conn: conn.execute(
            sa.text(
                "INSERT INTO users (id, email, email_key, display_name, create_time_us,"
                " update_time_us, revision) VALUES ('u1', 'A@x.org', 'a@x.org', 'A', 1, 1, 1)"
            )
        )
    )
    assert await migrate(db, user_svc.schema.MIGRATIONS) == [3]
    rows = await db.read(
        lambda conn: conn.execute(sa.select(user_svc.schema.users)).mappings().all()
    )
    assert [UserRows().from_row(row).subject for row in rows] == [None]


async def test_new_migrations_apply_after_old_ones(db: Database) -> None:
    meta = sa.MetaData()
    first = sa.Table("first", meta, sa.Column("id", sa.Integer, primary_key=True))
    second = sa.Table("second", meta, sa.Column("id", sa.Integer, primary_key=True))
    one = Migration(1, "first", first.create)
    two = Migration(2, "second", second.create)
    assert await migrate(db, [one]) == [1]
    assert await migrate(db, [one, two]) == [2]
    assert {"first", "second"} <= await db.read(table_names)


async def test_failed_migration_leaves_nothing_half_applied(db: Database) -> None:
    meta = sa.MetaData()
    table = sa.Table("half", meta, sa.Column("id", sa.Integer, primary_key=True))

    def broken(conn: Connection) -> None:
        raise RuntimeError("migration 2 is broken")

    with pytest.raises(RuntimeError, match="broken"):
        await migrate(db, [Migration(1, "half", table.create), Migration(2, "broken", broken)])
    assert "half" not in await db.read(table_names)
    assert await migrate(db, [Migration(1, "half", table.create)]) == [1]


@pytest.mark.parametrize("versions", [[2, 1], [1, 1]])
async def test_migrations_out_of_order_are_refused(db: Database, versions: list[int]) -> None:
    def nothing(conn: Connection) -> None:
        pass

    with pytest.raises(ValueError, match="unique and increasing"):
        await migrate(db, [Migration(v, f"m{v}", nothing) for v in versions])


# --- the changelog ------------------------------------------------------------------------------


def changes_of(schema: Any) -> Any:
    def work(conn: Connection) -> tuple[list[Any], int]:
        changes = schema.changelog.changes
        rows = conn.execute(sa.select(changes).order_by(changes.c.revision, changes.c.seq)).all()
        counter = conn.execute(sa.select(schema.changelog.counter.c.revision)).scalar_one()
        return list(rows), int(counter)

    return work


async def test_each_user_write_appends_one_change_with_the_next_revision(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    async with (
        running_user_svc(database_url, tmp_path) as running,
        channel_to(running.port) as channel,
    ):
        users = user_pb2_grpc.UserServiceStub(channel)
        ada = await create_user(users, email="ada@example.com")
        bo = await create_user(users)
        updated = (
            await users.UpdateUser(
                user_pb2.UpdateUserRequest(user=user_pb2.User(id=ada.id, display_name="Ada L."))
            )
        ).user
        await users.DeleteUser(user_pb2.DeleteUserRequest(id=bo.id))
        # Refused writes leave no change behind.
        with pytest.raises(grpc.aio.AioRpcError):
            await users.CreateUser(
                user_pb2.CreateUserRequest(user=user_pb2.User(email="ADA@example.com"))
            )
        with pytest.raises(grpc.aio.AioRpcError):
            await users.DeleteUser(user_pb2.DeleteUserRequest(id=ada.id, etag=ada.etag))
        await create_user(users, email=bo.email, request_id="x")
        await create_user(users, email=bo.email, request_id="x")  # a replay is not a write

    database = Database(database_url)
    try:
        rows, counter = await database.read(changes_of(user_svc.schema))
    finally:
        await database.close()
    assert [r.revision for r in rows] == [1, 2, 3, 4, 5]
    assert counter == 5
    assert {r.seq for r in rows} == {0}
    assert [(r.resource_id, r.type) for r in rows[:4]] == [
        (ada.id, ChangeType.PUT),
        (bo.id, ChangeType.PUT),
        (ada.id, ChangeType.PUT),
        (bo.id, ChangeType.DELETE),
    ]
    assert rows[0].prev is None
    assert orjson.loads(rows[0].data)["email"] == "ada@example.com"
    assert orjson.loads(rows[2].prev)["display_name"] == ada.display_name
    assert orjson.loads(rows[2].data)["display_name"] == "Ada L."
    assert str(orjson.loads(rows[2].data)["revision"]) == updated.etag
    assert orjson.loads(rows[3].data) == {"id": bo.id, "revision": 4}
    times = [r.commit_time_us for r in rows]
    assert times == sorted(times)


async def test_each_order_write_appends_one_change(services: Services) -> None:
    user = await create_user(services.users)
    orders: order_pb2_grpc.OrderServiceAsyncStub = services.orders
    order = (await orders.CreateOrder(order_request(user.id))).order
    cancelled = (await orders.CancelOrder(order_pb2.CancelOrderRequest(id=order.id))).order
    database = Database(services.order_database_url)
    try:
        rows, counter = await database.read(changes_of(order_svc.schema))
    finally:
        await database.close()
    assert [(r.revision, r.resource_id, r.type) for r in rows] == [
        (1, order.id, ChangeType.PUT),
        (2, order.id, ChangeType.PUT),
    ]
    assert counter == 2
    assert str(rows[1].revision) == cancelled.etag
    assert orjson.loads(rows[1].data)["state"] == 2
    assert orjson.loads(rows[1].prev)["state"] == 1


async def test_concurrent_writes_get_distinct_consecutive_revisions(services: Services) -> None:
    created = await asyncio.gather(*(create_user(services.users) for _ in range(30)))
    assert sorted(int(u.etag) for u in created) == list(range(1, 31))
    database = Database(services.user_database_url)
    try:
        rows, counter = await database.read(changes_of(user_svc.schema))
    finally:
        await database.close()
    assert [r.revision for r in rows] == list(range(1, 31))
    assert {r.resource_id: r.revision for r in rows} == {u.id: int(u.etag) for u in created}
    assert counter == 30


async def test_a_write_cancelled_while_it_runs_still_reaches_watchers_at_once(
    db: Database,
) -> None:
    """A caller cancelled (its client left, its deadline passed) while its unit runs in the
    database thread: the unit commits all the same, and its revision is handed to the feed
    once committed, not found at the feed's next poll (an hour away here)."""
    await migrate(db, user_svc.schema.MIGRATIONS)
    changelog = Changelog(user_svc.schema.changelog)
    feed = Feed(db, changelog, FeedSettings(poll_seconds=3600))
    keys = IdempotencyStore(user_svc.schema.idempotency_keys)
    uow = UnitOfWork(db, changelog, keys, committed=feed.committed)
    users = user_table(changelog)
    now = datetime.now(UTC)
    draft = new_user(ids.new_id(), "late@example.com", "Early", now)
    user = await uow.write(lambda tx: users.insert(tx, draft))
    await feed.start()
    try:
        watcher = feed.watcher()
        await feed.sync()
        feed.attach(watcher, feed.last)
        running, release = threading.Event(), threading.Event()

        def slow_rename(before: User) -> User:  # runs in the database thread
            running.set()
            release.wait(10)
            return dataclasses.replace(before, display_name="Late", update_time=now)

        update = asyncio.create_task(uow.write(lambda tx: users.update(tx, user.id, slow_rename)))
        assert await asyncio.to_thread(running.wait, 10)
        update.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await update
        await asyncio.wait_for(watcher.ready.wait(), timeout=10)
        [batch] = watcher.take()
        assert batch.revision == user.revision + 1
        stored = await uow.read(lambda conn: users.get(conn, user.id))
        assert stored is not None
        assert stored.display_name == "Late"
    finally:
        await feed.close()


async def test_a_watch_that_attaches_while_another_syncs_misses_no_revision(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two watches start at once on a replica nobody watched (both resuming there after
    their replica died): the first attaches while the second's `sync` reads the current
    revision, and another replica commits meanwhile. The second must not jump the feed past
    that commit, which the first has not been offered (found by tests/e2e/test_failover.py)."""
    await migrate(db, user_svc.schema.MIGRATIONS)
    changelog = Changelog(user_svc.schema.changelog)
    feed = Feed(db, changelog, FeedSettings(poll_seconds=3600))
    other = Database(database_url)  # another replica's commits: the feed hears of none
    other_uow = UnitOfWork(other, changelog, IdempotencyStore(user_svc.schema.idempotency_keys))
    users = user_table(changelog)
    await feed.start()
    syncing: asyncio.Task[None] | None = None
    try:
        first = feed.watcher()
        await feed.sync()  # the first watch: nothing to replay
        reading, release = threading.Event(), threading.Event()
        current_revision = changelog.current_revision

        def slow_current_revision(conn: Connection) -> int:  # in the database thread
            reading.set()
            release.wait(10)
            return current_revision(conn)

        monkeypatch.setattr(changelog, "current_revision", slow_current_revision)
        syncing = asyncio.create_task(feed.sync())  # the second watch
        assert await asyncio.to_thread(reading.wait, 10)
        feed.attach(first, feed.last)
        now = datetime.now(UTC)
        draft = new_user(ids.new_id(), "meanwhile@example.com", "Meanwhile", now)
        meanwhile = await other_uow.write(lambda tx: users.insert(tx, draft))
        release.set()
        await syncing
        later = new_user(ids.new_id(), "later@example.com", "Later", now)
        await other_uow.write(lambda tx: users.insert(tx, later))
        feed.wake()  # as the other replica's notification would

        seen: list[int] = []

        async def both_seen() -> bool:
            await asyncio.wait_for(first.ready.wait(), timeout=10)
            seen.extend(b.revision for b in first.take())
            return len(seen) >= 2 or seen[-1:] == [meanwhile.revision + 1]

        await eventually(both_seen, 10, "the first watch offered the later commit")
        assert seen == [meanwhile.revision, meanwhile.revision + 1]
    finally:
        release.set()
        if syncing is not None:
            await asyncio.gather(syncing, return_exceptions=True)
        await feed.close()
        await other.close()


async def test_the_data_directory_and_its_files_are_this_users_only(
    tmp_path: pathlib.Path,
) -> None:
    """The databases hold every user's e-mail address: 0700 for the directory the service
    creates, 0600 for its database (and SQLite's -wal and -shm beside it) and its key."""
    data = tmp_path / "new" / "data"
    async with running_user_svc(f"sqlite:///{data}/user_svc.db", data) as server:
        async with channel_to(server.port) as channel:
            await create_user(user_pb2_grpc.UserServiceStub(channel))
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert {"user_svc.db", "user_svc.db-wal", "user_svc.db-shm"} <= set(files)
    assert "user_svc.page_token.key" in files
    assert files == dict.fromkeys(files, 0o600)


async def test_a_database_left_readable_by_an_earlier_version_is_made_private(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    db = Database(f"sqlite:///{path}")
    await db.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_compaction_goes_in_small_units_and_lets_writes_through_between_them(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """History is forgotten a batch of revisions per unit (each a transaction of its own): a
    write handed over while compaction runs commits before it ends (the later units wait for
    it, to show it), and in the end everything past retention is gone but the newest
    revision."""
    monkeypatch.setattr(shop_common.feed.tail, "COMPACTION_BATCH", 3)
    await migrate(db, user_svc.schema.MIGRATIONS)
    changelog = Changelog(user_svc.schema.changelog)
    feed = Feed(db, changelog, FeedSettings(retention_seconds=0, poll_seconds=3600))
    keys = IdempotencyStore(user_svc.schema.idempotency_keys)
    uow = UnitOfWork(db, changelog, keys)
    users = user_table(changelog)
    now = datetime.now(UTC)
    for n in range(10):
        await uow.write(
            functools.partial(
                users.insert, draft=new_user(ids.new_id(), f"old{n}@x.example", f"Old {n}", now)
            )
        )
    units: list[int] = []
    compact_to = changelog.compact_to
    started = threading.Event()
    written = asyncio.Event()
    maintain = db.maintain

    def counted(conn: Connection, target: int, most: int | None = None) -> int:
        units.append(most or 0)
        started.set()  # in the database thread: the first unit runs
        return compact_to(conn, target, most)

    async def after_the_write(work: Any) -> Any:
        if units:  # every unit after the first waits until the write has committed
            await written.wait()
        return await maintain(work)

    monkeypatch.setattr(changelog, "compact_to", counted)
    monkeypatch.setattr(db, "maintain", after_the_write)
    later = new_user(ids.new_id(), "new@example.com", "New", now)
    compacting = asyncio.create_task(feed.compact(now + timedelta(seconds=1)))
    assert await asyncio.to_thread(started.wait, 10)
    written_user = await uow.write(lambda tx: users.insert(tx, later))
    assert not compacting.done(), "the write waited for the whole compaction"
    written.set()
    point = await compacting
    # Revisions 1..10: each batch's target is read as it comes, so 10, the newest when
    # compaction began but no longer once 11 committed, goes too; the newest of all stays.
    assert point == 10
    assert units == [3, 3, 3, 3]
    assert written_user.revision == 11
    history = await db.read(lambda conn: changelog.read(conn, 10, None, 100))
    assert [b.revision for b in history] == [11]
    with pytest.raises(Compacted):
        await db.read(lambda conn: changelog.read(conn, 9, None, 100))


async def _old_history(db: Database, count: int) -> tuple[Changelog, Feed]:
    """`count` users written (one revision each) under a feed that keeps no history."""
    await migrate(db, user_svc.schema.MIGRATIONS)
    changelog = Changelog(user_svc.schema.changelog)
    uow = UnitOfWork(db, changelog, IdempotencyStore(user_svc.schema.idempotency_keys))
    users = user_table(changelog)
    now = datetime.now(UTC)
    for n in range(count):
        draft = new_user(ids.new_id(), f"old{n}@x.example", f"Old {n}", now)
        await uow.write(functools.partial(users.insert, draft=draft))
    return changelog, Feed(db, changelog, FeedSettings(retention_seconds=0, poll_seconds=3600))


async def test_the_compaction_point_only_moves_forward(db: Database) -> None:
    """A compaction that read an older point (another replica's, committed meanwhile, went
    further) forgets what was already gone and leaves the point where it was."""
    changelog, _ = await _old_history(db, 10)
    assert await db.maintain(functools.partial(changelog.compact_to, target=8)) == 8
    stale = Changelog(user_svc.schema.changelog)
    stale.compact_revision = lambda conn: 0  # type: ignore[method-assign]
    await db.maintain(functools.partial(stale.compact_to, target=5))
    assert await db.read(changelog.compact_revision) == 8


@pytest.mark.postgres
async def test_compaction_on_postgresql_does_not_wait_for_the_writer_lock(
    postgres: PostgresDatabases,
) -> None:
    """On PostgreSQL compaction runs beside the writers: with the writer lock held (every
    write waits), it still forgets the old history. (On SQLite it is a write like any other.)"""
    db = Database(await postgres.create())
    try:
        _, feed = await _old_history(db, 10)
        async with await psycopg.AsyncConnection.connect(db.libpq_dsn) as holder:
            await holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK_KEY,))
            later = datetime.now(UTC) + timedelta(seconds=1)
            assert await asyncio.wait_for(feed.compact(later), 10) == 9  # the newest stays
            await holder.rollback()
    finally:
        await db.close()
