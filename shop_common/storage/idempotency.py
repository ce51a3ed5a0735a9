"""Idempotency keys (`request_id`): a repeated request returns the first result.

Checked and recorded inside the write transaction that performs the request, so a
retry racing the original cannot create twice. The same key with a different
request is INVALID_ARGUMENT. Keys are kept for `RETENTION_SECONDS` at least.

Keys belong to the caller that sent them: the same key from two callers is two requests,
and nobody learns another caller's keys (not even that one is in use).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shop_common.domain import FieldViolation, InvalidArgument

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

    def recall(self, conn: Connection, key: IdempotencyKey) -> str | None:
        """The stored response of an earlier identical request, or None."""
        t = self._table
        row = conn.execute(
            sa.select(t.c.fingerprint, t.c.response).where(
                t.c.scope == key.scope, t.c.request_id == key.request_id
            )
        ).first()
        if row is None:
            return None
        if row.fingerprint != key.fingerprint:
            raise InvalidArgument.of(
                FieldViolation(
                    "request_id", "was already used with a different request", "REQUEST_ID_REUSED"
                ),
                reason="REQUEST_ID_REUSED",
            )
        return str(row.response)

    def remember(self, conn: Connection, key: IdempotencyKey, response: str, now_us: int) -> None:
        conn.execute(
            self._table.insert(),
            {
                "scope": key.scope,
                "request_id": key.request_id,
                "fingerprint": key.fingerprint,
                "response": response,
                "create_time_us": now_us,
            },
        )

    def expire(self, conn: Connection, now_us: int) -> int:
        """Deletes keys older than the retention; returns how many."""
        cutoff = now_us - RETENTION_SECONDS * 1_000_000
        result = conn.execute(sa.delete(self._table).where(self._table.c.create_time_us < cutoff))
        return int(result.rowcount)
