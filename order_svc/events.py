"""The order feed's messages: changelog rows → `WatchOrdersResponse`s (see
`shop_common.watch`), optionally only one user's orders.

Each change is turned into its `OrderEvent` once and shared by every watcher that wants it.
"""

from __future__ import annotations

from order_svc.convert import order_message
from order_svc.store import OrderRows
from shop.order.v1 import order_pb2
from shop_common import watch
from shop_common.changelog import Change, ChangeType

watch.check_layout(order_pb2.WatchOrdersResponse.DESCRIPTOR)
_ROWS = OrderRows()
_TYPE = {
    ChangeType.PUT: order_pb2.OrderEvent.TYPE_PUT,
    ChangeType.DELETE: order_pb2.OrderEvent.TYPE_DELETE,
}


def _event(change: Change, with_prev: bool) -> order_pb2.OrderEvent:
    event = order_pb2.OrderEvent(
        type=_TYPE[change.type],
        order=order_message(_ROWS.from_row(change.row())),
        revision=change.revision,
    )
    if with_prev and (prev := change.prev_row()) is not None:
        event.prev_order.CopyFrom(order_message(_ROWS.from_row(prev)))
    return event


class OrderEvents:
    def __init__(self, prev_order: bool, user_id: str) -> None:
        self._prev = prev_order
        self._user_id = user_id

    def wants(self, change: Change) -> bool:
        return not self._user_id or change.row()["user_id"] == self._user_id

    def event(self, change: Change) -> bytes:
        return watch.serialized(change, self._prev, lambda: _event(change, self._prev))

    def compacted(
        self, compact_revision: int, header_revision: int
    ) -> order_pb2.WatchOrdersResponse:
        return order_pb2.WatchOrdersResponse(
            compact_revision=compact_revision, header_revision=header_revision
        )

    def progress(self, header_revision: int) -> order_pb2.WatchOrdersResponse:
        return order_pb2.WatchOrdersResponse(progress_notify=True, header_revision=header_revision)
