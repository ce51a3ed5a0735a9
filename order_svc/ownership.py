"""Whose an order or a user is, read from the view of users (`user_view`): the subject
that owns the order's user. Each read rides in the unit of work of the read or write it
guards: one statement for GetOrder (the order joined with its user's row, for a batch of
GetOrders at once), one indexed lookup for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from order_svc import schema
from order_svc.domain import Order
from order_svc.store import OrderRows
from shop_common.storage import Prepared, PreparedByKeys

_users = schema.known_users
_orders = schema.orders


NAMED_USERS = 50
"""Up to this many users a subject owns are named in its listing's query; beyond, a subquery
finds them (a subject may create users without limit, and SQLite takes at most 32,766 bound
parameters in a statement)."""


class Ownership:
    def __init__(self) -> None:
        self._rows = OrderRows()
        with_owner = sa.select(_orders, _users.c.subject.label("owner")).select_from(
            _orders.outerjoin(_users, _users.c.id == _orders.c.user_id)
        )
        self._orders = PreparedByKeys(_orders.c.id, with_owner.where)
        self._subject = Prepared(
            sa.select(_users.c.subject).where(_users.c.id == sa.bindparam("id"))
        )
        self._users_of = Prepared(
            sa.select(_users.c.id).where(_users.c.subject == sa.bindparam("subject"))
        )
        # The subject's live user, read in the order's unit of work as `UserView.find` reads a
        # user's row (writers are serialized: a deletion comes before or after the order).
        # Should the view briefly hold two (a new one learned before the old one's deletion
        # arrives), the newer.
        self._live_user = Prepared(
            sa.select(_users.c.id)
            .where(_users.c.subject == sa.bindparam("subject"), sa.not_(_users.c.deleted))
            .order_by(_users.c.revision.desc())
            .limit(1),
            reads_deferred=False,  # the view: no table of the inserts a writer defers
        )

    def orders(
        self, conn: Connection, order_ids: Sequence[str]
    ) -> dict[str, tuple[Order, str | None]]:
        """The orders found among `order_ids`, by id, each with the subject that owns it (None:
        no subject does), in one statement (GetOrders read together: `storage.batched`)."""
        from_row = self._rows.from_row
        found = self._orders.mappings(conn, order_ids)
        return {row["id"]: (from_row(row), row["owner"]) for row in found}

    def subject_of(self, conn: Connection, user_id: str) -> str | None:
        """The subject that owns the user; None when none does or the view has not seen it."""
        row = self._subject.first(conn, {"id": user_id})
        return None if row is None else row[0]

    def users_of(self, conn: Connection, subject: str) -> frozenset[str]:
        """Every user the subject owns or owned (a deleted user's orders are still theirs)."""
        return frozenset(row[0] for row in self._users_of.execute(conn, {"subject": subject}))

    def live_user_of(self, conn: Connection, subject: str) -> str | None:
        """The subject's user, the one it orders for by default."""
        row = self._live_user.first(conn, {"subject": subject})
        return None if row is None else row[0]

    def orders_of(self, conn: Connection, subject: str) -> sa.ColumnElement[bool]:
        """A listing's filter: the orders of every user the subject owns or owned.

        The users are read first, so that the page's query names them: for a subject's one
        user (the usual case) it reads a page from the (user_id, id) index in id order, where
        a subquery (its users unknown to the planner) fetched and sorted all of them for
        each page. Several users' orders are still fetched and sorted, after the cursor.
        """
        owned = sorted(self.users_of(conn, subject))
        if len(owned) == 1:
            return _orders.c.user_id == owned[0]
        if len(owned) > NAMED_USERS:  # a bound parameter each, on SQLite
            users = sa.select(_users.c.id).where(_users.c.subject == subject)
            return _orders.c.user_id.in_(users.scalar_subquery())
        return _orders.c.user_id.in_(owned)
