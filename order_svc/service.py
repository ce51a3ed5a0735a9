"""The order service's use cases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy.engine import Connection

from order_svc import domain
from order_svc.domain import LineItem, Order
from order_svc.store import not_found
from order_svc.user_view import UserView, Verdict
from order_svc.users import UserDirectory, user_not_found
from shop_common import ids
from shop_common.deadline import Deadline
from shop_common.errors import FieldViolation, InvalidArgument
from shop_common.idempotency import IdempotencyKey
from shop_common.identity import Caller
from shop_common.page_token import PageTokens, page_size
from shop_common.resource_store import ResourceStore

Clock = Callable[[], datetime]


class _ViewBehind(Exception):
    """The view of users does not know the user (yet)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_id(value: str, field: str, what: str) -> str:
    if not value:
        raise InvalidArgument.of(FieldViolation(field, "is required", "REQUIRED"))
    if not ids.is_valid_id(value):
        raise InvalidArgument.of(FieldViolation(field, f"is not a valid {what} id", "INVALID_ID"))
    return value


@dataclass(frozen=True, slots=True)
class Page:
    orders: list[Order]
    next_page_token: str
    revision: int


class OrderUseCases:
    def __init__(
        self,
        store: ResourceStore[Order],
        users: UserDirectory,
        view: UserView,
        tokens: PageTokens,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._users = users
        self._view = view
        self._tokens = tokens
        self._clock = clock

    async def create(
        self,
        user_id: str,
        items: list[LineItem],
        request_id: str,
        caller: Caller,
        deadline: Deadline,
    ) -> Order:
        # The owner defaults to the caller; development mode lets anyone order for anyone.
        owner = user_id or caller.subject or ""
        check_id(owner, "order.user_id", "user")
        draft = domain.new_order(ids.new_id(), owner, items, self._clock())
        fingerprint = orjson.dumps(
            [owner, [[i.sku, i.quantity, i.unit_price.currency, i.unit_price.nanos] for i in items]]
        )
        key = IdempotencyKey.of("CreateOrder", request_id, fingerprint)
        try:
            return await self._store.create(draft, key, self._user_check(owner))
        except _ViewBehind:
            pass
        # A user the view has not seen yet (created a moment ago): ask the user service, and
        # let the view know what it said, so that the user's deletion cancels this order.
        revision = await self._users.require(owner, deadline)
        return await self._store.create(draft, key, self._user_check(owner, learned=revision))

    def _user_check(
        self, owner: str, *, learned: int | None = None
    ) -> Callable[[Connection], Exception | None]:
        def check(conn: Connection) -> Exception | None:
            if learned is not None:
                self._view.learn(conn, owner, learned)
            verdict = self._view.verdict(conn, owner)
            if verdict is Verdict.DELETED:
                return user_not_found(owner, deleted=True)
            if verdict is Verdict.UNKNOWN:
                return _ViewBehind()
            return None

        return check

    async def get(self, order_id: str) -> Order:
        order = await self._store.get(check_id(order_id, "id", "order"))
        if order is None:
            raise not_found(order_id)
        return order

    async def list(self, requested_size: int, page_token: str, user_id: str) -> Page:
        size = page_size(requested_size)
        if user_id:
            check_id(user_id, "user_id", "user")
        query = f"orders?user_id={user_id}"
        after = self._tokens.decode(page_token, query=query)
        if after is not None and not ids.is_valid_id(after):
            raise InvalidArgument.of(FieldViolation("page_token", "is not a valid page token"))
        where = self._store.columns.user_id == user_id if user_id else None
        page = await self._store.page(after, size, where)
        token = self._tokens.encode(page.items[-1].id, query=query) if page.more else ""
        return Page(page.items, token, page.revision)

    async def cancel(self, order_id: str, expected_etag: str) -> Order:
        check_id(order_id, "id", "order")
        now = self._clock()
        return await self._store.update(
            order_id, lambda order: domain.cancelled(order, expected_etag, now)
        )
