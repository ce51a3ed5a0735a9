"""The order service's tables and their migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop_common.changelog import changelog_tables
from shop_common.idempotency import idempotency_table
from shop_common.migrations import Migration

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


def _initial(conn: Connection) -> None:
    orders.create(conn)
    idempotency_keys.create(conn)
    changelog.create(conn)


MIGRATIONS = (Migration(1, "orders, changelog, idempotency keys", _initial),)
