"""Units of work: one transaction each, whose changes reach the feed once committed.

A unit is a plain function of a `Transaction`, run whole in a database thread (`threads`).
It reads and writes through synchronous table operations (`resource_table`), which record
what they change in the changelog under the transaction's revision. `UnitOfWork.write`
commits the unit and hands its batch of changes to the feed: in one place, also when the
caller was cancelled meanwhile (the unit may commit all the same).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

from sqlalchemy.engine import Connection

from shop_common.storage.changelog import Batch, Change, Changelog, ChangeType, Write
from shop_common.storage.database import Database
from shop_common.storage.idempotency import IdempotencyKey, IdempotencyStore

T = TypeVar("T")


class Transaction:
    """What a unit of work is given: its connection, its revision, the changes it wrote.

    The revision is taken on first use; writers are serialized whole (see
    `storage.database`), so what a unit reads stays as it read it until it commits.
    A unit that took a revision but wrote no change is rolled back (an idempotent replay,
    a refusal it returns rather than raises), so that revisions stay dense.
    """

    __slots__ = ("_keys", "_log", "_revision", "changes", "conn")

    def __init__(self, conn: Connection, changelog: Changelog, keys: IdempotencyStore) -> None:
        self.conn = conn
        self._log = changelog
        self._keys = keys
        self._revision = 0
        self.changes: list[Change] = []

    @property
    def revision(self) -> int:
        if not self._revision:
            self._revision = self._log.next_revision(self.conn)
        return self._revision

    @property
    def took_revision(self) -> bool:
        return self._revision != 0

    def record(
        self,
        resource_id: str,
        change: ChangeType,
        data: str,
        prev: str | None,
        commit_time_us: int,
        write: Write | None = None,
    ) -> None:
        """Appends one change to the changelog under this transaction's revision; with
        `write`, runs the write it records too (see `Changelog.append`)."""
        self.changes.append(
            self._log.append(
                self.conn,
                revision=self.revision,
                seq=len(self.changes),
                resource_id=resource_id,
                change=change,
                data=data,
                prev=prev,
                commit_time_us=commit_time_us,
                write=write,
            )
        )

    def recall(self, key: IdempotencyKey) -> str | None:
        """The response of an earlier identical request, or None. A retry racing the original
        waits for it (writers are serialized), then sees its key."""
        return self._keys.recall(self.conn, key)

    def remember(self, key: IdempotencyKey, response: str, at_us: int) -> None:
        self._keys.remember(self.conn, key, response, at_us)


class _Undone(Exception, Generic[T]):
    """Rolls back a unit that took a revision and wrote nothing, carrying its result."""

    def __init__(self, result: T) -> None:
        self.result = result


class UnitOfWork:
    """Runs a service's units of work and tells its feed of each committed batch."""

    def __init__(
        self,
        db: Database,
        changelog: Changelog,
        keys: IdempotencyStore,
        committed: Callable[[Batch], None] = lambda _batch: None,
    ) -> None:
        self._db = db
        self._log = changelog
        self._keys = keys
        self._committed = committed

    async def write(self, unit: Callable[[Transaction], T]) -> T:
        """Runs `unit` in one transaction; commits unless it raises."""

        def run(conn: Connection) -> tuple[T, Batch | None]:
            tx = Transaction(conn, self._log, self._keys)
            result = unit(tx)
            if not tx.changes:
                if tx.took_revision:
                    raise _Undone(result)
                return result, None
            return result, Batch(tx.revision, tuple(tx.changes))

        try:
            done = await self._db.write(run, abandoned=self._announce)
        except _Undone as undone:
            return cast(T, undone.result)
        self._announce(done)
        return done[0]

    async def read(self, query: Callable[[Connection], T]) -> T:
        """Runs `query` in one read transaction: one snapshot for all its statements."""
        return await self._db.read(query)

    async def expire_keys(self, now: datetime) -> int:
        """Forgets idempotency keys past their retention; returns how many."""
        now_us = int(now.timestamp() * 1_000_000)
        return await self._db.write(lambda conn: self._keys.expire(conn, now_us))

    def _announce(self, done: tuple[Any, Batch | None]) -> None:
        if done[1] is not None:
            self._committed(done[1])
