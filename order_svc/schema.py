"""The order service's tables and their migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop_common.storage import Migration, changelog_tables, idempotency_table

metadata = sa.MetaData()

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.String(36), nullable=False),
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    # [[sku, quantity, unit price in nanos], ...]
    sa.Column("items", sa.Text, nullable=False),
    sa.Column("create_time_us", sa.BigInteger, nullable=False),
    sa.Column("update_time_us", sa.BigInteger, nullable=False),
    sa.Column("revision", sa.BigInteger, nullable=False),
    # A user's orders in id order: ListOrders' keyset pages read a page of them from here,
    # no sort (and lookups by user_id alone use its first column).
    sa.Index("ix_orders_user_id_id", "user_id", "id"),
)
changelog = changelog_tables(metadata)
idempotency_keys = idempotency_table(metadata)

# The order service's view of users, fed by WatchUsers (see `user_view`).
known_users = sa.Table(
    "known_users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    # The user service's revision of the last change applied to this user.
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    # The token subject that owns the user (NULL: none does); a deleted user keeps it, so
    # that its subject still owns the user's orders. Not unique: a subject whose user was
    # deleted may own a new one.
    sa.Column("subject", sa.String(255), nullable=True),
    # The user service revision of the latest listing that saw the user live (NULL: none
    # has); a listing's end marks deleted the live users it did not see (`user_view`).
    sa.Column("listed", sa.BigInteger, nullable=True),
    sa.Index("ix_known_users_subject", "subject"),
)
user_view_state = sa.Table(
    "user_view_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # The user service's revision the view is current to; NULL until the first listing.
    sa.Column("revision", sa.BigInteger, nullable=True),
)


def _initial(conn: Connection) -> None:
    # The orders table as it was first released: `_orders_by_user` replaces its index.
    first = sa.Table("orders", sa.MetaData(), *(c._copy() for c in orders.c))
    sa.Index("ix_orders_user_id", first.c.user_id)
    first.create(conn)
    idempotency_keys.create(conn)
    changelog.create(conn)


def _user_view(conn: Connection) -> None:
    # The view as it was first released: `_owners` adds the subjects.
    first = sa.Table(
        "known_users",
        sa.MetaData(),
        *(c._copy() for c in known_users.c if c.name not in ("subject", "listed")),
    )
    first.create(conn)
    user_view_state.create(conn)
    conn.execute(user_view_state.insert().values(id=1, revision=None))


def _owners(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE known_users ADD COLUMN subject VARCHAR(255)"))
    next(i for i in known_users.indexes if i.name == "ix_known_users_subject").create(conn)
    # The rows have no subjects yet: the view lists the users again at start (a NULL revision
    # means "list first"), and the listing rewrites every row it holds, since each row's
    # revision is now below any the user service issues. A row the listing lacks is a user
    # deleted meanwhile, as after any listing (its open orders are cancelled then). Until
    # that listing, users are refused on their own orders (no owner known), never allowed on
    # another's.
    conn.execute(known_users.update().values(revision=0))
    conn.execute(user_view_state.update().values(revision=None))


def _orders_by_user(conn: Connection) -> None:
    # The composite index serves every lookup by user_id the single-column one served.
    # Built inside the migration's transaction: writes to orders wait while it builds (seconds
    # for millions of orders), as they wait for any migration.
    next(i for i in orders.indexes if i.name == "ix_orders_user_id_id").create(conn)
    conn.execute(sa.text("DROP INDEX ix_orders_user_id"))


def _listed(conn: Connection) -> None:
    # NULL everywhere: no listing has seen a row yet, so the next one's end marks deleted
    # only the users it does not see, as before (`user_view`).
    conn.execute(sa.text("ALTER TABLE known_users ADD COLUMN listed BIGINT"))


MIGRATIONS = (
    Migration(1, "orders, changelog, idempotency keys", _initial),
    Migration(2, "changelog compaction point", changelog.create_compaction),
    Migration(3, "the view of users fed by WatchUsers", _user_view),
    Migration(4, "the subject that owns each user, in the view (listed again)", _owners),
    Migration(5, "orders indexed by (user_id, id) for keyset pages", _orders_by_user),
    Migration(6, "the latest listing that saw each user, in the view", _listed),
)
