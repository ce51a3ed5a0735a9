"""Orders in SQL: the order table's row mapping and its errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from order_svc import schema
from order_svc.domain import LineItem, Money, Order, State
from shop_common.domain import Aborted, NotFound
from shop_common.storage import Changelog, ResourceTable, from_us, to_us


class OrderRows:
    def to_row(self, order: Order) -> dict[str, Any]:
        return {
            "id": order.id,
            "user_id": order.user_id,
            "state": int(order.state),
            "currency": order.total.currency,
            "items": orjson.dumps(
                [[i.sku, i.quantity, i.unit_price.nanos] for i in order.items]
            ).decode(),
            "create_time_us": to_us(order.create_time),
            "update_time_us": to_us(order.update_time),
            "revision": order.revision,
        }

    def from_row(self, row: Mapping[Any, Any]) -> Order:
        currency = row["currency"]
        return Order(
            id=row["id"],
            user_id=row["user_id"],
            items=tuple(
                LineItem(sku, quantity, Money(currency, nanos))
                for sku, quantity, nanos in orjson.loads(row["items"])
            ),
            state=State(row["state"]),
            create_time=from_us(row["create_time_us"]),
            update_time=from_us(row["update_time_us"]),
            revision=row["revision"],
        )


def not_found(order_id: str) -> NotFound:
    return NotFound(
        f"order {order_id} does not exist", reason="ORDER_NOT_FOUND", metadata={"id": order_id}
    )


def _conflict(_error: IntegrityError) -> Aborted:
    # Orders have no unique constraint but their UUIDv7 id: a collision is a retryable fluke.
    return Aborted("the order could not be stored; retry", reason="WRITE_CONFLICT")


def order_table(changelog: Changelog) -> ResourceTable[Order]:
    return ResourceTable(
        schema.orders, OrderRows(), changelog=changelog, not_found=not_found, conflict=_conflict
    )
