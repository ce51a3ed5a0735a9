"""Loading into PostgreSQL: `COPY` in one transaction per table and batch, on databases
named after the size (`shop_scale_<size>_user`, `_order`) on the `--database` server, then
`VACUUM ANALYZE`. The run's admin URL creates and drops them, as `benchmark.postgres` does
the bench's throwaway databases."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import ExecutableDDLElement

from benchmark import postgres
from benchmark.scale.records import Record
from benchmark.scale.sizes import Size

_DIALECT = postgresql.dialect(paramstyle="pyformat")  # type: ignore[no-untyped-call]


class PostgresStore:
    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url)
        # A failed load is dropped whole: nothing is lost by not waiting for each commit.
        self._conn.execute(b"SET synchronous_commit = off")
        self._conn.execute(b"SET maintenance_work_mem = '256MB'")

    def write(self, table: sa.Table, rows: Sequence[Record]) -> None:
        names = ", ".join(c.name for c in table.c)
        with (
            self._conn.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({names}) FROM STDIN".encode()) as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def execute(self, statement: sa.Executable) -> None:
        compiled: Any = statement.compile(dialect=_DIALECT)  # type: ignore[attr-defined]
        if isinstance(statement, ExecutableDDLElement):
            self._conn.execute(str(compiled).encode())
            return
        self._conn.execute(str(compiled).encode(), compiled.construct_params())

    def commit(self) -> None:
        self._conn.commit()

    def analyze(self) -> None:
        self._conn.commit()
        self._conn.autocommit = True  # VACUUM runs outside a transaction
        self._conn.execute(b"VACUUM ANALYZE")
        self._conn.autocommit = False

    def close(self) -> None:
        self._conn.commit()
        self._conn.close()


class PostgresTarget:
    name = "postgresql"

    def __init__(self, admin_url: str, prefix: str = "shop_scale") -> None:
        self.admin_url = admin_url
        self.prefix = prefix
        """Of the databases' names (tests use their own)."""

    def names(self, size: Size) -> tuple[str, str]:
        return f"{self.prefix}_{size.name}_user", f"{self.prefix}_{size.name}_order"

    def urls(self, size: Size) -> tuple[str, str]:
        user, order = self.names(size)
        return postgres.with_database(self.admin_url, user), postgres.with_database(
            self.admin_url, order
        )

    def exists(self, size: Size) -> bool:
        query = b"SELECT count(*) FROM pg_database WHERE datname = ANY(%s)"
        with psycopg.connect(self.admin_url) as conn:
            found = conn.execute(query, [list(self.names(size))]).fetchone()
        return bool(found and found[0])

    def create(self, size: Size) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.names(size):
                conn.execute(f'CREATE DATABASE "{name}"'.encode())

    def drop(self, size: Size) -> None:
        for name in self.names(size):
            postgres.drop_database(self.admin_url, name)

    def free_bytes(self) -> int | None:
        """Free disk of the server's data directory, when the server is on this machine and
        that directory can be read (else None: the load is not checked)."""
        if not postgres.is_local(self.admin_url):
            return None
        with contextlib.suppress(psycopg.Error, OSError):
            with psycopg.connect(self.admin_url) as conn:
                row = conn.execute(b"SHOW data_directory").fetchone()
            if row and Path(row[0]).exists():
                stat = os.statvfs(row[0])
                return stat.f_bavail * stat.f_frsize
        return None

    def used_bytes(self, size: Size) -> tuple[int, int]:
        found = []
        with psycopg.connect(self.admin_url) as conn:
            for name in self.names(size):
                row = conn.execute(b"SELECT pg_database_size(%s)", [name]).fetchone()
                found.append(int(row[0]) if row else 0)
        return found[0], found[1]

    def open(self, url: str) -> PostgresStore:
        return PostgresStore(url)
