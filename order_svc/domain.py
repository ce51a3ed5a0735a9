"""Orders, money and the order state machine. Pure: no I/O, no gRPC, no SQL."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from shop_common.domain import Aborted, FailedPrecondition, FieldViolation, InvalidArgument

NANOS_PER_UNIT = 1_000_000_000
MAX_ITEMS = 100
MAX_QUANTITY = 10_000
MAX_UNIT_PRICE_UNITS = 1_000_000_000  # keeps every amount in nanos inside int64
_SKU = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class State(IntEnum):
    PENDING = 1
    CANCELLED = 2


@dataclass(frozen=True, slots=True)
class Money:
    currency: str
    nanos: int
    """The whole amount in billionths of the currency unit."""

    @property
    def units_and_nanos(self) -> tuple[int, int]:
        """As google.type.Money splits it: both parts carry the sign."""
        units = abs(self.nanos) // NANOS_PER_UNIT
        rest = abs(self.nanos) % NANOS_PER_UNIT
        sign = -1 if self.nanos < 0 else 1
        return sign * units, sign * rest


def money(currency: str, units: int, nanos: int, field: str) -> Money:
    """A price as google.type.Money states it, checked: not negative, well formed."""
    violations = []
    if not _CURRENCY.fullmatch(currency):
        violations.append(
            FieldViolation(f"{field}.currency_code", "must be a 3-letter ISO 4217 code, e.g. EUR")
        )
    if not -NANOS_PER_UNIT < nanos < NANOS_PER_UNIT:
        violations.append(FieldViolation(f"{field}.nanos", "must be within ±999,999,999"))
    elif (units > 0 and nanos < 0) or (units < 0 and nanos > 0):
        violations.append(FieldViolation(f"{field}.nanos", "must have the sign of units"))
    if units < 0 or nanos < 0:
        violations.append(FieldViolation(field, "must not be negative"))
    if units > MAX_UNIT_PRICE_UNITS:
        violations.append(
            FieldViolation(f"{field}.units", f"must be at most {MAX_UNIT_PRICE_UNITS}")
        )
    if violations:
        raise InvalidArgument.of(*violations)
    return Money(currency, units * NANOS_PER_UNIT + nanos)


@dataclass(frozen=True, slots=True)
class LineItem:
    sku: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    user_id: str
    items: tuple[LineItem, ...]
    state: State
    create_time: datetime
    update_time: datetime
    revision: int = 0
    """The revision of the write that last changed the order; 0 before it is stored."""

    @property
    def etag(self) -> str:
        return str(self.revision)

    @property
    def total(self) -> Money:
        return Money(
            self.items[0].unit_price.currency,
            sum(i.quantity * i.unit_price.nanos for i in self.items),
        )


def new_order(order_id: str, user_id: str, items: list[LineItem], now: datetime) -> Order:
    violations = []
    if not items:
        violations.append(FieldViolation("order.items", "must hold at least one item", "REQUIRED"))
    if len(items) > MAX_ITEMS:
        violations.append(FieldViolation("order.items", f"must hold at most {MAX_ITEMS} items"))
    for n, item in enumerate(items):
        if not _SKU.fullmatch(item.sku):
            violations.append(
                FieldViolation(
                    f"order.items[{n}].sku", "must be 1-64 letters, digits, '.', '_' or '-'"
                )
            )
        if not 1 <= item.quantity <= MAX_QUANTITY:
            violations.append(
                FieldViolation(f"order.items[{n}].quantity", f"must be 1 to {MAX_QUANTITY}")
            )
    currencies = {item.unit_price.currency for item in items}
    if len(currencies) > 1:
        violations.append(
            FieldViolation(
                "order.items",
                f"all items must share one currency, got {', '.join(sorted(currencies))}",
                "MIXED_CURRENCIES",
            )
        )
    if violations:
        raise InvalidArgument.of(*violations)
    return Order(order_id, user_id, tuple(items), State.PENDING, now, now)


def cancelled(order: Order, expected_etag: str, now: datetime) -> Order:
    if expected_etag and expected_etag != order.etag:
        raise Aborted(
            "the order was changed since it was read: read it again and retry",
            metadata={"current_etag": order.etag},
        )
    if order.state is State.CANCELLED:
        raise FailedPrecondition(
            f"order {order.id} is already cancelled",
            reason="ORDER_ALREADY_CANCELLED",
            metadata={"id": order.id},
        )
    return dataclasses.replace(order, state=State.CANCELLED, update_time=now)
