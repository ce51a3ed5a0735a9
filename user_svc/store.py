"""Users in SQL (SQLite or PostgreSQL), each write with its changelog entry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shop_common.changelog import Changelog, ChangeType
from shop_common.db import Database
from shop_common.errors import AlreadyExists, FieldViolation, NotFound
from shop_common.idempotency import IdempotencyKey, IdempotencyStore
from user_svc import schema
from user_svc.domain import User

_t = schema.users


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _time(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def to_record(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "create_time_us": _us(user.create_time),
        "update_time_us": _us(user.update_time),
        "revision": user.revision,
    }


def from_record(row: Any) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        display_name=row["display_name"],
        create_time=_time(row["create_time_us"]),
        update_time=_time(row["update_time_us"]),
        revision=row["revision"],
    )


def not_found(user_id: str) -> NotFound:
    return NotFound(
        f"user {user_id} does not exist", reason="USER_NOT_FOUND", metadata={"id": user_id}
    )


class _Replay(Exception):
    """Rolls back a transaction whose request was already done, carrying its result."""

    def __init__(self, response: str) -> None:
        self.response = response


_COLUMNS = (
    _t.c.id,
    _t.c.email,
    _t.c.display_name,
    _t.c.create_time_us,
    _t.c.update_time_us,
    _t.c.revision,
)


class UserStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._log = Changelog(schema.changelog)
        self._keys = IdempotencyStore(schema.idempotency_keys)
        self._get = sa.select(*_COLUMNS).where(_t.c.id == sa.bindparam("id"))

    async def create(self, draft: User, key: IdempotencyKey | None) -> User:
        try:
            async with self._db.write() as conn:
                revision = await self._log.next_revision(conn)
                if key is not None and (earlier := await self._keys.recall(conn, key)):
                    raise _Replay(earlier)
                user = dataclasses.replace(draft, revision=revision)
                record = to_record(user)
                await conn.execute(_t.insert().values(**record, email_key=user.email_key))
                data = orjson.dumps(record).decode()
                await self._log.append(
                    conn,
                    revision=revision,
                    seq=0,
                    resource_id=user.id,
                    change=ChangeType.PUT,
                    data=data,
                    prev=None,
                    commit_time_us=_us(user.update_time),
                )
                if key is not None:
                    await self._keys.remember(conn, key, data, _us(user.update_time))
                return user
        except _Replay as replay:
            return from_record(orjson.loads(replay.response))
        except IntegrityError:
            raise _email_taken() from None

    async def get(self, user_id: str) -> User | None:
        async with self._db.read() as conn:
            row = (await conn.execute(self._get, {"id": user_id})).mappings().first()
        return None if row is None else from_record(row)

    async def page(self, after: str | None, limit: int) -> tuple[list[User], bool, int]:
        """Up to `limit` users after `after`, whether more follow, and the snapshot's revision."""
        query = sa.select(*_COLUMNS).order_by(_t.c.id).limit(limit + 1)
        if after is not None:
            query = query.where(_t.c.id > after)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
            revision = (
                await conn.execute(sa.select(self._log.current_revision_query))
            ).scalar_one()
        users = [from_record(r) for r in rows[:limit]]
        return users, len(rows) > limit, int(revision)

    async def update(self, user_id: str, change: Callable[[User], User]) -> User:
        """Applies `change` (which may refuse by raising) to the current user, atomically."""
        try:
            async with self._db.write() as conn:
                revision = await self._log.next_revision(conn)
                row = (await conn.execute(self._get, {"id": user_id})).mappings().first()
                if row is None:
                    raise not_found(user_id)
                before = from_record(row)
                after = dataclasses.replace(change(before), revision=revision)
                record = to_record(after)
                await conn.execute(
                    _t.update()
                    .where(_t.c.id == user_id)
                    .values(**record, email_key=after.email_key)
                )
                await self._log.append(
                    conn,
                    revision=revision,
                    seq=0,
                    resource_id=user_id,
                    change=ChangeType.PUT,
                    data=orjson.dumps(record).decode(),
                    prev=orjson.dumps(to_record(before)).decode(),
                    commit_time_us=_us(after.update_time),
                )
                return after
        except IntegrityError:
            raise _email_taken() from None

    async def delete(self, user_id: str, check: Callable[[User], None], now: datetime) -> User:
        async with self._db.write() as conn:
            revision = await self._log.next_revision(conn)
            row = (await conn.execute(self._get, {"id": user_id})).mappings().first()
            if row is None:
                raise not_found(user_id)
            user = from_record(row)
            check(user)
            await conn.execute(_t.delete().where(_t.c.id == user_id))
            record = to_record(user)
            gone = {"id": user_id, "revision": revision}
            await self._log.append(
                conn,
                revision=revision,
                seq=0,
                resource_id=user_id,
                change=ChangeType.DELETE,
                data=orjson.dumps(gone).decode(),
                prev=orjson.dumps(record).decode(),
                commit_time_us=_us(now),
            )
            return user


def _email_taken() -> AlreadyExists:
    return AlreadyExists(
        "another user has this e-mail address",
        reason="EMAIL_TAKEN",
        violations=[FieldViolation("user.email", "is already used by another user", "EMAIL_TAKEN")],
    )
