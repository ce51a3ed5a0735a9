"""Statements on every request's path, compiled once and run on the driver's own cursor,
kept with its connection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    """

    def __init__(
        self, statement: sa.ClauseElement, column_keys: Sequence[str] | None = None
    ) -> None:
        self._statement = statement
        self._column_keys = list(column_keys) if column_keys is not None else None
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
        driver's cursor (read its rows before the next)."""
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


class ByKeys:
    """`select` of the rows whose `column` is one of many keys, in one statement compiled once
    whatever their number (`IN (?, ?, …)` is a new statement for every count): on PostgreSQL
    `= ANY(array)`, on SQLite `IN (SELECT value FROM json_each(?))`. A statement for many
    keys costs about what one for a single key does (on PostgreSQL ~14 µs of client CPU and
    ~15 µs of the server's per key for 16 keys, against ~55 µs and ~55 µs a key one by one)."""

    def __init__(self, select: sa.Select[Any], column: sa.ColumnElement[Any]) -> None:
        keys = sa.bindparam("keys", type_=postgresql.ARRAY(sa.String))
        self._postgres = Prepared(select.where(column == sa.any_(keys)))
        value: sa.ColumnClause[str] = sa.column("value")
        listed = sa.select(value).select_from(sa.func.json_each(sa.bindparam("keys")))
        self._json = Prepared(select.where(column.in_(listed)))

    def rows(self, conn: Connection, keys: Sequence[str]) -> list[Any]:
        """The rows found (tuples, in no particular order); a key may be given twice."""
        if conn.dialect.name == "postgresql":
            return list(self._postgres.execute(conn, {"keys": list(keys)}).fetchall())
        as_json = orjson.dumps(list(keys)).decode()
        return list(self._json.execute(conn, {"keys": as_json}).fetchall())
