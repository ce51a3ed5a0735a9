"""Schema migrations: an ordered list per service, applied once each, under a lock.

Run at start-up and by `python -m <service> migrate`. Several replicas may start
at once: on PostgreSQL a transaction-scoped advisory lock admits one migrator at a
time; on SQLite the write transaction (BEGIN IMMEDIATE) is that lock. DDL is
transactional on both, so a failed migration leaves nothing half-applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop_common.storage.database import Database

log = logging.getLogger(__name__)

_LOCK_KEY = 0x5E0B_0001  # any constant shared by every migrator of one database

_versions = sa.Table(
    "schema_migrations",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


async def migrate(db: Database, migrations: Sequence[Migration]) -> list[int]:
    """Applies the migrations not yet applied; returns their versions."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError("migration versions must be unique and increasing")

    def apply(conn: Connection) -> list[int]:
        if db.is_postgres:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        _versions.create(conn, checkfirst=True)
        done = set(conn.execute(sa.select(_versions.c.version)).scalars())
        applied = []
        for migration in migrations:
            if migration.version in done:
                continue
            migration.apply(conn)
            conn.execute(_versions.insert().values(version=migration.version, name=migration.name))
            applied.append(migration.version)
            log.info("applied migration %d %s", migration.version, migration.name)
        return applied

    return await db.write(apply)
