"""The order service's view of users: who exists, who was deleted, and the user service
revision the view is current to. Only the user feed (`user_feed`) changes it.

A batch of events is one unit of work with the new revision and the cancellation of
the deleted users' open orders: a crash neither loses an event nor applies one twice.
Writers are serialized whole, across replicas (each write transaction takes the writer
lock first: see `storage.database`), and appliers lock the state row too; a user's row
carries the revision of its last change, so an older event is skipped, and the subject
that owns the user (`ownership` reads it). CreateOrder's unit reads the user's row (`find`):
a deletion applied by another writer comes first (the order is refused) or after the order
has committed (and cancels it). A user the view has not seen is asked of the user service
and recorded (`learn`) in that unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from order_svc import domain, schema
from order_svc.domain import Order, State
from shop_common.domain import Clock
from shop_common.storage import Prepared, ResourceTable, Transaction, UnitOfWork


@dataclass(frozen=True, slots=True)
class KnownUser:
    """What the view knows of a user it has seen."""

    deleted: bool
    subject: str | None
    """The subject that owns the user; None when none does."""


@dataclass(frozen=True, slots=True)
class UserChange:
    user_id: str
    revision: int
    deleted: bool
    subject: str | None = None


_users = schema.known_users
_state = schema.user_view_state


def _upsert(dialect: type[postgresql.Insert] | type[sqlite.Insert]) -> sa.Executable:
    insert = dialect(_users)
    upsert = insert.on_conflict_do_update(
        index_elements=[_users.c.id],
        set_={
            "revision": insert.excluded.revision,
            "deleted": insert.excluded.deleted,
            "subject": insert.excluded.subject,
        },
        where=_users.c.revision < insert.excluded.revision,
    )
    # Whether it wrote is its rowcount, which SQLAlchemy keeps for an INSERT only when asked
    # (psycopg's result is -1 otherwise, which reads as true).
    return upsert.execution_options(preserve_rowcount=True)


def _learn(dialect: type[postgresql.Insert] | type[sqlite.Insert]) -> sa.Executable:
    return dialect(_users).on_conflict_do_nothing(index_elements=[_users.c.id])


class UserView:
    def __init__(self, uow: UnitOfWork, orders: ResourceTable[Order], clock: Clock) -> None:
        self._uow = uow
        self._orders = orders
        self._clock = clock
        row = sa.select(_users.c.deleted, _users.c.subject).where(_users.c.id == sa.bindparam("id"))
        self._row = Prepared(row)
        self._revision = sa.select(_state.c.revision).where(_state.c.id == 1)
        self._upsert = {"postgresql": _upsert(postgresql.Insert), "sqlite": _upsert(sqlite.Insert)}
        self._learn = {"postgresql": _learn(postgresql.Insert), "sqlite": _learn(sqlite.Insert)}

    async def revision(self) -> int | None:
        """The user service revision the view is current to; None before the first listing."""
        return await self._uow.read(lambda conn: conn.execute(self._revision).scalar())

    def find(self, tx: Transaction, user_id: str) -> KnownUser | None:
        """What the view knows of this user, which no other writer changes before this unit
        commits; None when it has not seen the user: the view may be behind the user service."""
        row = self._row.first(tx.conn, {"id": user_id})
        return None if row is None else KnownUser(deleted=bool(row[0]), subject=row[1])

    def learn(
        self, tx: Transaction, user_id: str, revision: int, subject: str | None = None
    ) -> None:
        """The user service just said this user exists at `revision`, owned by `subject`.
        Recorded unless the view knows the user already, so that the user's deletion, applied
        later, finds this user's orders (and a listing that lacks the user marks it gone)."""
        values = {"id": user_id, "revision": revision, "deleted": False, "subject": subject}
        tx.conn.execute(self._learn[tx.conn.dialect.name], values)

    async def apply(self, changes: Sequence[UserChange], revision: int) -> list[Order]:
        """Applies a batch of the feed, up to and including `revision`; returns the orders
        cancelled because their user is gone."""

        def unit(tx: Transaction) -> list[Order]:
            current = self._lock_state(tx.conn)
            if current is not None and revision <= current:
                return []  # applied before (e.g. by another replica)
            gone = []
            for change in changes:
                if current is not None and change.revision <= current:
                    continue
                if self._put(tx.conn, change) and change.deleted:
                    gone.append(change.user_id)
            cancelled = self._cancel_orders_of(tx, gone)
            self._set_revision(tx.conn, revision)
            return cancelled

        return await self._uow.write(unit)

    async def replace(self, listed: Sequence[UserChange], revision: int) -> list[Order]:
        """After a full listing of users taken at `revision`: users the view holds as live
        but the listing lacks were deleted meanwhile."""

        def unit(tx: Transaction) -> list[Order]:
            self._lock_state(tx.conn)
            rows = tx.conn.execute(sa.select(_users.c.id, _users.c.deleted, _users.c.subject))
            known = {row.id: row for row in rows}
            for user in listed:
                self._put(tx.conn, user)
            present = {user.user_id for user in listed}
            missing = [
                UserChange(u, revision, deleted=True, subject=row.subject)
                for u, row in known.items()
                if not row.deleted and u not in present
            ]
            # A user the view learned of after the listing's snapshot is newer than it: kept.
            gone = [change.user_id for change in missing if self._put(tx.conn, change)]
            cancelled = self._cancel_orders_of(tx, gone)
            self._set_revision(tx.conn, revision)
            return cancelled

        return await self._uow.write(unit)

    def _lock_state(self, conn: Connection) -> int | None:
        return conn.execute(self._revision.with_for_update()).scalar()

    def _put(self, conn: Connection, change: UserChange) -> bool:
        """Records the change unless the view holds a newer one; returns whether it did.

        An upsert: on PostgreSQL an order's transaction may be inserting the same row
        (`learn`); this waits for it, then updates it.
        """
        values = {
            "id": change.user_id,
            "revision": change.revision,
            "deleted": change.deleted,
            "subject": change.subject,
        }
        return bool(conn.execute(self._upsert[conn.dialect.name], values).rowcount)

    def _set_revision(self, conn: Connection, revision: int) -> None:
        conn.execute(_state.update().where(_state.c.id == 1).values(revision=revision))

    def _cancel_orders_of(self, tx: Transaction, user_ids: Sequence[str]) -> list[Order]:
        if not user_ids:
            return []
        now = self._clock()
        columns = self._orders.columns
        return self._orders.update_matching(
            tx,
            sa.and_(columns.user_id.in_(user_ids), columns.state == int(State.PENDING)),
            lambda order: domain.cancelled(order, "", now),
        )
