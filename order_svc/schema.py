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
    sa.Column("user_id", sa.String(36), nullable=False, index=True),
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    # [[sku, quantity, unit price in nanos], ...]
    sa.Column("items", sa.Text, nullable=False),
    sa.Column("create_time_us", sa.BigInteger, nullable=False),
    sa.Column("update_time_us", sa.BigInteger, nullable=False),
    sa.Column("revision", sa.BigInteger, nullable=False),
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
)
user_view_state = sa.Table(
    "user_view_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # The user service's revision the view is current to; NULL until the first listing.
    sa.Column("revision", sa.BigInteger, nullable=True),
)


def _initial(conn: Connection) -> None:
    orders.create(conn)
    idempotency_keys.create(conn)
    changelog.create(conn)


def _user_view(conn: Connection) -> None:
    known_users.create(conn)
    user_view_state.create(conn)
    conn.execute(user_view_state.insert().values(id=1, revision=None))


MIGRATIONS = (
    Migration(1, "orders, changelog, idempotency keys", _initial),
    Migration(2, "changelog compaction point", changelog.create_compaction),
    Migration(3, "the view of users fed by WatchUsers", _user_view),
)
