"""The user service's use cases: validation, then one unit of work each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from shop_common.domain import Clock, NotFound, check_id, new_id, page_size, utc_now
from shop_common.serving import Access
from shop_common.storage import (
    BatchedLookup,
    IdempotencyKey,
    Page,
    Pages,
    ResourceTable,
    Transaction,
    UnitOfWork,
)
from user_svc import domain
from user_svc.domain import User
from user_svc.policy import not_your_subject, not_your_user
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
        # GetUsers arriving together are read by one statement (see `storage.batched`).
        self._by_id = BatchedLookup(uow, users.get_many)
        self._pages = pages
        self._clock = clock

    async def create(
        self, email: str, display_name: str, subject: str, request_id: str, access: Access
    ) -> User:
        owner = domain.owner_of_new_user(subject, access.subject)
        if not access.owns(owner):
            raise not_your_subject(access)
        key = IdempotencyKey.of(
            "CreateUser", access.subject, request_id, orjson.dumps([email, display_name, owner])
        )
        draft = domain.new_user(new_id(), email, display_name, self._clock(), owner)

        def unit(tx: Transaction) -> User:
            # The key is checked inside the write: a racing retry cannot create twice.
            return self._users.replay(tx, key) or self._users.insert(tx, draft, key)

        return await self._uow.write(unit)

    async def get(self, user_id: str, access: Access) -> User:
        check_user_id(user_id)
        user = await self._by_id.get(user_id)
        _check_owner(access, user_id, user)
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
        access: Access,
    ) -> User:
        check_user_id(user_id, "user.id")
        changes = domain.changes_for(values, mask)
        now = self._clock()

        def change(user: User) -> User:
            _check_owner(access, user_id, user)  # before the etag: nothing shows of another's
            return domain.updated(user, changes, expected_etag, now)

        def unit(tx: Transaction) -> User:
            try:
                return self._users.update(tx, user_id, change)
            except NotFound:
                _check_owner(access, user_id, None)
                raise

        return await self._uow.write(unit)

    async def delete(self, user_id: str, expected_etag: str, access: Access) -> None:
        check_user_id(user_id)
        now = self._clock()

        def check(user: User) -> None:
            _check_owner(access, user_id, user)
            domain.check_etag(user, expected_etag)

        def unit(tx: Transaction) -> None:
            try:
                self._users.delete(tx, user_id, check, now)
            except NotFound:
                _check_owner(access, user_id, None)
                raise

        await self._uow.write(unit)


def _check_owner(access: Access, user_id: str, user: User | None) -> None:
    """Permission before existence (AIP-211): a user who is not the owner learns nothing,
    not even whether the user exists."""
    if not access.owns(None if user is None else user.subject):
        raise not_your_user(access, user_id)
