"""The user service's tables and their migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop_common.storage import Migration, changelog_tables, idempotency_table

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("email_key", sa.String(254), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("create_time_us", sa.BigInteger, nullable=False),
    sa.Column("update_time_us", sa.BigInteger, nullable=False),
    sa.Column("revision", sa.BigInteger, nullable=False),
)
changelog = changelog_tables(metadata)
idempotency_keys = idempotency_table(metadata)


def _initial(conn: Connection) -> None:
    users.create(conn)
    idempotency_keys.create(conn)
    changelog.create(conn)


MIGRATIONS = (
    Migration(1, "users, changelog, idempotency keys", _initial),
    Migration(2, "changelog compaction point", changelog.create_compaction),
)
