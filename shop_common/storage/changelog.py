"""The changelog: a transactional outbox that is also the history of a service's feed.

Every write transaction takes the next revision from a one-row counter and
appends its change rows with that revision, in the same transaction as the data:
no committed change is missing from the log and no rolled-back one is in it.
Writers are serialized (each takes the writer lock first: see `storage.database`),
so revisions become visible in revision order: a reader that sees revision N+1
also sees N. History older than the retention is compacted; the
compaction point is kept so that a reader asking below it is told, never served
a history with a hole in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop_common.storage.deferral import defer, json_rows, may_defer, transaction_state
from shop_common.storage.prepared import Prepared

NOTIFY_CHANNEL = "shop_changes"
_LAST_REVISION = "changelog.last_revision"


class ChangeType(IntEnum):
    PUT = 1
    DELETE = 2


@dataclass(frozen=True, slots=True)
class ChangelogTables:
    counter: sa.Table
    changes: sa.Table
    compaction: sa.Table

    def create(self, conn: Connection) -> None:
        self.counter.create(conn)
        self.changes.create(conn)
        conn.execute(self.counter.insert().values(id=1, revision=0))

    def create_compaction(self, conn: Connection) -> None:
        self.compaction.create(conn)
        conn.execute(self.compaction.insert().values(id=1, revision=0))


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
    compaction = sa.Table(
        "changelog_compaction",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        # Every change at or below this revision is gone from `changes`.
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    return ChangelogTables(counter=counter, changes=changes, compaction=compaction)


@dataclass(slots=True, eq=False)
class Change:
    """One row of the changelog: one resource changed by the transaction of `revision`."""

    revision: int
    seq: int
    resource_id: str
    type: ChangeType
    data: str
    """The resource's row after the change, as JSON (on delete: its id and the revision)."""
    prev: str | None
    """The row before the change, as JSON; None for a create."""
    commit_time_us: int
    cache: dict[Any, Any] = field(default_factory=dict)
    """For encoders: what they derive from this change, computed once for every watcher."""

    def row(self) -> dict[str, Any]:
        """The resource's row after the change; on delete, its last row under the revision
        of the deletion."""
        found: dict[str, Any] | None = self.cache.get("row")
        if found is None:
            if self.type is ChangeType.DELETE:
                assert self.prev is not None
                found = orjson.loads(self.prev) | {"revision": self.revision}
            else:
                found = orjson.loads(self.data)
            self.cache["row"] = found
        return found

    def prev_row(self) -> dict[str, Any] | None:
        return None if self.prev is None else orjson.loads(self.prev)


@dataclass(frozen=True, slots=True)
class Batch:
    """Every change of one revision (one transaction)."""

    revision: int
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True, eq=False)
class WriteStatement:
    """A write of a resource's row that a change records, its bind parameters named `w_…`
    (apart from the change's own): sent with the change (`Changelog.append`)."""

    statement: sa.Insert | sa.Update
    alone: Prepared
    """The same statement, on its own."""
    inserts: tuple[sa.Table, dict[str, str]] | None = None
    """For an insert of every column: the table, and each column's bind parameter by name
    (so that the rows of several can go in one statement)."""

    @classmethod
    def of(cls, statement: sa.Insert | sa.Update) -> WriteStatement:
        return cls(statement, Prepared(statement))

    @classmethod
    def insert(cls, table: sa.Table, params: dict[str, str]) -> WriteStatement:
        """An insert of a row of `table`, each column's value bound as `params[column]`."""
        statement = table.insert().values({c: sa.bindparam(p) for c, p in params.items()})
        return cls(statement, Prepared(statement), (table, params))


@dataclass(frozen=True, slots=True)
class Write:
    """A write statement with the values of one call."""

    statement: WriteStatement
    params: dict[str, Any]

    @property
    def alone(self) -> Prepared:
        return self.statement.alone


class Compacted(Exception):
    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"history up to revision {compact_revision} is compacted")
        self.compact_revision = compact_revision


_TYPES = {int(t): t for t in ChangeType}


def _batches(rows: Sequence[Sequence[Any]]) -> list[Batch]:
    """Changes from rows of (revision, seq, resource_id, type, data, prev, commit_time_us)."""
    batches: list[Batch] = []
    group: list[Change] = []
    for revision, seq, resource_id, kind, data, prev, commit_time_us in rows:
        change = Change(revision, seq, resource_id, _TYPES[kind], data, prev, commit_time_us)
        if group and group[0].revision != revision:
            batches.append(Batch(group[0].revision, tuple(group)))
            group = []
        group.append(change)
    if group:
        batches.append(Batch(group[0].revision, tuple(group)))
    return batches


class Changelog:
    def __init__(self, tables: ChangelogTables) -> None:
        self._counter = tables.counter
        self._changes = tables.changes
        self._next = Prepared(
            sa.update(self._counter)
            .where(self._counter.c.id == 1)
            .values(revision=self._counter.c.revision + 1)
            .returning(self._counter.c.revision)
        )
        # On PostgreSQL, a transaction's first change of each revision also sets the counter
        # to it and queues the notification that wakes the feeds of every replica (see
        # `feed.tail`), and the write it records goes in the same statement: one statement,
        # where a revision once cost four. The notification is delivered at commit, once
        # however many revisions a commit group wrote (PostgreSQL folds identical
        # notifications of one transaction).
        self._set_counter = (
            sa.update(self._counter)
            .where(self._counter.c.id == 1)
            .values(revision=sa.bindparam("revision"))
            .returning(sa.func.pg_notify(NOTIFY_CHANNEL, ""))
            .cte("counter")
        )
        self._change_values = self._changes.insert().values(
            {c.name: sa.bindparam(c.name) for c in self._changes.c}
        )
        # By the write recorded (compared by identity) and whether it sets the counter.
        self._with_writes: dict[tuple[WriteStatement | None, bool], Prepared] = {}
        self._together: dict[tuple[WriteStatement, bool], Prepared] = {}
        self._insert_change = Prepared(self._change_values)
        self._current = sa.select(self._counter.c.revision).where(self._counter.c.id == 1)
        self._current_revision = Prepared(self._current)
        self._compaction = tables.compaction
        self._compacted = sa.select(self._compaction.c.revision).where(self._compaction.c.id == 1)
        c = self._changes.c
        self._columns = (c.revision, c.seq, c.resource_id, c.type, c.data, c.prev, c.commit_time_us)
        # The tail's and the replay's reads, on the driver's cursor: a page of history is
        # thousands of rows, and SQLAlchemy's row processing cost more than SQLite's.
        newer = sa.select(*self._columns).where(c.revision > sa.bindparam("after"))
        in_order = (c.revision, c.seq)
        limit = sa.bindparam("limit", type_=sa.Integer)
        self._read_after = Prepared(newer.order_by(*in_order).limit(limit))
        self._read_between = Prepared(
            newer.where(c.revision <= sa.bindparam("upto")).order_by(*in_order).limit(limit)
        )

    @property
    def current_revision_query(self) -> sa.ScalarSelect[int]:
        """For embedding in a read, so the revision comes from the same snapshot."""
        return self._current.scalar_subquery()

    def next_revision(self, conn: Connection) -> int:
        """Allocates the revision of this transaction (of this unit, in a commit group).

        Writers are serialized (see `storage.database`). On SQLite the counter is updated
        here; on PostgreSQL it is read once per transaction, each unit's revision counted on
        from it in the transaction's state (put back when a unit is rolled back), and
        stored with the revision's first change (`append`): no statement of its own.
        """
        if conn.dialect.name != "postgresql":
            return int(self._next.first(conn)[0])
        state = transaction_state(conn)
        last = state.get(_LAST_REVISION)
        if last is None:
            last = int(self._current_revision.first(conn)[0])
        state[_LAST_REVISION] = last + 1
        return int(last) + 1

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
        write: Write | None = None,
    ) -> Change:
        """Records one change; with `write`, also runs the write it records: on PostgreSQL in
        the same statement, which for an insert in a writer's turn is left to be sent with the
        next units' (`send`, `storage.deferral`); elsewhere before it."""
        params = {
            "revision": revision,
            "seq": seq,
            "resource_id": resource_id,
            "type": int(change),
            "data": data,
            "prev": prev,
            "commit_time_us": commit_time_us,
        }
        if conn.dialect.name != "postgresql":
            if write is not None:
                write.alone.execute(conn, write.params)
            self._insert_change.execute(conn, params)
        elif write is None and seq != 0:
            self._insert_change.execute(conn, params)
        elif write is not None and write.statement.inserts is not None and may_defer(conn):
            # Sent with the next units' (`send`), before anything else runs on `conn`.
            defer(conn, self, (write.statement, params | write.params, seq == 0))
        else:
            statement = self._with_writes_of(None if write is None else write.statement, seq == 0)
            statement.execute(conn, params if write is None else params | write.params)
        return Change(revision, seq, resource_id, change, data, prev, commit_time_us)

    def _with_writes_of(self, write: WriteStatement | None, first: bool) -> Prepared:
        """The change's insert with the counter's update (a revision's first change) and the
        write recorded, as data-modifying CTEs (PostgreSQL runs each exactly once)."""
        key = (write, first)
        found = self._with_writes.get(key)
        if found is None:
            statement = self._change_values
            if first:
                statement = statement.add_cte(self._set_counter)
            if write is not None:
                statement = statement.add_cte(write.statement.cte("write"))
            found = self._with_writes[key] = Prepared(statement)
        return found

    def send(
        self, conn: Connection, rows: list[tuple[WriteStatement, dict[str, Any], bool]]
    ) -> None:
        """Sends the inserts deferred (`storage.deferral`), each with its change: one statement
        per table written, the counter set by the last to the last revision whose first change
        is among them (revisions only grow in a transaction)."""
        by_statement: dict[WriteStatement, list[dict[str, Any]]] = {}
        counted = 0
        for statement, params, first in rows:
            by_statement.setdefault(statement, []).append(params)
            if first:
                counted = max(counted, params["revision"])
        last = len(by_statement) - 1
        for n, (statement, values) in enumerate(by_statement.items()):
            count = counted if n == last else 0
            if len(values) == 1 and count in (0, values[0]["revision"]):
                self._with_writes_of(statement, count != 0).execute(conn, values[0])
            else:
                together = self._together_of(statement, count != 0)
                together.execute(conn, {"rows": orjson.dumps(values).decode(), "revision": count})

    def _together_of(self, write: WriteStatement, first: bool) -> Prepared:
        """`_with_writes_of` for many rows in one statement: their values, as one JSON array
        of objects, read by `json_to_recordset`."""
        key = (write, first)
        found = self._together.get(key)
        if found is None:
            assert write.inserts is not None
            table, names = write.inserts
            columns = [sa.column(names[c.name], c.type) for c in table.c]
            columns += [sa.column(c.name, c.type) for c in self._changes.c]
            rows = json_rows(columns)
            into_table = sa.insert(table).from_select(
                [c.name for c in table.c], sa.select(*(rows.c[names[c.name]] for c in table.c))
            )
            changes = self._changes.c
            statement = sa.insert(self._changes).from_select(
                [c.name for c in changes], sa.select(*(rows.c[c.name] for c in changes))
            )
            statement = statement.add_cte(rows).add_cte(into_table.cte("write"))
            if first:
                statement = statement.add_cte(self._set_counter)
            found = self._together[key] = Prepared(statement)
        return found

    def current_revision(self, conn: Connection) -> int:
        return int(self._current_revision.first(conn)[0])

    def compact_revision(self, conn: Connection) -> int:
        return int(conn.execute(self._compacted).scalar_one())

    def read(self, conn: Connection, after: int, upto: int | None, limit: int) -> list[Batch]:
        """Whole revisions after `after` (up to `upto`), about `limit` changes at most.

        Raises `Compacted` when revisions right after `after` are no longer kept.
        """
        if upto is None:
            cursor = self._read_after.execute(conn, {"after": after, "limit": limit + 1})
        else:
            params = {"after": after, "upto": upto, "limit": limit + 1}
            cursor = self._read_between.execute(conn, params)
        rows: Sequence[Sequence[Any]] = cursor.fetchall()
        if len(rows) > limit:
            # Never split a revision: drop the last (maybe partial) one, or, when one
            # revision alone is over the limit, read that revision whole.
            cut = rows[limit][0]
            rows = [r for r in rows if r[0] < cut]
            if not rows:
                whole = sa.select(*self._columns).where(self._changes.c.revision == cut)
                rows = conn.execute(whole.order_by(self._changes.c.seq)).all()
        # Revisions are dense, so the compaction point needs reading (in this snapshot) only
        # when the first one found is not the next: the common case costs one query.
        unsure = rows[0][0] != after + 1 if rows else upto is not None
        if unsure:
            compacted = self.compact_revision(conn)
            if after < compacted:
                raise Compacted(compacted)
        return _batches(rows)

    def compact(self, conn: Connection, before_us: int) -> int:
        """Forgets the revisions committed before `before_us`; returns the compaction point.

        The newest revision always stays, so a watcher that is up to date never has to
        list again just because nothing was written for a while.
        """
        target = self.compaction_target(conn, before_us)
        if target is None:
            return self.compact_revision(conn)
        return self.compact_to(conn, target)

    def compaction_target(self, conn: Connection, before_us: int) -> int | None:
        """The newest revision committed before `before_us` but the newest of all (the one
        compaction may go up to); None when there is none. A read: needs no writer lock."""
        newest = self.current_revision(conn)
        revision, committed = self._changes.c.revision, self._changes.c.commit_time_us
        point = conn.execute(
            sa.select(sa.func.max(revision)).where(committed < before_us, revision < newest)
        ).scalar()
        return None if point is None else int(point)

    def batch_target(self, conn: Connection, before_us: int, after: int, most: int) -> int | None:
        """`compaction_target` among the `most` changes after revision `after` alone: a read of
        a few thousand rows however much history the retention keeps (revisions are committed
        in time order). None when none of them is old enough."""
        newest = self.current_revision(conn)
        revision, committed = self._changes.c.revision, self._changes.c.commit_time_us
        window = (
            sa.select(revision, committed)
            .where(revision > after, revision < newest)
            .order_by(revision)
            .limit(most)
            .subquery()
        )
        point = conn.execute(
            sa.select(sa.func.max(window.c.revision)).where(window.c.commit_time_us < before_us)
        ).scalar()
        return None if point is None else int(point)

    def compact_to(self, conn: Connection, target: int, most: int | None = None) -> int:
        """Forgets the revisions up to `target`, at most `most` of them past the compaction
        point (a small batch keeps the writers waiting briefly); returns the new point."""
        compacted = self.compact_revision(conn)
        upto = target if most is None else min(target, compacted + most)
        if upto <= compacted:
            return compacted
        revision = self._changes.c.revision
        conn.execute(self._changes.delete().where(revision > compacted, revision <= upto))
        # Forward only: on PostgreSQL compaction runs beside the writers (`Database.maintain`),
        # and another replica's, committed meanwhile, may have gone further.
        point = self._compaction.c.revision
        conn.execute(
            self._compaction.update()
            .where(self._compaction.c.id == 1, point < upto)
            .values(revision=upto)
        )
        return upto
