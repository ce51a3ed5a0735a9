"""A write transaction's own state, and the writes its units leave to be sent later.

On PostgreSQL every statement costs the driver and the server about as much as the work it
asks for, when that work is one row. A unit of work may therefore leave an insert to be sent
later (`defer`), with the like inserts of the next units of its commit group in one
statement (`Changelog`). Whatever runs on the transaction next sends it first
(`send_deferred`): any statement (`Prepared`, and SQLAlchemy's on the writer's engine: see
`storage.database`), and the commit (`storage.threads`). So every statement still sees all
that the units before it wrote.

Only a turn run with no savepoint allows it (`allow_deferral`): if what was deferred fails,
the whole turn is rolled back and runs again with a savepoint each, where nothing is
deferred, so that the error is the one unit's, raised by its own statement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection

_TRANSACTION_STATE = "shop.transaction"
_ALLOWED = "deferral.allowed"
_SEND = "deferral.send"


def transaction_state(conn: Connection) -> dict[str, Any]:
    """What units of work keep for the rest of their write transaction (the changelog's last
    revision, say): emptied when a write transaction begins, and put back as it was when a
    unit is rolled back to its savepoint, as the database puts back its rows."""
    state: dict[str, Any] = conn.info.setdefault(_TRANSACTION_STATE, {})
    return state


def allow_deferral(conn: Connection) -> None:
    """For the transaction just begun: its units may leave writes for later."""
    transaction_state(conn)[_ALLOWED] = True


def may_defer(conn: Connection) -> bool:
    return _ALLOWED in transaction_state(conn)


def defer(conn: Connection, send: Callable[[Connection], None]) -> None:
    """`send(conn)` runs before anything else runs on this transaction (one at a time: whoever
    defers sends what was deferred before, unless it is its own)."""
    transaction_state(conn)[_SEND] = send


def send_deferred(conn: Connection) -> None:
    """Sends what was deferred, if anything was."""
    state = conn.info.get(_TRANSACTION_STATE)
    if state:
        send = state.pop(_SEND, None)
        if send is not None:
            send(conn)
