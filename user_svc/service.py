"""The user service's use cases: validation, then one unit of work each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from shop_common.domain import Clock, check_id, new_id, page_size, utc_now
from shop_common.serving import Caller
from shop_common.storage import (
    IdempotencyKey,
    Page,
    Pages,
    ResourceTable,
    Transaction,
    UnitOfWork,
)
from user_svc import domain
from user_svc.domain import User
from user_svc.store import not_found


def check_user_id(value: str, field: str = "id") -> str:
    return check_id(value, field, "user")


class UserUseCases:
    def __init__(
        self,
        uow: UnitOfWork,
        users: ResourceTable[User],
        pages: Pages[User],
        clock: Clock = utc_now,
    ) -> None:
        self._uow = uow
        self._users = users
        self._pages = pages
        self._clock = clock

    async def create(
        self, email: str, display_name: str, subject: str, request_id: str, caller: Caller
    ) -> User:
        owner = domain.owner_of_new_user(subject, caller.subject, admin=caller.admin)
        key = IdempotencyKey.of(
            "CreateUser", caller.subject, request_id, orjson.dumps([email, display_name, owner])
        )
        draft = domain.new_user(new_id(), email, display_name, self._clock(), owner)

        def unit(tx: Transaction) -> User:
            # The key is checked inside the write: a racing retry cannot create twice.
            return self._users.replay(tx, key) or self._users.insert(tx, draft, key)

        return await self._uow.write(unit)

    async def get(self, user_id: str) -> User:
        check_user_id(user_id)
        user = await self._uow.read(lambda conn: self._users.get(conn, user_id))
        if user is None:
            raise not_found(user_id)
        return user

    async def list(self, requested_size: int, page_token: str) -> Page[User]:
        return await self._pages.list(page_size(requested_size), page_token, query="users")

    async def update(
        self,
        user_id: str,
        values: Mapping[str, str],
        mask: Sequence[str] | None,
        expected_etag: str,
    ) -> User:
        check_user_id(user_id, "user.id")
        changes = domain.changes_for(values, mask)
        now = self._clock()
        return await self._uow.write(
            lambda tx: self._users.update(
                tx, user_id, lambda user: domain.updated(user, changes, expected_etag, now)
            )
        )

    async def delete(self, user_id: str, expected_etag: str) -> None:
        check_user_id(user_id)
        now = self._clock()
        await self._uow.write(
            lambda tx: self._users.delete(
                tx, user_id, lambda user: domain.check_etag(user, expected_etag), now
            )
        )
