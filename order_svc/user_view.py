"""The order service's view of users: who exists, who was deleted, and the user service
revision the view is current to. Only the user feed (`user_feed`) changes it.

Each batch of events is applied in one transaction together with the new revision and
the cancellation of the deleted users' open orders, so that a crash at any point
neither loses an event nor applies one twice. Appliers take the state row first (two
replicas on one database apply one after the other); a user's row carries the
revision of its last change, so an event older than what the view holds is skipped.

CreateOrder reads a user's row in its own write transaction, locked for share on
PostgreSQL: a deletion applied concurrently either comes first (the order is refused)
or waits for the order to commit (and then cancels it). A user the view has not seen
yet is checked with the user service and recorded (`learn`) in that transaction, so the
same holds for it, and a later listing that lacks the user cancels its orders too.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from order_svc import domain, schema
from order_svc.domain import Order, State
from shop_common.db import Database, Prepared
from shop_common.resource_store import ResourceStore


class Verdict(enum.Enum):
    LIVE = "live"
    DELETED = "deleted"
    UNKNOWN = "unknown"
    """Not seen yet: the view may be behind the user service."""


@dataclass(frozen=True, slots=True)
class UserChange:
    user_id: str
    revision: int
    deleted: bool


_users = schema.known_users
_state = schema.user_view_state


class UserView:
    def __init__(
        self, db: Database, orders: ResourceStore[Order], clock: Callable[[], datetime]
    ) -> None:
        self._db = db
        self._orders = orders
        self._clock = clock
        self._row = sa.select(_users.c.deleted).where(_users.c.id == sa.bindparam("id"))
        self._locked_row = Prepared(self._row.with_for_update(read=True))
        self._revision = sa.select(_state.c.revision).where(_state.c.id == 1)
        insert = (postgresql.insert if db.is_postgres else sqlite.insert)(_users)
        self._upsert = insert.on_conflict_do_update(
            index_elements=[_users.c.id],
            set_={"revision": insert.excluded.revision, "deleted": insert.excluded.deleted},
            where=_users.c.revision < insert.excluded.revision,
        )
        self._learn = insert.on_conflict_do_nothing(index_elements=[_users.c.id])

    async def revision(self) -> int | None:
        """The user service revision the view is current to; None before the first listing."""
        return await self._db.read(lambda conn: conn.execute(self._revision).scalar())

    def verdict(self, conn: Connection, user_id: str) -> Verdict:
        """Within a write transaction: what the view knows of this user (row locked for share)."""
        row = self._locked_row.first(conn, {"id": user_id})
        if row is None:
            return Verdict.UNKNOWN
        deleted = row[0]
        return Verdict.DELETED if deleted else Verdict.LIVE

    async def apply(self, changes: Sequence[UserChange], revision: int) -> list[Order]:
        """Applies a batch of the feed, up to and including `revision`; returns the orders
        cancelled because their user is gone."""

        def work(conn: Connection) -> list[Order]:
            current = self._lock_state(conn)
            if current is not None and revision <= current:
                return []  # applied before (e.g. by another replica)
            gone = []
            for change in changes:
                if current is not None and change.revision <= current:
                    continue
                if self._put(conn, change) and change.deleted:
                    gone.append(change.user_id)
            cancelled = self._cancel_orders_of(conn, gone)
            conn.execute(_state.update().where(_state.c.id == 1).values(revision=revision))
            return cancelled

        return await self._write(work)

    async def replace(self, listed: Mapping[str, int], revision: int) -> list[Order]:
        """After a full listing of users (id → revision) taken at `revision`: users the
        view holds as live but the listing lacks were deleted meanwhile."""

        def work(conn: Connection) -> list[Order]:
            self._lock_state(conn)
            rows = conn.execute(sa.select(_users.c.id, _users.c.deleted))
            known = {row.id: row.deleted for row in rows}
            for user_id, user_revision in listed.items():
                self._put(conn, UserChange(user_id, user_revision, deleted=False))
            gone = [u for u, deleted in known.items() if not deleted and u not in listed]
            for user_id in gone:
                self._put(conn, UserChange(user_id, revision, deleted=True))
            cancelled = self._cancel_orders_of(conn, gone)
            conn.execute(_state.update().where(_state.c.id == 1).values(revision=revision))
            return cancelled

        return await self._write(work)

    async def _write(self, work: Callable[[Connection], list[Order]]) -> list[Order]:
        cancelled = await self._db.write(work, abandoned=self._announce)
        self._announce(cancelled)
        return cancelled

    def _announce(self, cancelled: list[Order]) -> None:
        if cancelled:
            self._orders.committed()

    def _lock_state(self, conn: Connection) -> int | None:
        return conn.execute(self._revision.with_for_update()).scalar()

    def learn(self, conn: Connection, user_id: str, revision: int) -> None:
        """Within an order's write transaction: the user service just said this user exists
        at `revision`. Recorded unless the view knows the user already, so that the user's
        deletion, applied later, finds this user's orders (and a listing that lacks the
        user marks it gone)."""
        conn.execute(self._learn, {"id": user_id, "revision": revision, "deleted": False})

    def _put(self, conn: Connection, change: UserChange) -> bool:
        """Records the change unless the view holds a newer one; returns whether it did.

        An upsert: on PostgreSQL an order's transaction may be inserting the same row
        (`learn`); this waits for it, then updates it.
        """
        values = {"id": change.user_id, "revision": change.revision, "deleted": change.deleted}
        return bool(conn.execute(self._upsert, values).rowcount)

    def _cancel_orders_of(self, conn: Connection, user_ids: Sequence[str]) -> list[Order]:
        if not user_ids:
            return []
        now = self._clock()
        columns = self._orders.columns
        return self._orders.update_matching(
            conn,
            sa.and_(columns.user_id.in_(user_ids), columns.state == int(State.PENDING)),
            lambda order: domain.cancelled(order, "", now),
        )
