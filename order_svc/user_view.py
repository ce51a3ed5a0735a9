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

The rows of every user whose order is on its way to the writer (`wanted`) are read in one
statement, by the first `find` of a write transaction, and kept with the transaction for
the finds of its other units: the writer lock keeps every other writer out until it
commits, and every write of the view in the transaction drops what was kept. A commit group
of orders reads the view once, where each order read it on its own (on PostgreSQL a
statement costs the driver and the server ~55 µs each; for 16 users in one, ~15 µs a user).
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from order_svc import domain, schema
from order_svc.domain import Order, State
from shop_common.domain import Clock
from shop_common.storage import (
    PreparedByKeys,
    ResourceTable,
    Transaction,
    UnitOfWork,
    transaction_state,
)


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


def _list_page(dialect: type[postgresql.Insert] | type[sqlite.Insert]) -> sa.Executable:
    """A listed user: live at its revision unless the view holds a newer change, and seen by
    the listing (the latest of the listings that saw it, should replicas list at once)."""
    insert = dialect(_users).values(deleted=False)
    newer = _users.c.revision < insert.excluded.revision

    def unless_older(column: str) -> sa.ColumnElement[Any]:
        return sa.case((newer, insert.excluded[column]), else_=_users.c[column])

    return insert.on_conflict_do_update(
        index_elements=[_users.c.id],
        set_={
            "revision": unless_older("revision"),
            "deleted": unless_older("deleted"),
            "subject": unless_older("subject"),
            "listed": sa.case(
                (
                    sa.func.coalesce(_users.c.listed, -1) < insert.excluded.listed,
                    insert.excluded.listed,
                ),
                else_=_users.c.listed,
            ),
        },
    )


_CANCEL_BATCH = 500
"""Users whose open orders one statement cancels, after a listing found them gone."""

_KEPT_ROWS = "user_view.rows"
"""The view's rows read in this write transaction (`UserView.find`), by user id."""
_WANTED_AT_ONCE = 256
"""The most users one read of the view asks for."""


class UserView:
    def __init__(self, uow: UnitOfWork, orders: ResourceTable[Order], clock: Clock) -> None:
        self._uow = uow
        self._orders = orders
        self._clock = clock
        rows = sa.select(_users.c.id, _users.c.deleted, _users.c.subject)
        # The view is no table a writer's units leave inserts for (`storage.deferral`).
        self._rows = PreparedByKeys(_users.c.id, rows.where, reads_deferred=False)
        self._wanted: collections.Counter[str] = collections.Counter()
        self._wanted_lock = threading.Lock()  # the loop adds, the writer's thread reads
        self._revision = sa.select(_state.c.revision).where(_state.c.id == 1)
        self._upsert = {"postgresql": _upsert(postgresql.Insert), "sqlite": _upsert(sqlite.Insert)}
        self._learn = {"postgresql": _learn(postgresql.Insert), "sqlite": _learn(sqlite.Insert)}
        self._list_page = {
            "postgresql": _list_page(postgresql.Insert),
            "sqlite": _list_page(sqlite.Insert),
        }
        self._unlisted = (
            _users.update()
            .where(
                ~_users.c.deleted,
                _users.c.revision < sa.bindparam("listing"),
                sa.or_(_users.c.listed.is_(None), _users.c.listed < sa.bindparam("listing")),
            )
            .values(deleted=True, revision=sa.bindparam("listing"))
            .returning(_users.c.id)
        )

    async def revision(self) -> int | None:
        """The user service revision the view is current to; None before the first listing."""
        return await self._uow.read(lambda conn: conn.execute(self._revision).scalar())

    @contextmanager
    def wanted(self, user_id: str) -> Iterator[None]:
        """While the unit of work that will `find` this user is on its way to the writer:
        the transaction that runs it reads this user's row with the others'."""
        if not user_id:  # the caller's own user, found by its subject (`ownership`)
            yield
            return
        with self._wanted_lock:
            self._wanted[user_id] += 1
        try:
            yield
        finally:
            with self._wanted_lock:
                if self._wanted[user_id] <= 1:
                    del self._wanted[user_id]
                else:
                    self._wanted[user_id] -= 1

    def find(self, tx: Transaction, user_id: str) -> KnownUser | None:
        """What the view knows of this user, which no other writer changes before this unit
        commits; None when it has not seen the user: the view may be behind the user service.

        Read with the rows of the other users `wanted`, and kept with the transaction."""
        state = transaction_state(tx.conn)
        kept: dict[str, KnownUser | None] | None = state.get(_KEPT_ROWS)
        if kept is None or user_id not in kept:
            with self._wanted_lock:
                ids = list(
                    dict.fromkeys([user_id, *itertools.islice(self._wanted, _WANTED_AT_ONCE)])
                )
            found = dict.fromkeys(ids, None) | {
                row[0]: KnownUser(deleted=bool(row[1]), subject=row[2])
                for row in self._rows.execute(tx.conn, ids).fetchall()
            }
            # A new dict, never changed in place: a unit rolled back to its savepoint puts
            # the transaction's state back as it was (`storage.threads`).
            kept = state[_KEPT_ROWS] = found if kept is None else kept | found
        return kept[user_id]

    def learn(
        self, tx: Transaction, user_id: str, revision: int, subject: str | None = None
    ) -> None:
        """The user service just said this user exists at `revision`, owned by `subject`.
        Recorded unless the view knows the user already, so that the user's deletion, applied
        later, finds this user's orders (and a listing that lacks the user marks it gone).

        Not recorded when the view is current to `revision` or later: it has then seen the
        user's creation, so if it holds no row for the user (`find`), the user was deleted
        since the answer (a listing that ended meanwhile did not see it), and recording it
        live would keep it so: no later change of the feed would remove it."""
        current = tx.conn.execute(self._revision).scalar()
        if current is not None and revision <= current:
            return
        values = {"id": user_id, "revision": revision, "deleted": False, "subject": subject}
        _changing(tx.conn).execute(self._learn[tx.conn.dialect.name], values)

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

    async def list_page(self, listed: Sequence[UserChange], listing: int) -> None:
        """Records a page of a listing of users that began at revision `listing` (the first
        page's snapshot): each user as live unless the view holds a newer change, and as seen
        by this listing. One unit per page, so that a listing of a million users holds one
        page in memory, never the whole."""
        rows = [
            {"id": u.user_id, "revision": u.revision, "subject": u.subject, "listed": listing}
            for u in listed
        ]

        def unit(tx: Transaction) -> None:
            if rows:
                _changing(tx.conn).execute(self._list_page[tx.conn.dialect.name], rows)

        await self._uow.write(unit)

    async def forget_listings_after(self, revision: int) -> None:
        """The user service is back at `revision` (restored): the marks of listings taken
        past it are of a history it lost, and would keep the next listing from seeing that
        users they saw are gone. (A listing of the restored service starts at or below its
        head, so none of its marks is forgotten.)"""

        def unit(tx: Transaction) -> None:
            statement = _users.update().where(_users.c.listed > revision).values(listed=None)
            _changing(tx.conn).execute(statement)

        await self._uow.write(unit)

    async def end_listing(self, listing: int) -> list[Order]:
        """After the last page of the listing that began at revision `listing`: the users the
        view holds as live that no listing since has seen, and whose last change is older than
        the listing, were deleted meanwhile (a user learned of after the snapshot is newer than
        it: kept). Their open orders are cancelled, and the view is current to `listing`."""

        def unit(tx: Transaction) -> list[Order]:
            self._lock_state(tx.conn)
            gone = list(_changing(tx.conn).execute(self._unlisted, {"listing": listing}).scalars())
            cancelled = [
                order
                for at in range(0, len(gone), _CANCEL_BATCH)
                for order in self._cancel_orders_of(tx, gone[at : at + _CANCEL_BATCH])
            ]
            self._set_revision(tx.conn, listing)
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
        return bool(_changing(conn).execute(self._upsert[conn.dialect.name], values).rowcount)

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


def _changing(conn: Connection) -> Connection:
    """`conn`, for a statement that writes the view: the rows `find` kept are dropped."""
    transaction_state(conn).pop(_KEPT_ROWS, None)
    return conn
