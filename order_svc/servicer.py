"""The gRPC adapter of the order service: messages in, a use case, messages out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from order_svc.convert import ORDER_EVENTS, line_items, order_message
from order_svc.service import OrderUseCases
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop_common.domain import check_id
from shop_common.feed import Feed, ResourceEvents, everything, serve
from shop_common.serving import Deadline, current_caller
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
            current_caller(),
            Deadline.after(context.time_remaining()),
        )
        return order_pb2.CreateOrderResponse(order=order_message(order))

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Context
    ) -> order_pb2.GetOrderResponse:
        return order_pb2.GetOrderResponse(order=order_message(await self._orders.get(request.id)))

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: Context
    ) -> order_pb2.ListOrdersResponse:
        page = await self._orders.list(request.page_size, request.page_token, request.user_id)
        return order_pb2.ListOrdersResponse(
            orders=[order_message(o) for o in page.items],
            next_page_token=page.next_page_token,
            revision=page.revision,
        )

    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: Context
    ) -> order_pb2.CancelOrderResponse:
        order = await self._orders.cancel(request.id, request.etag)
        return order_pb2.CancelOrderResponse(order=order_message(order))

    async def WatchOrders(  # type: ignore[override]
        self, request: order_pb2.WatchOrdersRequest, context: Context
    ) -> None:
        # A coroutine writing through context.write, so that a watch can be cut off while a
        # write waits; grpc.aio serves it, the generated stub declares only iterators.
        if request.user_id:
            check_id(request.user_id, "user_id", "user")
        await serve(
            self._feed,
            context,
            ResourceEvents(
                ORDER_EVENTS, with_prev=request.prev_order, wants=_of_user(request.user_id)
            ),
            start_revision=request.start_revision,
            progress_notify=request.progress_notify,
        )


def _of_user(user_id: str) -> Callable[[Change], bool]:
    """WatchOrders' `user_id` filter: that user's orders only, when it is set."""
    if not user_id:
        return everything
    return lambda change: change.row()["user_id"] == user_id
