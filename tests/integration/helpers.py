"""Building requests and reading rich error statuses in integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import pytest
from google.rpc import error_details_pb2
from google.type import money_pb2
from grpc_status import rpc_status

import user_svc.schema
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.domain import is_valid_id
from shop_common.storage import Database, Transaction, UnitOfWork, migrate
from tests.support import eventually

DOMAIN = "shop.dev"
UNKNOWN_ID = "01a21966-e263-7607-918a-d4d32f874249"  # well formed, never issued here


@dataclass
class Failure:
    """What a client learns from a failed call: the code and the status details."""

    code: grpc.StatusCode
    message: str
    reason: str | None = None
    domain: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[tuple[str, str]] = field(default_factory=list)
    """(field, reason) of each BadRequest field violation."""


def failure_of(error: grpc.aio.AioRpcError) -> Failure:
    found = Failure(code=error.code(), message=error.details() or "")
    # AioRpcError has the methods from_call reads (code, details, trailing_metadata).
    status = rpc_status.from_call(cast(grpc.Call, error))
    if status is None:
        return found
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found.reason, found.domain = info.reason, info.domain
            found.metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.violations.extend((v.field, v.reason) for v in bad.field_violations)
    return found


async def fails(call: Awaitable[object], code: grpc.StatusCode, reason: str) -> Failure:
    """Awaits `call`, which must fail with `code` and an ErrorInfo of `reason` in shop.dev."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    found = failure_of(caught.value)
    assert (found.code, found.reason, found.domain) == (code, reason, DOMAIN), found
    return found


def fields_of(found: Failure) -> set[str]:
    return {name for name, _reason in found.violations}


def new_email() -> str:
    return f"u-{uuid.uuid4().hex[:12]}@example.com"


def bearer(subject: str) -> tuple[tuple[str, str]]:
    """The metadata of a call by `subject` (development identity: taken at its word)."""
    return (("authorization", f"Bearer {subject}"),)


ORDER_SERVICE = bearer("service:order_svc")
"""The order service's own identity, in development identity."""


async def create_user(
    users: user_pb2_grpc.UserServiceAsyncStub,
    email: str | None = None,
    display_name: str = "Ada Lovelace",
    request_id: str = "",
    subject: str = "",
) -> user_pb2.User:
    """A user created by the development admin (no credentials), owned by `subject`."""
    response = await users.CreateUser(
        user_pb2.CreateUserRequest(
            user=user_pb2.User(email=email or new_email(), display_name=display_name),
            request_id=request_id,
            subject=subject,
        )
    )
    assert is_valid_id(response.user.id)
    return response.user


async def all_users(users: user_pb2_grpc.UserServiceAsyncStub) -> list[user_pb2.User]:
    response = await users.ListUsers(user_pb2.ListUsersRequest(page_size=1000))
    assert not response.next_page_token
    return list(response.users)


async def known_to_orders(
    orders: order_pb2_grpc.OrderServiceAsyncStub, user: user_pb2.User
) -> None:
    """Waits until the order service's view of users holds `user` with its owner: until then
    its owner is refused on it as on anyone else's."""

    async def known() -> bool:
        request = order_pb2.ListOrdersRequest(user_id=user.id, page_size=1)
        try:
            await orders.ListOrders(request, metadata=bearer(user.subject), timeout=5)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise
            return False
        return True

    await eventually(known, 10, f"the order service knows user {user.id}")


async def owned_user(
    users: user_pb2_grpc.UserServiceAsyncStub,
    orders: order_pb2_grpc.OrderServiceAsyncStub,
    subject: str,
) -> user_pb2.User:
    """A user owned by `subject`, once the order service knows it."""
    user = await create_user(users, subject=subject)
    await known_to_orders(orders, user)
    return user


def price(units: int, nanos: int = 0, currency: str = "EUR") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, units=units, nanos=nanos)


def item(
    sku: str = "TEA-1", quantity: int = 1, unit_price: money_pb2.Money | None = None
) -> order_pb2.LineItem:
    return order_pb2.LineItem(sku=sku, quantity=quantity, unit_price=unit_price or price(3))


def order_request(
    user_id: str, *items: order_pb2.LineItem, request_id: str = ""
) -> order_pb2.CreateOrderRequest:
    return order_pb2.CreateOrderRequest(
        order=order_pb2.Order(user_id=user_id, items=list(items) or [item()]),
        request_id=request_id,
    )


async def all_orders(
    orders: order_pb2_grpc.OrderServiceAsyncStub, user_id: str = ""
) -> list[order_pb2.Order]:
    response = await orders.ListOrders(order_pb2.ListOrdersRequest(page_size=1000, user_id=user_id))
    assert not response.next_page_token
    return list(response.orders)


async def one_turn(uow: UnitOfWork, *writes: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Runs `writes` (each hands one unit of work to the writer) as one turn of the writer, in
    this order: queued behind a unit that holds the writer until all of them are handed
    over. Their results, in order (an exception is returned, not raised)."""
    handed, release = threading.Event(), threading.Event()

    def hold(_tx: Transaction) -> None:
        handed.set()
        release.wait(10)

    holder = asyncio.ensure_future(uow.write(hold))
    await asyncio.to_thread(handed.wait, 10)
    tasks = []
    for write in writes:
        tasks.append(asyncio.ensure_future(write()))
        await asyncio.sleep(0)  # this one hands its unit over before the next
    await asyncio.sleep(0.05)
    release.set()
    await holder
    return await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def user_database(url: str) -> AsyncIterator[Database]:
    """The user service's tables in the empty database at `url`, open for units of work."""
    db = Database(url)
    try:
        await migrate(db, user_svc.schema.MIGRATIONS)
        yield db
    finally:
        await db.close()
