"""Where a load goes: the interface of one kind of database (`sqlite_store`,
`postgres_store`), and of one database being written.

A target knows where a size's two databases live (the user service's and the order
service's), creates and drops them, and says how much disk is free there; a store is one
of those databases opened for the bulk load, written a table at a time in large
transactions, its secondary indexes dropped first and built again at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa

from benchmark.scale.records import Record
from benchmark.scale.sizes import Size


class Store(Protocol):
    def write(self, table: sa.Table, rows: Sequence[Record]) -> None:
        """Appends `rows` (in the table's column order) in the current transaction."""

    def execute(self, statement: sa.Executable) -> None: ...

    def commit(self) -> None: ...

    def analyze(self) -> None:
        """Statistics for the planner (and on PostgreSQL the visibility map: VACUUM)."""

    def close(self) -> None:
        """Leaves the database as the services expect it (SQLite: WAL) and closes it."""


class Target(Protocol):
    name: str
    """`sqlite` or `postgresql`: the key of its results."""

    def urls(self, size: Size) -> tuple[str, str]:
        """The user service's and the order service's database URLs for `size`."""

    def exists(self, size: Size) -> bool: ...

    def create(self, size: Size) -> None: ...

    def drop(self, size: Size) -> None: ...

    def free_bytes(self) -> int | None:
        """Free disk where the databases grow; None when it cannot be read from here."""

    def used_bytes(self, size: Size) -> tuple[int, int]:
        """What the user service's and the order service's databases take on disk."""

    def open(self, url: str) -> Store: ...


def secondary_indexes(table: sa.Table) -> list[sa.Index]:
    """The table's indexes that a bulk load is faster without (built again after it); the
    primary key and unique constraints stay."""
    return sorted(table.indexes, key=lambda i: i.name or "")
