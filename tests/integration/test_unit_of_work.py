"""Units of work on each backend: one revision per unit that writes, the batch it wrote
handed to the feed once committed, and nothing spent or told by a unit that wrote nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

import user_svc.schema
from shop_common.domain import NotFound, ids
from shop_common.storage import (
    Batch,
    Changelog,
    Database,
    IdempotencyKey,
    IdempotencyStore,
    Transaction,
    UnitOfWork,
)
from tests.integration.helpers import user_database
from user_svc.domain import User, new_user
from user_svc.store import user_table

CHANGELOG = Changelog(user_svc.schema.changelog)
USERS = user_table(CHANGELOG)


class Harness:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.told: list[Batch] = []
        keys = IdempotencyStore(user_svc.schema.idempotency_keys)
        self.uow = UnitOfWork(db, CHANGELOG, keys, committed=self.told.append)

    async def revision(self) -> int:
        return await self.db.read(CHANGELOG.current_revision)


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with user_database(database_url) as db:
        yield Harness(db)


def draft(name: str = "Ada") -> User:
    return new_user(ids.new_id(), f"{ids.new_id()}@example.com", name, datetime.now(UTC))


async def test_a_unit_that_writes_takes_one_revision_and_tells_the_feed_its_changes(
    harness: Harness,
) -> None:
    first, second = draft(), draft()

    def unit(tx: Transaction) -> list[User]:
        return [USERS.insert(tx, first), USERS.insert(tx, second)]

    stored = await harness.uow.write(unit)
    assert [u.revision for u in stored] == [1, 1]
    [batch] = harness.told
    assert batch.revision == 1
    assert [(c.seq, c.resource_id) for c in batch.changes] == [(0, first.id), (1, second.id)]
    assert await harness.revision() == 1


async def test_a_unit_that_took_a_revision_and_wrote_nothing_is_rolled_back(
    harness: Harness,
) -> None:
    def looks_only(tx: Transaction) -> str:
        _ = tx.revision
        return "nothing written"

    assert await harness.uow.write(looks_only) == "nothing written"
    assert await harness.revision() == 0
    assert harness.told == []
    stored = await harness.uow.write(lambda tx: USERS.insert(tx, draft()))
    assert stored.revision == 1, "revisions stay dense"


async def test_a_unit_that_raises_leaves_nothing_behind(harness: Harness) -> None:
    def refused(tx: Transaction) -> None:
        USERS.insert(tx, draft())
        USERS.update(tx, ids.new_id(), lambda user: user)  # no such user

    with pytest.raises(NotFound):
        await harness.uow.write(refused)
    assert await harness.revision() == 0
    assert harness.told == []
    assert (await harness.db.read(lambda conn: USERS.slice(conn, None, 10))).items == []


async def test_a_replay_returns_the_first_result_and_spends_no_revision(
    harness: Harness,
) -> None:
    key = IdempotencyKey.of("CreateUser", None, "request-1", b"the request")

    def create(tx: Transaction) -> User:
        return USERS.replay(tx, key) or USERS.insert(tx, draft(), key)

    first = await harness.uow.write(create)
    again = await harness.uow.write(create)
    assert again == first
    assert await harness.revision() == 1
    assert [b.revision for b in harness.told] == [1]


async def test_units_committed_together_take_dense_revisions_past_the_ones_undone(
    harness: Harness,
) -> None:
    """Units handed over at once commit together (one transaction, a savepoint each). A unit
    undone after it wrote (it raised, or took a revision and wrote nothing) gives its revision
    back: the next unit takes it, the counter ends at the last one kept, and the changelog
    holds each kept revision once, with the rows of its own unit."""

    def refused(tx: Transaction) -> None:
        USERS.insert(tx, draft())
        raise NotFound("refused after it wrote")

    def looks_only(tx: Transaction) -> str:
        _ = tx.revision
        return "nothing written"

    def creates(tx: Transaction) -> User:
        return USERS.insert(tx, draft())

    units = [creates, refused, creates, looks_only, creates, refused, creates]
    outcomes = await asyncio.gather(
        *(harness.uow.write(unit) for unit in units), return_exceptions=True
    )
    kept = [o for o in outcomes if isinstance(o, User)]
    assert [o.revision for o in kept] == [1, 2, 3, 4]
    assert [type(o) for o in outcomes if not isinstance(o, User | str)] == [NotFound, NotFound]
    assert await harness.revision() == 4
    assert sorted(b.revision for b in harness.told) == [1, 2, 3, 4]
    history = await harness.db.read(lambda conn: CHANGELOG.read(conn, 0, None, 100))
    assert [(b.revision, b.changes[0].resource_id) for b in history] == [
        (u.revision, u.id) for u in kept
    ]
    stored = await harness.db.read(lambda conn: USERS.slice(conn, None, 10))
    assert sorted(u.id for u in stored.items) == sorted(u.id for u in kept)
