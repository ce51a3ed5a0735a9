"""Inserts a turn of units leaves for later (`storage.deferral`): on PostgreSQL, the like
inserts of a commit group go in one statement with their changes. Nothing a unit, the feed
or a later statement sees changes: every insert is stored with its change under its own
revision, the counter ends at the last one, a statement sees what the units before it
wrote, and a unit whose insert fails is refused alone, with its table's error."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

import user_svc.schema
from shop_common.domain import AlreadyExists, ids
from shop_common.storage import (
    Batch,
    Changelog,
    Database,
    IdempotencyStore,
    Transaction,
    UnitOfWork,
    migrate,
)
from tests.integration.helpers import one_turn
from user_svc.domain import User, new_user
from user_svc.store import user_table

CHANGELOG = Changelog(user_svc.schema.changelog)
USERS = user_table(CHANGELOG)
_changes = user_svc.schema.changelog.changes


class Harness:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.told: list[Batch] = []
        keys = IdempotencyStore(user_svc.schema.idempotency_keys)
        self.uow = UnitOfWork(db, CHANGELOG, keys, committed=self.told.append)

    def write(self, unit: Callable[[Transaction], Any]) -> Callable[[], Awaitable[Any]]:
        return lambda: self.uow.write(unit)

    async def changes(self) -> list[tuple[int, int, str]]:
        query = sa.select(_changes.c.revision, _changes.c.seq, _changes.c.resource_id)
        rows = await self.db.read(lambda conn: conn.execute(query.order_by(_changes.c.revision)))
        return [(row[0], row[1], row[2]) for row in rows]


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    db = Database(database_url)
    try:
        await migrate(db, user_svc.schema.MIGRATIONS)
        yield Harness(db)
    finally:
        await db.close()


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
