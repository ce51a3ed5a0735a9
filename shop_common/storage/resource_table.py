"""A table of resources in SQL: synchronous operations inside a unit of work.

Both services keep their resources this way; a `RowCodec` says how one kind of resource
maps to its table's columns. Every write is recorded in the changelog under the
transaction's revision (see `storage.unit_of_work`), so a resource's `revision` is the revision
of the write that last changed it and doubles as its etag.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from shop_common.domain import DomainError
from shop_common.storage.changelog import Changelog, ChangeType, Write, WriteStatement
from shop_common.storage.idempotency import IdempotencyKey
from shop_common.storage.prepared import Prepared, PreparedByKeys
from shop_common.storage.unit_of_work import Transaction


class Resource(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def revision(self) -> int: ...
    @property
    def update_time(self) -> datetime: ...


R = TypeVar("R", bound=Resource)


def to_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


class RowCodec(Protocol[R]):
    def to_row(self, resource: R) -> dict[str, Any]: ...
    def from_row(self, row: Mapping[Any, Any]) -> R: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Slice(Generic[R]):
    """Resources in id order, read from one snapshot."""

    items: list[R]
    more: bool
    """Whether resources follow the last one."""
    revision: int
    """The revision of the snapshot."""


# A page stops early once its rows hold this much text, so that the response stays well
# under gRPC's 4 MiB message limit (AIP-158 allows short pages; the token goes on from there).
PAGE_BUDGET_BYTES = 1_500_000


def _within_budget(rows: Sequence[Mapping[Any, Any]]) -> Sequence[Mapping[Any, Any]]:
    spent = 0
    for n, row in enumerate(rows):
        spent += sum(len(v) if isinstance(v, str) else 8 for v in row.values())
        if spent > PAGE_BUDGET_BYTES and n > 0:
            return rows[:n]
    return rows


class ResourceTable(Generic[R]):
    def __init__(
        self,
        table: sa.Table,
        codec: RowCodec[R],
        *,
        changelog: Changelog,
        not_found: Callable[[str], DomainError],
        conflict: Callable[[IntegrityError], DomainError],
    ) -> None:
        self._table = table
        self._codec = codec
        self._not_found = not_found
        self._conflict = conflict
        self._get = Prepared(sa.select(table).where(table.c.id == sa.bindparam("id")))
        self._get_many = PreparedByKeys(table.c.id, lambda where: sa.select(table).where(where))
        # Sent with the change that records them (see `Changelog.append`).
        self._names = {c.name: f"w_{c.name}" for c in table.c}
        values: dict[str, Any] = {c.name: sa.bindparam(self._names[c.name]) for c in table.c}
        self._insert = WriteStatement.insert(table, self._names)
        self._update = WriteStatement.of(
            table.update().where(table.c.id == sa.bindparam("w__id")).values(values)
        )
        self._revision = sa.select(changelog.current_revision_query)

    @property
    def columns(self) -> sa.ColumnCollection[str, sa.Column[Any]]:
        return self._table.c

    # -- reads --------------------------------------------------------------------------

    def get(self, conn: Connection, resource_id: str) -> R | None:
        row = self._get.first_mapping(conn, {"id": resource_id})
        return None if row is None else self._codec.from_row(row)

    def get_many(self, conn: Connection, ids: Sequence[str]) -> dict[str, R]:
        """The resources found among `ids`, by id, read by one statement (see
        `storage.batched`); an id given twice is read once."""
        from_row = self._codec.from_row
        return {row["id"]: from_row(row) for row in self._get_many.mappings(conn, ids)}

    def slice(
        self,
        conn: Connection,
        after: str | None,
        limit: int,
        where: sa.ColumnElement[bool] | None = None,
    ) -> Slice[R]:
        """Up to `limit` resources after id `after`, in id order, with the snapshot's revision."""
        query = sa.select(self._table).order_by(self._table.c.id).limit(limit + 1)
        if after is not None:
            query = query.where(self._table.c.id > after)
        if where is not None:
            query = query.where(where)
        rows = conn.execute(query).mappings().all()
        revision = conn.execute(self._revision).scalar()
        kept = _within_budget(rows[:limit])
        found = [self._codec.from_row(r) for r in kept]
        return Slice(found, len(rows) > len(kept), int(revision or 0))

    # -- writes, each recorded in the changelog -------------------------------------------

    def replay(self, tx: Transaction, key: IdempotencyKey | None) -> R | None:
        """The result of an earlier request with this key, if it was the same request."""
        earlier = None if key is None else tx.recall(key)
        return None if earlier is None else self._codec.from_row(orjson.loads(earlier))

    def insert(self, tx: Transaction, draft: R, key: IdempotencyKey | None = None) -> R:
        """Stores `draft` (and the response under `key`, for replays)."""
        resource: R = dataclasses.replace(draft, revision=tx.revision)  # type: ignore[type-var]
        row = self._codec.to_row(resource)
        data = orjson.dumps(row).decode()
        at = to_us(resource.update_time)
        self._record(tx, resource.id, data, None, at, Write(self._insert, self._params(row)))
        if key is not None:
            tx.remember(key, data, at)
        return resource

    def update(self, tx: Transaction, resource_id: str, change: Callable[[R], R]) -> R:
        """Applies `change` (which may refuse by raising) to the current value."""
        _ = tx.revision  # writers are serialized (see `storage.database`): no row lock needed
        return self._replace(tx, self._current(tx.conn, resource_id), change)

    def update_matching(
        self, tx: Transaction, where: sa.ColumnElement[bool], change: Callable[[R], R]
    ) -> list[R]:
        """Applies `change` to every resource `where` holds, all under the transaction's
        revision; takes no revision when nothing matches."""
        rows = tx.conn.execute(sa.select(self._table).where(where).order_by(self._table.c.id))
        before = [self._codec.from_row(r) for r in rows.mappings()]
        return [self._replace(tx, resource, change) for resource in before]

    def delete(
        self, tx: Transaction, resource_id: str, check: Callable[[R], None], at: datetime
    ) -> R:
        """Deletes the resource if `check` (which may refuse by raising) allows it."""
        revision = tx.revision
        resource = self._current(tx.conn, resource_id)
        check(resource)
        tx.conn.execute(self._table.delete().where(self._table.c.id == resource_id))
        gone = orjson.dumps({"id": resource_id, "revision": revision}).decode()
        prev = orjson.dumps(self._codec.to_row(resource)).decode()
        tx.record(resource_id, ChangeType.DELETE, gone, prev, to_us(at))
        return resource

    def _replace(self, tx: Transaction, before: R, change: Callable[[R], R]) -> R:
        after: R = dataclasses.replace(change(before), revision=tx.revision)  # type: ignore[type-var]
        row = self._codec.to_row(after)
        prev = orjson.dumps(self._codec.to_row(before)).decode()
        data = orjson.dumps(row).decode()
        write = Write(self._update, self._params(row) | {"w__id": before.id})
        self._record(tx, after.id, data, prev, to_us(after.update_time), write)
        return after

    def _current(self, conn: Connection, resource_id: str) -> R:
        found = self.get(conn, resource_id)
        if found is None:
            raise self._not_found(resource_id)
        return found

    def _params(self, row: Mapping[str, Any]) -> dict[str, Any]:
        names = self._names
        return {names[column]: value for column, value in row.items()}

    def _record(
        self,
        tx: Transaction,
        resource_id: str,
        data: str,
        prev: str | None,
        at_us: int,
        write: Write,
    ) -> None:
        """Writes the row and records its change, refusing what the table's constraints
        refuse (a duplicate, say) as this table's conflict."""
        try:
            tx.record(resource_id, ChangeType.PUT, data, prev, at_us, write)
        except IntegrityError as error:
            raise self._conflict(error) from None
