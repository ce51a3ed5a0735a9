"""Order rules: money, new orders, the exact total, the cancel state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from order_svc import domain
from order_svc.domain import NANOS_PER_UNIT, LineItem, Money, Order, State
from shop_common.domain import Aborted, FailedPrecondition, InvalidArgument

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ORDER_ID = "01a21966-e263-7607-918a-d4d32f874249"
USER_ID = "01a21966-e263-7607-918a-d4d32f87424a"
FIELD = "order.items[0].unit_price"


def eur(units: int, nanos: int = 0) -> Money:
    return domain.money("EUR", units, nanos, FIELD)


def line(sku: str = "TEA-1", quantity: int = 1, unit_price: Money | None = None) -> LineItem:
    return LineItem(sku, quantity, unit_price or eur(1))


def refused_fields(error: InvalidArgument) -> list[str]:
    return [v.field for v in error.violations]


def test_money_holds_the_whole_amount_in_nanos() -> None:
    assert domain.money("EUR", 3, 500_000_000, FIELD) == Money("EUR", 3_500_000_000)
    assert domain.money("USD", 0, 1, FIELD) == Money("USD", 1)
    assert domain.money("JPY", 0, 0, FIELD) == Money("JPY", 0)
    top = domain.money("EUR", domain.MAX_UNIT_PRICE_UNITS, NANOS_PER_UNIT - 1, FIELD)
    assert top.nanos == domain.MAX_UNIT_PRICE_UNITS * NANOS_PER_UNIT + NANOS_PER_UNIT - 1


@pytest.mark.parametrize("currency", ["", "eur", "EU", "EURO", "E1R", "€", "ÉUR", " EUR", "EUR\n"])
def test_money_with_bad_currency_is_refused(currency: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        domain.money(currency, 1, 0, FIELD)
    assert refused_fields(caught.value) == [f"{FIELD}.currency_code"]


@pytest.mark.parametrize("nanos", [NANOS_PER_UNIT, -NANOS_PER_UNIT, 2**31 - 1])
def test_money_with_nanos_out_of_range_is_refused(nanos: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        domain.money("EUR", 1, nanos, FIELD)
    assert f"{FIELD}.nanos" in refused_fields(caught.value)


@pytest.mark.parametrize(("units", "nanos"), [(1, -1), (-1, 1)])
def test_money_with_sign_mismatch_is_refused(units: int, nanos: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        domain.money("EUR", units, nanos, FIELD)
    assert f"{FIELD}.nanos" in refused_fields(caught.value)


@pytest.mark.parametrize(("units", "nanos"), [(-1, 0), (0, -1), (-3, -500_000_000)])
def test_negative_money_is_refused(units: int, nanos: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        domain.money("EUR", units, nanos, FIELD)
    assert FIELD in refused_fields(caught.value)


def test_money_above_the_cap_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        domain.money("EUR", domain.MAX_UNIT_PRICE_UNITS + 1, 0, FIELD)
    assert refused_fields(caught.value) == [f"{FIELD}.units"]


def test_money_reports_every_problem_at_once() -> None:
    with pytest.raises(InvalidArgument) as caught:
        domain.money("eur", -1, NANOS_PER_UNIT, FIELD)
    assert refused_fields(caught.value) == [f"{FIELD}.currency_code", f"{FIELD}.nanos", FIELD]


@pytest.mark.parametrize(
    ("nanos", "split"),
    [
        (3_500_000_000, (3, 500_000_000)),
        (-3_500_000_000, (-3, -500_000_000)),
        (-1, (0, -1)),
        (0, (0, 0)),
        (7 * NANOS_PER_UNIT, (7, 0)),
    ],
)
def test_units_and_nanos_split_with_one_sign(nanos: int, split: tuple[int, int]) -> None:
    assert Money("EUR", nanos).units_and_nanos == split


def test_new_order_is_pending_with_equal_times() -> None:
    order = domain.new_order(ORDER_ID, USER_ID, [line()], NOW)
    assert (order.id, order.user_id, order.state, order.revision) == (
        ORDER_ID,
        USER_ID,
        State.PENDING,
        0,
    )
    assert order.create_time == order.update_time == NOW


def test_new_order_without_items_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        domain.new_order(ORDER_ID, USER_ID, [], NOW)
    assert [(v.field, v.reason) for v in caught.value.violations] == [("order.items", "REQUIRED")]


def test_new_order_with_too_many_items_is_refused() -> None:
    domain.new_order(ORDER_ID, USER_ID, [line()] * domain.MAX_ITEMS, NOW)
    with pytest.raises(InvalidArgument) as caught:
        domain.new_order(ORDER_ID, USER_ID, [line()] * (domain.MAX_ITEMS + 1), NOW)
    assert refused_fields(caught.value) == ["order.items"]


@pytest.mark.parametrize(
    "sku", ["", "TEA 1", "TEA/1", "tea'1", "x" * 65, "TÉA", "TEA\n", "TEA-1;DROP"]
)
def test_new_order_with_bad_sku_is_refused(sku: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        domain.new_order(ORDER_ID, USER_ID, [line(), line(sku=sku)], NOW)
    assert refused_fields(caught.value) == ["order.items[1].sku"]


@pytest.mark.parametrize("sku", ["a", "TEA-1", "x.y_z-0", "x" * 64])
def test_new_order_with_good_sku_is_accepted(sku: str) -> None:
    domain.new_order(ORDER_ID, USER_ID, [line(sku=sku)], NOW)


@pytest.mark.parametrize("quantity", [0, -1, domain.MAX_QUANTITY + 1])
def test_new_order_with_quantity_out_of_bounds_is_refused(quantity: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        domain.new_order(ORDER_ID, USER_ID, [line(quantity=quantity)], NOW)
    assert refused_fields(caught.value) == ["order.items[0].quantity"]


@pytest.mark.parametrize("quantity", [1, domain.MAX_QUANTITY])
def test_new_order_with_quantity_at_the_bounds_is_accepted(quantity: int) -> None:
    domain.new_order(ORDER_ID, USER_ID, [line(quantity=quantity)], NOW)


def test_new_order_with_mixed_currencies_is_refused() -> None:
    usd = domain.money("USD", 1, 0, FIELD)
    with pytest.raises(InvalidArgument) as caught:
        domain.new_order(ORDER_ID, USER_ID, [line(), line(unit_price=usd)], NOW)
    assert [(v.field, v.reason) for v in caught.value.violations] == [
        ("order.items", "MIXED_CURRENCIES")
    ]
    assert "EUR, USD" in caught.value.message


def test_total_is_exact_with_nanos_carried_into_units() -> None:
    items = [
        line(quantity=3, unit_price=eur(0, 333_333_333)),  # 0.999999999
        line(quantity=1, unit_price=eur(0, 1)),  # + 0.000000001
        line(quantity=2, unit_price=eur(19, 990_000_000)),  # + 39.98
    ]
    total = domain.new_order(ORDER_ID, USER_ID, items, NOW).total
    assert total == Money("EUR", 40_980_000_000)
    assert total.units_and_nanos == (40, 980_000_000)


def test_total_of_the_largest_order_is_exact() -> None:
    top = eur(domain.MAX_UNIT_PRICE_UNITS, NANOS_PER_UNIT - 1)
    items = [line(quantity=domain.MAX_QUANTITY, unit_price=top)] * domain.MAX_ITEMS
    total = domain.new_order(ORDER_ID, USER_ID, items, NOW).total
    count = domain.MAX_QUANTITY * domain.MAX_ITEMS
    assert total.nanos == count * top.nanos
    units, nanos = total.units_and_nanos
    assert units * NANOS_PER_UNIT + nanos == count * top.nanos
    assert units < 2**63  # fits google.type.Money's int64 units


def stored_order(state: State = State.PENDING, revision: int = 4) -> Order:
    return Order(ORDER_ID, USER_ID, (line(),), state, NOW, NOW, revision=revision)


def test_cancel_moves_a_pending_order_to_cancelled() -> None:
    later = NOW + timedelta(seconds=1)
    order = domain.cancelled(stored_order(), "4", later)
    assert order.state is State.CANCELLED
    assert (order.create_time, order.update_time) == (NOW, later)
    assert domain.cancelled(stored_order(), "", later).state is State.CANCELLED


def test_cancelling_a_cancelled_order_fails_its_precondition() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        domain.cancelled(stored_order(State.CANCELLED), "", NOW)
    assert caught.value.reason == "ORDER_ALREADY_CANCELLED"
    assert caught.value.metadata == {"id": ORDER_ID}


@pytest.mark.parametrize("state", [State.PENDING, State.CANCELLED])
def test_cancel_with_stale_etag_is_aborted(state: State) -> None:
    with pytest.raises(Aborted) as caught:
        domain.cancelled(stored_order(state, revision=4), "3", NOW)
    assert caught.value.reason == "ETAG_MISMATCH"
    assert caught.value.metadata == {"current_etag": "4"}
