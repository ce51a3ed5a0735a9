"""The user service's tables and their migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop_common.storage import Migration, changelog_tables, idempotency_table
from user_svc.domain import MAX_SUBJECT_LENGTH

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
    # The token subject that owns the user; NULL for a user no subject owns (created by an
    # admin without one, or before owners were recorded). One user per subject.
    sa.Column("subject", sa.String(MAX_SUBJECT_LENGTH), nullable=True),
    sa.Index("ix_users_subject", "subject", unique=True),
)
changelog = changelog_tables(metadata)
idempotency_keys = idempotency_table(metadata)


def _initial(conn: Connection) -> None:
    # The users table as it was first released: later migrations add the rest.
    first = sa.Table("users", sa.MetaData(), *(c._copy() for c in users.c if c.name != "subject"))
    first.create(conn)
    idempotency_keys.create(conn)
    changelog.create(conn)


def _owners(conn: Connection) -> None:
    conn.execute(sa.text(f"ALTER TABLE users ADD COLUMN subject VARCHAR({MAX_SUBJECT_LENGTH})"))
    next(i for i in users.indexes if i.name == "ix_users_subject").create(conn)


MIGRATIONS = (
    Migration(1, "users, changelog, idempotency keys", _initial),
    Migration(2, "changelog compaction point", changelog.create_compaction),
    Migration(3, "the subject that owns each user", _owners),
)
