"""A table of resources in SQL, each write recorded in the changelog in its own transaction.

Both services keep their resources this way; a `RowCodec` says how one kind of
resource maps to its table's columns. Every write takes the next revision first
(see `changelog`), so the resource's `revision` is the revision of the write that
last changed it and doubles as its etag. Each public method is one unit of work,
run whole in a database thread (see `db`).
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

from shop_common.changelog import Batch, Change, Changelog, ChangelogTables, ChangeType
from shop_common.db import Database, Prepared
from shop_common.errors import DomainError
from shop_common.idempotency import IdempotencyKey, IdempotencyStore


class Resource(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def revision(self) -> int: ...
    @property
    def update_time(self) -> datetime: ...


R = TypeVar("R", bound=Resource)
T = TypeVar("T")


def to_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


class RowCodec(Protocol[R]):
    def to_row(self, resource: R) -> dict[str, Any]: ...
    def from_row(self, row: Mapping[Any, Any]) -> R: ...


class _Replay(Exception):
    """Rolls back a transaction whose request was done before, carrying that result."""

    def __init__(self, response: str) -> None:
        self.response = response


@dataclasses.dataclass(frozen=True, slots=True)
class Page(Generic[R]):
    items: list[R]
    more: bool
    """Whether resources follow the last one."""
    revision: int
    """The revision of the snapshot the page was read from."""


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


class ResourceStore(Generic[R]):
    def __init__(
        self,
        db: Database,
        table: sa.Table,
        codec: RowCodec[R],
        *,
        changelog: ChangelogTables,
        idempotency_keys: sa.Table,
        not_found: Callable[[str], DomainError],
        conflict: Callable[[IntegrityError], DomainError],
        committed: Callable[[Batch | None], None] = lambda _batch: None,
    ) -> None:
        self._db = db
        self._table = table
        self._codec = codec
        self._log = Changelog(changelog)
        self._keys = IdempotencyStore(idempotency_keys)
        self._not_found = not_found
        self._conflict = conflict
        self._committed = committed
        """Told after every committed write, with the changes it wrote when they are at hand
        (the service's feed passes them on, or reads the log)."""
        self._get = Prepared(sa.select(table).where(table.c.id == sa.bindparam("id")))
        self._insert = Prepared(table.insert())
        self._update = Prepared(
            table.update().where(table.c.id == sa.bindparam("_id")), [c.name for c in table.c]
        )
        self._revision = sa.select(self._log.current_revision_query)

    @property
    def columns(self) -> sa.ColumnCollection[str, sa.Column[Any]]:
        return self._table.c

    async def create(
        self,
        draft: R,
        key: IdempotencyKey | None,
        check: Callable[[Connection], Exception | None] | None = None,
    ) -> R:
        """Stores `draft`; with a key already used by the same request, returns that result.

        `check` runs first in the same transaction (so the rows it reads and locks come
        before the revision counter, in every writer's lock order); the error it returns,
        if any, refuses the create, unless the key replays an earlier result.
        """

        def work(conn: Connection) -> tuple[R, Batch]:
            refusal = None if check is None else check(conn)
            revision = self._log.next_revision(conn)
            if key is not None and (earlier := self._keys.recall(conn, key)):
                raise _Replay(earlier)
            if refusal is not None:
                raise refusal
            resource: R = dataclasses.replace(draft, revision=revision)  # type: ignore[type-var]
            row = self._codec.to_row(resource)
            self._insert.execute(conn, row)
            data = orjson.dumps(row).decode()
            written = self._append(conn, revision, resource, ChangeType.PUT, data, None)
            if key is not None:
                self._keys.remember(conn, key, data, to_us(resource.update_time))
            return resource, Batch(revision, (written,))

        try:
            created, _batch = await self._write(work)
        except _Replay as replay:
            return self._codec.from_row(orjson.loads(replay.response))
        except IntegrityError as error:
            raise self._conflict(error) from None
        return created

    async def expire_keys(self, now: datetime) -> int:
        """Forgets idempotency keys past their retention; returns how many."""
        return await self._db.write(lambda conn: self._keys.expire(conn, to_us(now)))

    async def get(self, resource_id: str) -> R | None:
        def work(conn: Connection) -> R | None:
            row = self._get.first_mapping(conn, {"id": resource_id})
            return None if row is None else self._codec.from_row(row)

        return await self._db.read(work)

    async def page(
        self, after: str | None, limit: int, where: sa.ColumnElement[bool] | None = None
    ) -> Page[R]:
        """Up to `limit` resources after id `after`, in id order."""
        query = sa.select(self._table).order_by(self._table.c.id).limit(limit + 1)
        if after is not None:
            query = query.where(self._table.c.id > after)
        if where is not None:
            query = query.where(where)

        def work(conn: Connection) -> Page[R]:
            rows = conn.execute(query).mappings().all()
            revision = conn.execute(self._revision).scalar()
            kept = _within_budget(rows[:limit])
            found = [self._codec.from_row(r) for r in kept]
            return Page(found, len(rows) > len(kept), int(revision or 0))

        return await self._db.read(work)

    async def update(self, resource_id: str, change: Callable[[R], R]) -> R:
        """Applies `change` (which may refuse by raising) to the current value, atomically."""

        def work(conn: Connection) -> tuple[R, Batch]:
            revision = self._log.next_revision(conn)
            before = self._current(conn, resource_id)
            after: R = dataclasses.replace(change(before), revision=revision)  # type: ignore[type-var]
            row = self._codec.to_row(after)
            self._update.execute(conn, row | {"_id": resource_id})
            prev = orjson.dumps(self._codec.to_row(before)).decode()
            data = orjson.dumps(row).decode()
            written = self._append(conn, revision, after, ChangeType.PUT, data, prev)
            return after, Batch(revision, (written,))

        try:
            updated, _batch = await self._write(work)
        except IntegrityError as error:
            raise self._conflict(error) from None
        return updated

    def update_matching(
        self, conn: Connection, where: sa.ColumnElement[bool], change: Callable[[R], R]
    ) -> list[R]:
        """Within the caller's transaction, applies `change` to every resource `where` holds.

        All of them change under one revision (one transaction), one change row each; no
        revision is taken when nothing matches. The caller calls `committed` after commit.
        """
        rows = conn.execute(sa.select(self._table).where(where).order_by(self._table.c.id))
        before = [self._codec.from_row(r) for r in rows.mappings()]
        if not before:
            return []
        revision = self._log.next_revision(conn)
        changed = []
        for seq, resource in enumerate(before):
            after: R = dataclasses.replace(change(resource), revision=revision)  # type: ignore[type-var]
            row = self._codec.to_row(after)
            self._update.execute(conn, row | {"_id": after.id})
            prev = orjson.dumps(self._codec.to_row(resource)).decode()
            data = orjson.dumps(row).decode()
            self._append(conn, revision, after, ChangeType.PUT, data, prev, seq=seq)
            changed.append(after)
        return changed

    def committed(self) -> None:
        """After the commit of a transaction that called `update_matching`."""
        self._committed(None)

    async def delete(self, resource_id: str, check: Callable[[R], None], now: datetime) -> R:
        """Deletes the resource if `check` (which may refuse by raising) allows it."""

        def work(conn: Connection) -> tuple[R, Batch]:
            revision = self._log.next_revision(conn)
            resource = self._current(conn, resource_id)
            check(resource)
            conn.execute(self._table.delete().where(self._table.c.id == resource_id))
            gone = orjson.dumps({"id": resource_id, "revision": revision}).decode()
            prev = orjson.dumps(self._codec.to_row(resource)).decode()
            written = self._append(conn, revision, resource, ChangeType.DELETE, gone, prev, now)
            return resource, Batch(revision, (written,))

        deleted, _batch = await self._write(work)
        return deleted

    async def _write(self, work: Callable[[Connection], tuple[T, Batch]]) -> tuple[T, Batch]:
        """Runs `work` and tells the feed of its batch once committed, also when the caller
        was cancelled meanwhile (the unit may commit all the same)."""
        done = await self._db.write(work, abandoned=self._announce)
        self._announce(done)
        return done

    def _announce(self, done: tuple[Any, Batch]) -> None:
        self._committed(done[1])

    def _current(self, conn: Connection, resource_id: str) -> R:
        # No row lock needed: the counter row taken by next_revision serializes writers.
        row = self._get.first_mapping(conn, {"id": resource_id})
        if row is None:
            raise self._not_found(resource_id)
        return self._codec.from_row(row)

    def _append(
        self,
        conn: Connection,
        revision: int,
        resource: R,
        change: ChangeType,
        data: str,
        prev: str | None,
        at: datetime | None = None,
        *,
        seq: int = 0,
    ) -> Change:
        return self._log.append(
            conn,
            revision=revision,
            seq=seq,
            resource_id=resource.id,
            change=change,
            data=data,
            prev=prev,
            commit_time_us=to_us(at or resource.update_time),
        )
