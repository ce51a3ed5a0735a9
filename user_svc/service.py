"""The user service's use cases: validation, then one store call each."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from shop_common import ids
from shop_common.errors import FieldViolation, InvalidArgument
from shop_common.idempotency import IdempotencyKey
from shop_common.page_token import PageTokens, page_size
from shop_common.resource_store import ResourceStore
from user_svc import domain
from user_svc.domain import User
from user_svc.store import not_found

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_id(value: str, field: str = "id") -> str:
    if not value:
        raise InvalidArgument.of(FieldViolation(field, "is required", "REQUIRED"))
    if not ids.is_valid_id(value):
        raise InvalidArgument.of(FieldViolation(field, "is not a valid user id", "INVALID_ID"))
    return value


@dataclass(frozen=True, slots=True)
class Page:
    users: list[User]
    next_page_token: str
    revision: int


class UserUseCases:
    def __init__(
        self, store: ResourceStore[User], tokens: PageTokens, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._clock = clock

    async def create(self, email: str, display_name: str, request_id: str) -> User:
        key = IdempotencyKey.of("CreateUser", request_id, orjson.dumps([email, display_name]))
        draft = domain.new_user(ids.new_id(), email, display_name, self._clock())
        # The store checks the key again inside the write: a racing retry cannot create twice.
        return await self._store.create(draft, key)

    async def get(self, user_id: str) -> User:
        user = await self._store.get(check_id(user_id))
        if user is None:
            raise not_found(user_id)
        return user

    async def list(self, requested_size: int, page_token: str) -> Page:
        size = page_size(requested_size)
        after = self._tokens.decode(page_token, query="users")
        if after is not None and not ids.is_valid_id(after):
            raise InvalidArgument.of(FieldViolation("page_token", "is not a valid page token"))
        page = await self._store.page(after, size)
        token = self._tokens.encode(page.items[-1].id, query="users") if page.more else ""
        return Page(page.items, token, page.revision)

    async def update(
        self,
        user_id: str,
        values: Mapping[str, str],
        mask: Sequence[str] | None,
        expected_etag: str,
    ) -> User:
        check_id(user_id, "user.id")
        changes = domain.changes_for(values, mask)
        now = self._clock()
        return await self._store.update(
            user_id, lambda user: domain.updated(user, changes, expected_etag, now)
        )

    async def delete(self, user_id: str, expected_etag: str) -> None:
        check_id(user_id)
        await self._store.delete(
            user_id, lambda user: domain.check_etag(user, expected_etag), self._clock()
        )
