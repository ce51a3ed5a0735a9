"""A write transaction's own state, and the inserts its units leave to be sent later.

On PostgreSQL a statement costs the driver and the server about as much as the work it asks
for, when that work is one row. So a unit of work may leave an insert to be sent later
(`defer`), with the like inserts of the next units of its commit group, in one statement per
kind (`Changelog`: a resource's row with its change; `IdempotencyStore`: a request's key).
Whatever runs on the transaction next sends them first (`send_deferred`): any statement of
`Prepared` (but those that read no table an insert is deferred for, which say so), and
SQLAlchemy's on the writer's engine (see `storage.database`); and the commit (`storage.
threads`). So every statement still sees all that the units before it wrote. (BEGIN and the
savepoints go to the driver's cursor without sending: nothing is deferred before them.)

Only a writer's turn run with no savepoint allows it (`allow_deferral`): if what was deferred
fails when sent, the whole turn is rolled back and runs again with a savepoint each, where
nothing is deferred, so that the error is the one unit's, raised by its own statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_TRANSACTION_STATE = "shop.transaction"
_ALLOWED = "deferral.allowed"
_PENDING = "deferral.pending"


class Sender(Protocol):
    """Sends the rows deferred with it, in as few statements as it can."""

    def send(self, conn: Connection, rows: list[Any]) -> None: ...


def transaction_state(conn: Connection) -> dict[str, Any]:
    """What units of work keep for the rest of their write transaction (the changelog's last
    revision, say): emptied when a write transaction begins, and put back as it was when a
    unit is rolled back to its savepoint, as the database puts back its rows."""
    state: dict[str, Any] = conn.info.setdefault(_TRANSACTION_STATE, {})
    return state


def allow_deferral(conn: Connection) -> None:
    """For the transaction just begun: its units may leave inserts for later."""
    transaction_state(conn)[_ALLOWED] = True


def may_defer(conn: Connection) -> bool:
    return _ALLOWED in transaction_state(conn)


def defer(conn: Connection, sender: Sender, row: Any) -> None:
    """Leaves `row` for `sender` to send, with the others deferred with it, before anything
    else runs on this transaction. Senders send in the order they first deferred a row (their
    inserts are into tables of their own: none waits for another's)."""
    pending: dict[Sender, list[Any]] = transaction_state(conn).setdefault(_PENDING, {})
    rows = pending.get(sender)
    if rows is None:
        pending[sender] = [row]
    else:
        rows.append(row)


def deferred(conn: Connection, sender: Sender) -> Sequence[Any]:
    """The rows `sender` was left and has not sent yet (for a read that must see them)."""
    pending = conn.info.get(_TRANSACTION_STATE, {}).get(_PENDING)
    return () if pending is None else pending.get(sender, ())


def send_deferred(conn: Connection) -> None:
    """Sends what was deferred, if anything was."""
    state = conn.info.get(_TRANSACTION_STATE)
    if state:
        pending: dict[Sender, list[Any]] | None = state.pop(_PENDING, None)
        if pending:
            for sender, rows in pending.items():
                sender.send(conn, rows)


def json_rows(columns: Sequence[sa.ColumnClause[Any]]) -> sa.CTE:
    """The rows of one JSON array of objects bound as `rows` (their keys the names of
    `columns`, of their types), as a CTE named `rows` to insert from: one text parameter
    however many rows (16 orders sent so cost the client ~21 µs an order, their values built
    included, against ~60 µs with one array a column for `unnest`, which psycopg adapts a
    value at a time)."""
    text = sa.cast(sa.bindparam("rows", type_=sa.Text), sa.JSON)
    given = sa.func.json_to_recordset(text).table_valued(*columns)
    return sa.select(given.render_derived(name="given", with_types=True)).cte("rows")
