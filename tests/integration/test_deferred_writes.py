"""Inserts a turn of units leaves for later (`storage.deferral`): on PostgreSQL, the like
inserts of a commit group go in one statement with their changes. Nothing a unit, the feed
or a later statement sees changes: every insert is stored with its change under its own
revision, the counter ends at the last one, a statement sees what the units before it
wrote, and a unit whose insert fails is refused alone, with its table's error."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

import user_svc.schema
from shop_common.domain import AlreadyExists, InvalidArgument, ids
from shop_common.storage import (
    Batch,
    Changelog,
    Database,
    IdempotencyKey,
    IdempotencyStore,
    Transaction,
    UnitOfWork,
)
from tests.integration.helpers import one_turn, user_database
from user_svc.domain import User, new_user
from user_svc.store import user_table

CHANGELOG = Changelog(user_svc.schema.changelog)
USERS = user_table(CHANGELOG)
_changes = user_svc.schema.changelog.changes


class Harness:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.told: list[Batch] = []
        self.keys = IdempotencyStore(user_svc.schema.idempotency_keys)
        self.uow = UnitOfWork(db, CHANGELOG, self.keys, committed=self.told.append)

    def write(self, unit: Callable[[Transaction], Any]) -> Callable[[], Awaitable[Any]]:
        return lambda: self.uow.write(unit)

    async def changes(self) -> list[tuple[int, int, str]]:
        query = sa.select(_changes.c.revision, _changes.c.seq, _changes.c.resource_id)
        rows = await self.db.read(lambda conn: conn.execute(query.order_by(_changes.c.revision)))
        return [(row[0], row[1], row[2]) for row in rows]


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with user_database(database_url) as db:
        yield Harness(db)


def draft(email: str | None = None) -> User:
    return new_user(ids.new_id(), email or f"{ids.new_id()}@example.com", "Ada", datetime.now(UTC))


def inserting(user: User) -> Callable[[Transaction], User]:
    return lambda tx: USERS.insert(tx, user)


async def test_a_turn_of_inserts_stores_each_with_its_change_and_revision(
    harness: Harness,
) -> None:
    users = [draft() for _ in range(12)]
    stored = await one_turn(harness.uow, *(harness.write(inserting(u)) for u in users))
    assert [u.revision for u in stored] == list(range(1, 13))
    assert await harness.changes() == [(n + 1, 0, u.id) for n, u in enumerate(users)]
    assert await harness.db.read(CHANGELOG.current_revision) == 12
    assert [b.revision for b in harness.told] == list(range(1, 13))
    found = await harness.db.read(lambda conn: [USERS.get(conn, u.id) for u in stored])
    assert found == stored


async def test_a_statement_sees_what_the_units_before_it_inserted(harness: Harness) -> None:
    """After deferred inserts: a read on the driver's cursor (`Prepared`), one through
    SQLAlchemy, and an update of a row inserted a unit before, all in the same turn."""
    first, second = draft(), draft()

    def read_both(tx: Transaction) -> tuple[User | None, int]:
        found = USERS.get(tx.conn, first.id)  # Prepared
        count = tx.conn.execute(sa.select(sa.func.count()).select_from(user_svc.schema.users))
        return found, int(count.scalar_one())

    def rename(tx: Transaction) -> User:
        return USERS.update(tx, second.id, lambda u: dataclasses.replace(u, display_name="Bo"))

    results = await one_turn(
        harness.uow,
        harness.write(inserting(first)),
        harness.write(inserting(second)),
        harness.write(read_both),
        harness.write(rename),
    )
    found, count = results[2]
    assert found is not None
    assert found.id == first.id
    assert count == 2
    assert results[3].display_name == "Bo"
    assert results[3].revision == 3
    assert await harness.db.read(CHANGELOG.current_revision) == 3


async def test_an_insert_that_fails_when_sent_is_refused_alone(harness: Harness) -> None:
    """The third unit's email is the first's: sent together, the statement fails; the turn
    runs again with a savepoint each, and only that unit is refused, with the table's error
    (email taken), while the others commit with dense revisions."""
    first = draft()
    users = [first, draft(), draft(first.email), draft()]
    results = await one_turn(harness.uow, *(harness.write(inserting(u)) for u in users))
    assert isinstance(results[2], AlreadyExists)
    kept = [results[0], results[1], results[3]]
    assert [u.revision for u in kept] == [1, 2, 3]
    assert [c[2] for c in await harness.changes()] == [users[0].id, users[1].id, users[3].id]
    assert await harness.db.read(CHANGELOG.current_revision) == 3


@contextmanager
def statements_sent_together(harness: Harness) -> Iterator[list[str]]:
    """What each send of deferred inserts sent in one statement of many rows: "changes" (rows
    with their changes) or "keys" (idempotency keys)."""
    sent: list[str] = []
    together, keys_send = CHANGELOG._together_of, harness.keys.send

    def changes(write: Any, first: bool) -> Any:
        sent.append("changes")
        return together(write, first)

    def keys(conn: Any, rows: list[Any]) -> None:
        if len(rows) > 1:
            sent.append("keys")
        keys_send(conn, rows)

    CHANGELOG._together_of = changes  # type: ignore[method-assign]
    harness.keys.send = keys  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        del CHANGELOG._together_of
        del harness.keys.send


async def test_on_postgresql_a_turn_of_inserts_is_one_statement(harness: Harness) -> None:
    """What the deferral is for: without it every test above passes too (as on SQLite)."""
    with statements_sent_together(harness) as sent:
        await one_turn(harness.uow, *(harness.write(inserting(draft())) for _ in range(6)))
    assert sent == (["changes"] if harness.db.is_postgres else [])


def keyed(user: User, request_id: str | None = None) -> Callable[[Transaction], User]:
    key = IdempotencyKey.of("CreateUser", None, request_id or user.id, user.email.encode())
    return lambda tx: USERS.replay(tx, key) or USERS.insert(tx, user, key)


async def test_keyed_inserts_and_their_keys_go_in_one_statement_each(harness: Harness) -> None:
    """Requests with a `request_id`: the key's insert is deferred too, and `recall` looks
    among the keys deferred before it reads, so nothing is sent until the commit."""
    users = [draft() for _ in range(6)]
    with statements_sent_together(harness) as sent:
        stored = await one_turn(harness.uow, *(harness.write(keyed(u)) for u in users))
    assert sent == (["changes", "keys"] if harness.db.is_postgres else [])
    again = await one_turn(harness.uow, *(harness.write(keyed(u)) for u in users))
    assert again == stored  # replays, from the keys stored
    assert await harness.db.read(CHANGELOG.current_revision) == 6


async def test_a_retry_in_the_same_turn_replays_the_key_not_yet_sent(harness: Harness) -> None:
    """The same request twice in one turn: the second finds the first's key among those
    deferred and replays it; the same key for another request is refused."""
    user, other = draft(), draft()
    first, retry, reused = await one_turn(
        harness.uow,
        harness.write(keyed(user, "request-1")),
        harness.write(keyed(dataclasses.replace(user, id=ids.new_id()), "request-1")),
        harness.write(keyed(other, "request-1")),
    )
    assert retry == first
    assert isinstance(reused, InvalidArgument)
    assert await harness.db.read(CHANGELOG.current_revision) == 1
    assert await harness.changes() == [(1, 0, user.id)]


ODD = 'A "q" \\ \\\\ \\n \\u0041 \n\t é 漢 🚀 \u2028 {"x": [1]} null'


async def test_text_sent_together_comes_back_exactly(harness: Harness) -> None:
    users = [dataclasses.replace(draft(), display_name=f"{ODD} {n}") for n in range(3)]
    users.append(dataclasses.replace(draft(), display_name="null"))
    stored = await one_turn(harness.uow, *(harness.write(inserting(u)) for u in users))
    assert await harness.db.read(lambda conn: [USERS.get(conn, u.id) for u in stored]) == stored
    changes = user_svc.schema.changelog.changes
    query = sa.select(changes.c.data, changes.c.prev).order_by(changes.c.revision)
    rows = await harness.db.read(lambda conn: conn.execute(query).all())
    assert [r.prev for r in rows] == [None] * 4
    assert [orjson.loads(r.data)["display_name"] for r in rows] == [u.display_name for u in users]


async def test_the_counter_ends_at_the_last_revision_whatever_changes_were_deferred(
    harness: Harness,
) -> None:
    """Units whose deferred inserts are their revision's first change, or a later one (after
    an update sent at once, or a second insert), in one turn."""
    existing = await harness.uow.write(inserting(draft()))

    def rename_then_insert(tx: Transaction) -> int:
        USERS.update(tx, existing.id, lambda u: dataclasses.replace(u, display_name="Bo"))
        USERS.insert(tx, draft())  # seq 1: deferred, not its revision's first
        return tx.revision

    def insert_two(tx: Transaction) -> int:
        USERS.insert(tx, draft())
        USERS.insert(tx, draft())
        return tx.revision

    def insert_one(tx: Transaction) -> int:
        USERS.insert(tx, draft())
        return tx.revision

    revisions = await one_turn(
        harness.uow,
        harness.write(insert_one),
        harness.write(rename_then_insert),
        harness.write(insert_two),
        harness.write(rename_then_insert),
    )
    assert revisions == [2, 3, 4, 5]
    assert await harness.db.read(CHANGELOG.current_revision) == 5
    assert [(r, s) for r, s, _ in await harness.changes()] == [
        (1, 0), (2, 0), (3, 0), (3, 1), (4, 0), (4, 1), (5, 0), (5, 1)
    ]  # fmt: skip


async def test_an_insert_that_fails_when_another_units_statement_sends_it_is_refused_alone(
    harness: Harness,
) -> None:
    existing = await harness.uow.write(inserting(draft()))

    def count(tx: Transaction) -> int:
        users = user_svc.schema.users
        return int(tx.conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())

    results = await one_turn(
        harness.uow,
        harness.write(inserting(draft())),
        harness.write(inserting(draft(existing.email))),
        harness.write(count),
        harness.write(inserting(draft())),
    )
    assert isinstance(results[1], AlreadyExists)
    assert results[2] == 2
    assert await harness.db.read(CHANGELOG.current_revision) == 3
