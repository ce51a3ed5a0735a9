"""Calling the shop from Python with nothing but the generated `shop-api` package.

    python -m venv /tmp/shop-client && /tmp/shop-client/bin/pip install ./gen/python
    /tmp/shop-client/bin/python clients/python/example.py 127.0.0.1:50051 127.0.0.1:50052

Creates a user and an order, reads the order back, then shows what an error carries.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterable
from typing import cast

import grpc
from google.rpc import error_details_pb2, status_pb2
from google.type import money_pb2

from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc


def error_reason(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason of a failed call (rich details travel in `grpc-status-details-bin`)."""
    # grpc.aio's metadata iterates as (key, value) pairs; grpc-stubs types it otherwise.
    metadata = dict(cast("Iterable[tuple[str, str | bytes]]", error.trailing_metadata() or ()))
    raw = metadata.get("grpc-status-details-bin")
    if isinstance(raw, bytes):
        for detail in status_pb2.Status.FromString(raw).details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return str(info.reason)
    return ""


async def main(user_address: str, order_address: str) -> None:
    async with (
        grpc.aio.insecure_channel(user_address) as user_channel,
        grpc.aio.insecure_channel(order_address) as order_channel,
    ):
        users = user_pb2_grpc.UserServiceStub(user_channel)
        orders = order_pb2_grpc.OrderServiceStub(order_channel)

        email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
        created = await users.CreateUser(
            user_pb2.CreateUserRequest(user=user_pb2.User(email=email, display_name="Ada")),
            timeout=5,
        )
        price = money_pb2.Money(currency_code="EUR", units=3, nanos=500_000_000)
        placed = await orders.CreateOrder(
            order_pb2.CreateOrderRequest(
                order=order_pb2.Order(
                    user_id=created.user.id,
                    items=[order_pb2.LineItem(sku="TEA-1", quantity=2, unit_price=price)],
                ),
                request_id=str(uuid.uuid4()),  # a retry with the same id creates nothing more
            ),
            timeout=5,
        )
        order = (await orders.GetOrder(order_pb2.GetOrderRequest(id=placed.order.id))).order
        state = order_pb2.Order.State.Name(order.state)
        print(f"user {created.user.id} ordered {order.id}: {order.total.units} EUR, {state}")

        try:
            await users.GetUser(user_pb2.GetUserRequest(id="not-an-id"), timeout=5)
        except grpc.aio.AioRpcError as error:
            print(f"GetUser('not-an-id') failed: {error.code().name} {error_reason(error)}")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
