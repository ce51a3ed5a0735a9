"""The order service's use cases, each for the caller's `Access` (see `policy`).

A user acts on the orders of the users their subject owns, as the view of users knows them
(`ownership`): the check rides in the unit of work of the read or write it guards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import orjson
from sqlalchemy.engine import Connection

from order_svc import domain
from order_svc.domain import LineItem, Order
from order_svc.ownership import Ownership
from order_svc.policy import caller_has_no_user, not_your_order, not_your_user
from order_svc.store import not_found
from order_svc.user_client import FoundUser, UserDirectory, user_not_found
from order_svc.user_view import UserView
from shop_common.domain import Clock, NotFound, check_id, new_id, page_size, utc_now
from shop_common.serving import Access, Deadline
from shop_common.storage import (
    BatchedLookup,
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
        ownership: Ownership,
        users: UserDirectory,
        pages: Pages[Order],
        clock: Clock = utc_now,
    ) -> None:
        self._uow = uow
        self._orders = orders
        self._view = view
        self._ownership = ownership
        # GetOrders arriving together are read by one statement (see `storage.batched`).
        self._by_id = BatchedLookup(uow, orders.get_many)
        self._with_owner_by_id = BatchedLookup(uow, ownership.orders)
        self._users = users
        self._pages = pages
        self._clock = clock

    async def create(
        self,
        user_id: str,
        items: list[LineItem],
        request_id: str,
        access: Access,
        deadline: Deadline,
    ) -> Order:
        # Without a user_id, the order is for the caller's own user (their subject's).
        if user_id or access.subject is None:
            check_id(user_id, "order.user_id", "user")
        draft = domain.new_order(new_id(), user_id, items, self._clock())
        fingerprint = orjson.dumps(
            [
                user_id,
                [[i.sku, i.quantity, i.unit_price.currency, i.unit_price.nanos] for i in items],
            ]
        )
        key = IdempotencyKey.of("CreateOrder", access.subject, request_id, fingerprint)
        with self._view.wanted(user_id):
            order = await self._uow.write(self._placing(draft, key, access))
        if order is None:
            # A user the view has not seen yet (created a moment ago): ask the user service,
            # and record its answer in the view with the order, so that the user's deletion
            # cancels this order.
            found = await self._users.find(user_id, deadline)
            if found is None or not access.owns(found.subject):
                if not access.everything:
                    raise not_your_user(access, user_id)
                raise user_not_found(user_id)
            order = await self._uow.write(self._placing(draft, key, access, learned=found))
            if order is None:  # deleted since the user service answered (`UserView.learn`)
                raise user_not_found(user_id, deleted=True)
        return order

    def _placing(
        self,
        draft: Order,
        key: IdempotencyKey | None,
        access: Access,
        *,
        learned: FoundUser | None = None,
    ) -> Callable[[Transaction], Order | None]:
        """CreateOrder's unit of work: the user must be the caller's (unless they may order
        for anyone) and live in the view, then the order is inserted. None when the view has
        not seen the user."""

        def unit(tx: Transaction) -> Order | None:
            owner = draft.user_id
            if not owner:
                assert access.subject is not None
                owner = self._ownership.live_user_of(tx.conn, access.subject) or ""
                if not owner:
                    raise caller_has_no_user()
            if learned is not None:
                self._view.learn(tx, owner, learned.revision, learned.subject)
            known = self._view.find(tx, owner)
            if known is not None and not access.owns(known.subject):
                raise not_your_user(access, owner)
            earlier = self._orders.replay(tx, key)
            if earlier is not None:
                return earlier  # an idempotent replay wins over a refusal
            if known is None:
                return None
            if known.deleted:
                raise user_not_found(owner, deleted=True)
            return self._orders.insert(tx, dataclasses.replace(draft, user_id=owner), key)

        return unit

    async def get(self, order_id: str, access: Access) -> Order:
        check_id(order_id, "id", "order")
        if access.everything:
            order = await self._by_id.get(order_id)
            if order is None:
                raise not_found(order_id)
            return order
        # The order with its owner, in one statement; another's and none answer alike.
        found = await self._with_owner_by_id.get(order_id)
        if found is None or not access.owns(found[1]):
            raise not_your_order(access, order_id)
        return found[0]

    async def list(
        self, requested_size: int, page_token: str, user_id: str, access: Access
    ) -> Page[Order]:
        size = page_size(requested_size)
        if user_id:
            check_id(user_id, "user_id", "user")
        columns = self._orders.columns
        if access.everything or user_id:

            def guard(conn: Connection) -> None:
                if not access.owns(self._ownership.subject_of(conn, user_id)):
                    raise not_your_user(access, user_id)

            return await self._pages.list(
                size,
                page_token,
                query=f"orders?user_id={user_id}",
                where=columns.user_id == user_id if user_id else None,
                guard=None if access.everything else guard,
            )
        # A user's own: the orders of every user their subject owns or owned.
        subject = access.subject
        assert subject is not None
        return await self._pages.list(
            size,
            page_token,
            query=f"orders?owner={subject}",
            where=lambda conn: self._ownership.orders_of(conn, subject),
        )

    async def cancel(self, order_id: str, expected_etag: str, access: Access) -> Order:
        check_id(order_id, "id", "order")
        now = self._clock()

        def unit(tx: Transaction) -> Order:
            def change(order: Order) -> Order:
                # Before the etag and the state: nothing shows of another's order.
                if not access.owns(self._ownership.subject_of(tx.conn, order.user_id)):
                    raise not_your_order(access, order_id)
                return domain.cancelled(order, expected_etag, now)

            try:
                return self._orders.update(tx, order_id, change)
            except NotFound:
                if not access.everything:
                    raise not_your_order(access, order_id) from None
                raise

        return await self._uow.write(unit)

    async def watched_users(self, user_id: str, access: Access) -> frozenset[str] | None:
        """The users whose orders a watch shows: `user_id`'s, or without it the caller's own
        (None: every order, for a caller who may see everything)."""
        if user_id:
            check_id(user_id, "user_id", "user")
        if access.everything:
            return frozenset({user_id}) if user_id else None
        subject = access.subject
        assert subject is not None
        if user_id:
            owner = await self._uow.read(lambda conn: self._ownership.subject_of(conn, user_id))
            if not access.owns(owner):
                raise not_your_user(access, user_id)
            return frozenset({user_id})
        # Resolved once: a user the subject creates later is not followed by this watch.
        owned = await self._uow.read(lambda conn: self._ownership.users_of(conn, subject))
        if not owned:
            raise caller_has_no_user()
        return owned
