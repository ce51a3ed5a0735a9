"""The order service's use cases."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from order_svc import domain
from order_svc.domain import LineItem, Order
from order_svc.store import not_found
from order_svc.user_client import UserDirectory, user_not_found
from order_svc.user_view import UserView, Verdict
from shop_common.domain import Clock, check_id, new_id, page_size, utc_now
from shop_common.serving import Caller, Deadline
from shop_common.storage import (
    IdempotencyKey,
    Page,
    Pages,
    ResourceTable,
    Transaction,
    UnitOfWork,
)


class OrderUseCases:
    def __init__(
        self,
        uow: UnitOfWork,
        orders: ResourceTable[Order],
        view: UserView,
        users: UserDirectory,
        pages: Pages[Order],
        clock: Clock = utc_now,
    ) -> None:
        self._uow = uow
        self._orders = orders
        self._view = view
        self._users = users
        self._pages = pages
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
        draft = domain.new_order(new_id(), owner, items, self._clock())
        fingerprint = orjson.dumps(
            [owner, [[i.sku, i.quantity, i.unit_price.currency, i.unit_price.nanos] for i in items]]
        )
        key = IdempotencyKey.of("CreateOrder", caller.subject, request_id, fingerprint)
        order = await self._uow.write(self._placing(draft, key))
        if order is None:
            # A user the view has not seen yet (created a moment ago): ask the user service,
            # and record its answer in the view with the order, so that the user's deletion
            # cancels this order.
            revision = await self._users.require(owner, deadline)
            order = await self._uow.write(self._placing(draft, key, learned=revision))
            assert order is not None, "a user just learned of is known to the view"
        return order

    def _placing(
        self, draft: Order, key: IdempotencyKey | None, *, learned: int | None = None
    ) -> Callable[[Transaction], Order | None]:
        """CreateOrder's unit of work: the user must be live in the view, then the order is
        inserted. None when the view has not seen the user."""
        owner = draft.user_id

        def unit(tx: Transaction) -> Order | None:
            if learned is not None:
                self._view.learn(tx, owner, learned)
            verdict = self._view.verdict(tx, owner)  # its row locked before the revision
            earlier = self._orders.replay(tx, key)
            if earlier is not None:
                return earlier  # an idempotent replay wins over a refusal
            if verdict is Verdict.DELETED:
                raise user_not_found(owner, deleted=True)
            if verdict is Verdict.UNKNOWN:
                return None
            return self._orders.insert(tx, draft, key)

        return unit

    async def get(self, order_id: str) -> Order:
        check_id(order_id, "id", "order")
        order = await self._uow.read(lambda conn: self._orders.get(conn, order_id))
        if order is None:
            raise not_found(order_id)
        return order

    async def list(self, requested_size: int, page_token: str, user_id: str) -> Page[Order]:
        size = page_size(requested_size)
        if user_id:
            check_id(user_id, "user_id", "user")
        return await self._pages.list(
            size,
            page_token,
            query=f"orders?user_id={user_id}",
            where=self._orders.columns.user_id == user_id if user_id else None,
        )

    async def cancel(self, order_id: str, expected_etag: str) -> Order:
        check_id(order_id, "id", "order")
        now = self._clock()
        return await self._uow.write(
            lambda tx: self._orders.update(
                tx, order_id, lambda order: domain.cancelled(order, expected_etag, now)
            )
        )
