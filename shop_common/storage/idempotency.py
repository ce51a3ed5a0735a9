"""Idempotency keys (`request_id`): a repeated request returns the first result.

Checked and recorded inside the write transaction that performs the request, so a
retry racing the original cannot create twice. The same key with a different
request is INVALID_ARGUMENT. Keys are kept for `RETENTION_SECONDS` at least.

Keys belong to the caller that sent them: the same key from two callers is two requests,
and nobody learns another caller's keys (not even that one is in use).

In a writer's turn a key's insert is left to be sent with the next units' (`storage.
deferral`), in one statement, and `recall` looks among the keys left so before it reads the
table: the read alone need not send them (nor the other inserts left, which it does not read).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop_common.domain import FieldViolation, InvalidArgument
from shop_common.storage.deferral import defer, deferred, json_rows, may_defer
from shop_common.storage.prepared import Prepared

RETENTION_SECONDS = 48 * 3600
MAX_REQUEST_ID_LENGTH = 128


def idempotency_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "idempotency_keys",
        metadata,
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(MAX_REQUEST_ID_LENGTH), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("create_time_us", sa.BigInteger, nullable=False, index=True),
    )


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    scope: str
    """The operation, e.g. `CreateUser`, and the caller (a digest of its subject): keys of
    different operations or callers never collide."""
    request_id: str
    fingerprint: str
    """A digest of the request without its request_id."""

    @classmethod
    def of(
        cls, operation: str, caller: str | None, request_id: str, canonical_request: bytes
    ) -> IdempotencyKey | None:
        """The key of `request_id` sent by `caller` (its subject; None when anonymous)."""
        if not request_id:
            return None
        if len(request_id) > MAX_REQUEST_ID_LENGTH or not request_id.isprintable():
            raise InvalidArgument.of(
                FieldViolation(
                    "request_id", f"must be at most {MAX_REQUEST_ID_LENGTH} printable characters"
                )
            )
        return cls(
            _scope(operation, caller), request_id, hashlib.sha256(canonical_request).hexdigest()
        )


def _scope(operation: str, caller: str | None) -> str:
    """`CreateUser` for anonymous callers, `CreateUser:<48 hex digits>` for a subject: fits
    the 64 characters of the column whatever the subject's length."""
    if caller is None:
        return operation
    return f"{operation}:{hashlib.sha256(caller.encode()).hexdigest()[:48]}"


class IdempotencyStore:
    def __init__(self, table: sa.Table) -> None:
        self._table = table
        t = table.c
        self._recall = Prepared(
            sa.select(t.fingerprint, t.response).where(
                t.scope == sa.bindparam("scope"), t.request_id == sa.bindparam("request_id")
            ),
            reads_deferred=False,  # this store's own are looked for first (`recall`)
        )
        self._insert = Prepared(table.insert().values({c.name: sa.bindparam(c.name) for c in t}))
        rows = json_rows([sa.column(c.name, c.type) for c in t])
        names = [c.name for c in t]
        self._insert_many = Prepared(
            table.insert().from_select(names, sa.select(*(rows.c[n] for n in names))).add_cte(rows)
        )

    def recall(self, conn: Connection, key: IdempotencyKey) -> str | None:
        """The stored response of an earlier identical request, or None."""
        found: tuple[str, str] | None = None
        for row in deferred(conn, self):
            if row["scope"] == key.scope and row["request_id"] == key.request_id:
                found = (row["fingerprint"], row["response"])
        if found is None:
            found = self._recall.first(conn, {"scope": key.scope, "request_id": key.request_id})
        if found is None:
            return None
        fingerprint, response = found
        if fingerprint != key.fingerprint:
            raise InvalidArgument.of(
                FieldViolation(
                    "request_id", "was already used with a different request", "REQUEST_ID_REUSED"
                ),
                reason="REQUEST_ID_REUSED",
            )
        return str(response)

    def remember(self, conn: Connection, key: IdempotencyKey, response: str, now_us: int) -> None:
        row = {
            "scope": key.scope,
            "request_id": key.request_id,
            "fingerprint": key.fingerprint,
            "response": response,
            "create_time_us": now_us,
        }
        if may_defer(conn):  # a PostgreSQL writer's turn (`storage.deferral`)
            defer(conn, self, row)
        else:
            self._insert.execute(conn, row)

    def send(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Sends the keys deferred (`storage.deferral`), in one statement."""
        if len(rows) == 1:
            self._insert.execute(conn, rows[0])
        else:
            self._insert_many.execute(conn, {"rows": orjson.dumps(rows).decode()})

    def expire(self, conn: Connection, now_us: int) -> int:
        """Deletes keys older than the retention; returns how many."""
        cutoff = now_us - RETENTION_SECONDS * 1_000_000
        result = conn.execute(sa.delete(self._table).where(self._table.c.create_time_us < cutoff))
        return int(result.rowcount)
