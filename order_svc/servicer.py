"""The gRPC adapter of the order service: messages in, the policy's admission, a use case,
messages out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from order_svc.convert import ORDER_EVENTS, line_items, order_message
from order_svc.policy import POLICY
from order_svc.service import OrderUseCases
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop_common.feed import Feed, ResourceEvents, everything, serve
from shop_common.serving import Deadline
from shop_common.storage import Change

Context = grpc.aio.ServicerContext[Any, Any]


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, orders: OrderUseCases, feed: Feed) -> None:
        self._orders = orders
        self._feed = feed

    async def CreateOrder(
        self, request: order_pb2.CreateOrderRequest, context: Context
    ) -> order_pb2.CreateOrderResponse:
        order = await self._orders.create(
            request.order.user_id,
            line_items(request.order),
            request.request_id,
            POLICY.admit("CreateOrder"),
            Deadline.after(context.time_remaining()),
        )
        return order_pb2.CreateOrderResponse(order=order_message(order))

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Context
    ) -> order_pb2.GetOrderResponse:
        order = await self._orders.get(request.id, POLICY.admit("GetOrder"))
        return order_pb2.GetOrderResponse(order=order_message(order))

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: Context
    ) -> order_pb2.ListOrdersResponse:
        access = POLICY.admit("ListOrders")
        page = await self._orders.list(
            request.page_size, request.page_token, request.user_id, access
        )
        return order_pb2.ListOrdersResponse(
            orders=[order_message(o) for o in page.items],
            next_page_token=page.next_page_token,
            revision=page.revision,
        )

    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: Context
    ) -> order_pb2.CancelOrderResponse:
        order = await self._orders.cancel(request.id, request.etag, POLICY.admit("CancelOrder"))
        return order_pb2.CancelOrderResponse(order=order_message(order))

    async def WatchOrders(  # type: ignore[override]
        self, request: order_pb2.WatchOrdersRequest, context: Context
    ) -> None:
        # A coroutine writing through context.write, so that a watch can be cut off while a
        # write waits; grpc.aio serves it, the generated stub declares only iterators.
        access = POLICY.admit("WatchOrders")
        users = await self._orders.watched_users(request.user_id, access)
        await serve(
            self._feed,
            context,
            ResourceEvents(ORDER_EVENTS, with_prev=request.prev_order, wants=_of_users(users)),
            start_revision=request.start_revision,
            progress_notify=request.progress_notify,
        )


def _of_users(user_ids: frozenset[str] | None) -> Callable[[Change], bool]:
    """WatchOrders' filter: the orders of these users only (None: every order)."""
    if user_ids is None:
        return everything
    return lambda change: change.row()["user_id"] in user_ids
