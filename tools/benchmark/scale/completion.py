"""The mark of a complete load, written last, in each of its two databases: what was
loaded (size, counts) and for which schema (the services' newest migration) and generator.
A kept database is reused only when both marks match; anything else is loaded again."""

from __future__ import annotations

import contextlib

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from benchmark.scale.sizes import Size
from order_svc.schema import MIGRATIONS as ORDER_MIGRATIONS
from shop_common.storage import driver_url
from user_svc.schema import MIGRATIONS as USER_MIGRATIONS

GENERATOR = 1
"""Bumped whenever `plan` or `records` would load other data: kept loads are then redone."""

marks = sa.Table(
    "bench_scale_load",
    sa.MetaData(),
    sa.Column("size", sa.String(16), primary_key=True),
    sa.Column("users", sa.BigInteger, nullable=False),
    sa.Column("orders", sa.BigInteger, nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("generator", sa.Integer, nullable=False),
)


def schema_versions() -> tuple[int, int]:
    """The newest migration of the user service and of the order service."""
    return USER_MIGRATIONS[-1].version, ORDER_MIGRATIONS[-1].version


def mark_of(size: Size, schema_version: int) -> dict[str, object]:
    return {
        "size": size.name,
        "users": size.users,
        "orders": size.orders,
        "schema_version": schema_version,
        "generator": GENERATOR,
    }


def is_complete(size: Size, user_url: str, order_url: str) -> bool:
    """Whether both databases hold this size's mark for today's schema and generator."""
    for url, version in zip((user_url, order_url), schema_versions(), strict=True):
        engine = sa.create_engine(driver_url(url))
        try:
            with engine.connect() as conn:
                row = conn.execute(sa.select(marks)).mappings().first()
        except SQLAlchemyError:
            return False  # no database, or no mark: an unfinished load
        finally:
            with contextlib.suppress(SQLAlchemyError):
                engine.dispose()
        if row is None or dict(row) != mark_of(size, version):
            return False
    return True
