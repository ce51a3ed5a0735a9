"""Loading into SQLite files: executemany in large transactions, with the journal and the
syncs off while loading (a failed load is dropped whole, never used), and WAL mode set
again at the end, as the services open it."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import ExecutableDDLElement

from benchmark.scale.records import Record
from benchmark.scale.sizes import Size

_DIALECT = sqlite.dialect()
_FILES = ("user_svc.db", "order_svc.db")


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-262144"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._conn.execute("BEGIN")

    def write(self, table: sa.Table, rows: Sequence[Record]) -> None:
        names = [c.name for c in table.c]
        marks = ", ".join("?" * len(names))
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"
        self._conn.executemany(sql, rows)

    def execute(self, statement: sa.Executable) -> None:
        compiled: Any = statement.compile(dialect=_DIALECT)  # type: ignore[attr-defined]
        if isinstance(statement, ExecutableDDLElement):
            self._conn.execute(str(compiled))
            return
        params = compiled.construct_params()
        self._conn.execute(str(compiled), [params[name] for name in compiled.positiontup or ()])

    def commit(self) -> None:
        self._conn.execute("COMMIT")
        self._conn.execute("BEGIN")

    def analyze(self) -> None:
        self._conn.execute("COMMIT")
        self._conn.execute("ANALYZE")
        self._conn.execute("BEGIN")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.OperationalError):
            self._conn.execute("COMMIT")
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        self._conn.close()
        if mode != "wal":
            raise RuntimeError(f"SQLite would not go back to WAL mode (it is in {mode!r})")


class SqliteTarget:
    """A size's two files under `root/<size>/`, named as the services name them in their data
    dir (`SHOP_DATA_DIR`)."""

    name = "sqlite"

    def __init__(self, root: Path) -> None:
        self.root = root

    def dir(self, size: Size) -> Path:
        return self.root / size.name

    def urls(self, size: Size) -> tuple[str, str]:
        user, order = (self.dir(size) / f for f in _FILES)
        return f"sqlite:///{user}", f"sqlite:///{order}"

    def exists(self, size: Size) -> bool:
        return any((self.dir(size) / f).exists() for f in _FILES)

    def create(self, size: Size) -> None:
        self.dir(size).mkdir(parents=True, exist_ok=True)

    def drop(self, size: Size) -> None:
        shutil.rmtree(self.dir(size), ignore_errors=True)

    def free_bytes(self) -> int | None:
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    def used_bytes(self, size: Size) -> tuple[int, int]:
        user, order = (
            sum(p.stat().st_size for p in self.dir(size).glob(f"{name}*") if p.is_file())
            for name in _FILES
        )  # each with its -wal and -shm files
        return user, order

    def open(self, url: str) -> SqliteStore:
        return SqliteStore(Path(url.removeprefix("sqlite:///")))
