"""The changelog: a transactional outbox that is also the history of a service's feed.

Every write transaction takes the next revision from a one-row counter and
appends its change rows with that revision, in the same transaction as the data:
no committed change is missing from the log and no rolled-back one is in it.
The counter row is updated first, so on PostgreSQL its row lock serializes
writers and revisions become visible in revision order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection


class ChangeType(IntEnum):
    PUT = 1
    DELETE = 2


@dataclass(frozen=True, slots=True)
class ChangelogTables:
    counter: sa.Table
    changes: sa.Table

    def create(self, conn: Connection) -> None:
        self.counter.create(conn)
        self.changes.create(conn)
        conn.execute(self.counter.insert().values(id=1, revision=0))


def changelog_tables(metadata: sa.MetaData) -> ChangelogTables:
    counter = sa.Table(
        "revision_counter",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    changes = sa.Table(
        "changes",
        metadata,
        sa.Column("revision", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("type", sa.SmallInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("prev", sa.Text, nullable=True),
        sa.Column("commit_time_us", sa.BigInteger, nullable=False),
    )
    return ChangelogTables(counter=counter, changes=changes)


class Changelog:
    def __init__(self, tables: ChangelogTables) -> None:
        self._counter = tables.counter
        self._changes = tables.changes
        self._next = (
            sa.update(self._counter)
            .where(self._counter.c.id == 1)
            .values(revision=self._counter.c.revision + 1)
            .returning(self._counter.c.revision)
        )
        self._current = sa.select(self._counter.c.revision).where(self._counter.c.id == 1)

    @property
    def current_revision_query(self) -> sa.ScalarSelect[int]:
        """For embedding in a read, so the revision comes from the same snapshot."""
        return self._current.scalar_subquery()

    def next_revision(self, conn: Connection) -> int:
        """Allocates the revision of this transaction (and locks the counter until commit)."""
        return int(conn.execute(self._next).scalar_one())

    def append(
        self,
        conn: Connection,
        *,
        revision: int,
        seq: int,
        resource_id: str,
        change: ChangeType,
        data: str,
        prev: str | None,
        commit_time_us: int,
    ) -> None:
        conn.execute(
            self._changes.insert().values(
                revision=revision,
                seq=seq,
                resource_id=resource_id,
                type=int(change),
                data=data,
                prev=prev,
                commit_time_us=commit_time_us,
            )
        )
