"""Between the domain's orders and the contract's messages, the feed's events included."""

from __future__ import annotations

from google.type import money_pb2

from order_svc.domain import LineItem, Money, Order, State, money
from order_svc.store import OrderRows
from shop.order.v1 import order_pb2
from shop_common.feed import EventKind
from shop_common.serving import set_timestamp

_STATE = {
    State.PENDING: order_pb2.Order.STATE_PENDING,
    State.CANCELLED: order_pb2.Order.STATE_CANCELLED,
}


def money_message(amount: Money) -> money_pb2.Money:
    units, nanos = amount.units_and_nanos
    return money_pb2.Money(currency_code=amount.currency, units=units, nanos=nanos)


def order_message(order: Order) -> order_pb2.Order:
    message = order_pb2.Order(
        id=order.id,
        user_id=order.user_id,
        items=[
            order_pb2.LineItem(
                sku=i.sku, quantity=i.quantity, unit_price=money_message(i.unit_price)
            )
            for i in order.items
        ],
        total=money_message(order.total),
        state=_STATE[order.state],
        etag=order.etag,
    )
    set_timestamp(message.create_time, order.create_time)
    set_timestamp(message.update_time, order.update_time)
    return message


def line_items(order: order_pb2.Order) -> list[LineItem]:
    return [
        LineItem(
            item.sku,
            item.quantity,
            money(
                item.unit_price.currency_code,
                item.unit_price.units,
                item.unit_price.nanos,
                f"order.items[{n}].unit_price",
            ),
        )
        for n, item in enumerate(order.items)
    ]


ORDER_EVENTS = EventKind(
    order_pb2.OrderEvent, order_pb2.WatchOrdersResponse, "order", OrderRows(), order_message
)
