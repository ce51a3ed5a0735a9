"""Statements on every request's path, compiled once and run on the driver's own cursor,
kept with its connection."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler

from shop_common.storage.deferral import send_deferred

_CURSOR = "shop.cursor"


def driver_cursor(conn: Connection) -> Any:
    """The driver's cursor kept with the connection for its lifetime (in the pool record's
    `info`, which goes with the driver's connection): a psycopg cursor costs about as much
    CPU to create as a statement costs to run. Whoever runs a statement on it reads its rows
    before running the next."""
    record = conn.connection
    cursor = record.info.get(_CURSOR)
    if cursor is None:
        cursor = record.info[_CURSOR] = record.dbapi_connection.cursor()  # type: ignore[union-attr]
    return cursor


class Prepared:
    """A Core statement compiled once per dialect and run on the driver's own cursor, inside
    the unit of work's transaction: for the few statements on every request's path, where
    SQLAlchemy's per-execution work costs more than the database itself.

    Results are the driver's: tuples of plain values (a SQLite boolean is 0 or 1).

    The inserts a writer's units left for later (`storage.deferral`) are sent first, unless
    the statement says it reads no table they are for (`reads_deferred=False`).
    """

    def __init__(
        self,
        statement: sa.ClauseElement,
        column_keys: Sequence[str] | None = None,
        *,
        reads_deferred: bool = True,
    ) -> None:
        self._statement = statement
        self._column_keys = list(column_keys) if column_keys is not None else None
        self._reads_deferred = reads_deferred
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    def _for(self, dialect: Any) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = cast(
                SQLCompiler,
                self._statement.compile(dialect=dialect, column_keys=self._column_keys),
            )
            names = tuple(compiled.positiontup) if compiled.positiontup is not None else None
            found = self._compiled[dialect.name] = (str(compiled), names, dict(compiled.params))
        return found

    def execute(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """Runs the statement, after what was deferred (`storage.deferral`); returns the
        driver's cursor (read its rows before the next: whatever is sent next goes on the same
        cursor, deferred inserts too)."""
        if self._reads_deferred:
            send_deferred(conn)
        sql, names, defaults = self._for(conn.dialect)
        values = {**defaults, **params} if params else defaults
        args = [values[n] for n in names] if names is not None else values
        cursor = driver_cursor(conn)
        dbapi = conn.dialect.loaded_dbapi
        try:
            cursor.execute(sql, args)
        except dbapi.Error as error:
            # As SQLAlchemy would raise it (IntegrityError etc.), for the callers' handlers.
            raise sa.exc.DBAPIError.instance(sql, args, error, dbapi.Error) from error
        return cursor

    def first(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The first row (a tuple), or None."""
        return self.execute(conn, params).fetchone()

    def first_mapping(
        self, conn: Connection, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        cursor = self.execute(conn, params)
        row = cursor.fetchone()
        return (
            None if row is None else dict(zip([d[0] for d in cursor.description], row, strict=True))
        )


class PreparedByKeys:
    """A SELECT of the rows whose `column` is one of many keys, in one statement however many
    (a primary-key read costs per statement far more than per row: see `storage.batched`):
    `column = ANY(:keys)` on PostgreSQL, the keys bound as one array; on SQLite, which has no
    arrays and binds at most 32,766 parameters, `column IN (SELECT value FROM
    json_each(:keys))`, the keys bound as one JSON text. Each is compiled once (`Prepared`),
    and both reach the rows through `column`'s index. A key given twice is read once.

    One key alone is read by `column = :key`, cheaper on both: PostgreSQL plans `= ANY` for
    each array anew (~50 µs of backend CPU for one key, its generic plan being costed for
    ten), and SQLite parses the JSON in a virtual table."""

    def __init__(
        self,
        column: sa.ColumnElement[Any],
        select: Callable[[sa.ColumnElement[bool]], sa.Select[Any]],
        *,
        reads_deferred: bool = True,
    ) -> None:
        """`select(where)`: the statement, for its condition on the keys; `reads_deferred`:
        as `Prepared`'s."""
        # Cast to an array of the column's type without its length: a key longer than a
        # VARCHAR(36) column, cast to VARCHAR(36), would be cut to the id it starts with.
        kind = sa.String() if isinstance(column.type, sa.String) else column.type
        keys = sa.bindparam("keys", type_=postgresql.ARRAY(kind))
        listed: sa.Select[Any] = sa.select(sa.column("value")).select_from(
            sa.func.json_each(sa.bindparam("keys", type_=sa.Text))
        )
        self._by_dialect: dict[str, tuple[Prepared, Callable[[Sequence[Any]], Any]]] = {
            "postgresql": (
                Prepared(select(column == sa.any_(keys)), reads_deferred=reads_deferred),
                list,
            ),
            "sqlite": (
                Prepared(
                    select(column.in_(listed.scalar_subquery())), reads_deferred=reads_deferred
                ),
                _json_text,
            ),
        }
        self._one = Prepared(select(column == sa.bindparam("key")), reads_deferred=reads_deferred)

    def execute(self, conn: Connection, keys: Sequence[Any]) -> Any:
        """Runs the statement; returns the driver's cursor (read its rows before the next)."""
        if len(keys) == 1:
            return self._one.execute(conn, {"key": keys[0]})
        prepared, bound = self._by_dialect[conn.dialect.name]
        return prepared.execute(conn, {"keys": bound(keys)})

    def mappings(self, conn: Connection, keys: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows found, each as a dict by column name (in no particular order)."""
        cursor = self.execute(conn, keys)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _json_text(keys: Sequence[Any]) -> str:
    return orjson.dumps(list(keys)).decode()
