"""OrderService end to end, in front of a real UserService, on each database backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest

import order_svc.schema
from order_svc import domain
from order_svc.domain import MAX_QUANTITY, MAX_UNIT_PRICE_UNITS
from order_svc.store import OrderRows
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from shop_common.domain import is_valid_id, new_id
from shop_common.storage import Database
from tests.integration.helpers import (
    UNKNOWN_ID,
    all_orders,
    bearer,
    create_user,
    fails,
    fields_of,
    item,
    known_to_orders,
    order_request,
    owned_user,
    price,
)
from tests.support import Services

Code = grpc.StatusCode
PENDING = order_pb2.Order.STATE_PENDING
CANCELLED = order_pb2.Order.STATE_CANCELLED


async def place(services: Services, request: order_pb2.CreateOrderRequest) -> order_pb2.Order:
    return (await services.orders.CreateOrder(request)).order


async def test_create_order_returns_the_stored_order_with_its_total(services: Services) -> None:
    user = await create_user(services.users)
    items = [
        item("TEA-1", 2, price(3, 500_000_000)),
        item("MUG.large", 1, price(0, 750_000_000)),
        item("spoon_2", 3, price(0, 333_333_333)),
    ]
    order = await place(services, order_request(user.id, *items))
    assert is_valid_id(order.id)
    assert order.user_id == user.id
    assert list(order.items) == items
    # 7.00 + 0.75 + 0.999999999
    assert (order.total.currency_code, order.total.units, order.total.nanos) == (
        "EUR",
        8,
        749_999_999,
    )
    assert order.state == PENDING
    assert order.etag
    assert order.create_time.seconds > 0
    assert order.update_time == order.create_time
    fetched = await services.orders.GetOrder(order_pb2.GetOrderRequest(id=order.id))
    assert fetched.order == order


async def test_create_order_ignores_client_chosen_output_fields(services: Services) -> None:
    user = await create_user(services.users)
    request = order_request(user.id)
    request.order.id = UNKNOWN_ID
    request.order.state = CANCELLED
    request.order.total.CopyFrom(price(1_000))
    order = await place(services, request)
    assert order.id != UNKNOWN_ID
    assert order.state == PENDING
    assert order.total == price(3)


async def test_order_at_the_price_and_quantity_caps_is_taken_with_an_exact_total(
    services: Services,
) -> None:
    user = await create_user(services.users)
    top = price(MAX_UNIT_PRICE_UNITS, 999_999_999)
    order = await place(services, order_request(user.id, item("GOLD", MAX_QUANTITY, top)))
    exact = MAX_QUANTITY * (MAX_UNIT_PRICE_UNITS * 10**9 + 999_999_999)
    assert (order.total.units, order.total.nanos) == divmod(exact, 10**9)
    assert (await services.orders.GetOrder(order_pb2.GetOrderRequest(id=order.id))).order == order


async def test_list_orders_filters_by_user(services: Services) -> None:
    ada = await create_user(services.users)
    bo = await create_user(services.users)
    ada_orders = [await place(services, order_request(ada.id)) for _ in range(2)]
    bo_orders = [await place(services, order_request(bo.id))]
    assert await all_orders(services.orders, ada.id) == ada_orders
    assert await all_orders(services.orders, bo.id) == bo_orders
    assert await all_orders(services.orders) == ada_orders + bo_orders
    assert await all_orders(services.orders, UNKNOWN_ID) == []
    listed = await services.orders.ListOrders(order_pb2.ListOrdersRequest())
    assert listed.revision == 3


async def test_list_orders_pages_with_a_filter(services: Services) -> None:
    ada = await create_user(services.users)
    bo = await create_user(services.users)
    mine = [await place(services, order_request(ada.id)) for _ in range(3)]
    await place(services, order_request(bo.id))
    first = await services.orders.ListOrders(
        order_pb2.ListOrdersRequest(page_size=2, user_id=ada.id)
    )
    assert first.next_page_token
    second = await services.orders.ListOrders(
        order_pb2.ListOrdersRequest(page_size=2, user_id=ada.id, page_token=first.next_page_token)
    )
    assert [*first.orders, *second.orders] == mine
    assert second.next_page_token == ""


async def test_paging_a_users_orders_across_ties_returns_each_once_in_id_order(
    services: Services,
) -> None:
    """Thousands of one user's orders, five at a time sharing a create time, among another
    user's, paged seven at a time while new orders are placed: the pages hold every stored
    order once, in id order, and each order placed meanwhile at most once (after them)."""
    ada = await create_user(services.users)
    bo = await create_user(services.users)
    placed = await place(services, order_request(ada.id))  # the view learns of ada
    now = datetime.now(UTC)
    codec = OrderRows()
    line = (domain.LineItem("TEA-1", 1, domain.Money("EUR", 3_000_000_000)),)
    rows = []
    for n in range(2_000):
        at = now + timedelta(milliseconds=n // 5)
        owner = bo.id if n % 4 == 0 else ada.id
        order = domain.Order(new_id(), owner, line, domain.State.PENDING, at, at, 1)
        rows.append(codec.to_row(order))
    database = Database(services.order_database_url)
    try:  # stored directly: 2,000 calls would only make the test slow
        await database.write(lambda conn: conn.execute(order_svc.schema.orders.insert(), rows))
    finally:
        await database.close()
    stored = [placed.id, *sorted(r["id"] for r in rows if r["user_id"] == ada.id)]
    listed: list[str] = []
    during: list[str] = []
    token = ""
    while True:
        page = await services.orders.ListOrders(
            order_pb2.ListOrdersRequest(page_size=7, user_id=ada.id, page_token=token)
        )
        listed += [o.id for o in page.orders]
        token = page.next_page_token
        if not token:
            break
        if len(listed) % 301 < 7:  # now and then, an order placed between two pages
            during.append((await place(services, order_request(ada.id))).id)
    assert during
    assert listed == sorted(set(listed)), "each order once, in id order"
    assert listed[: len(stored)] == stored
    assert set(listed[len(stored) :]) <= set(during)


async def test_cancel_order(services: Services) -> None:
    user = await create_user(services.users)
    order = await place(services, order_request(user.id))
    cancelled = (
        await services.orders.CancelOrder(
            order_pb2.CancelOrderRequest(id=order.id, etag=order.etag)
        )
    ).order
    assert cancelled.state == CANCELLED
    assert cancelled.etag != order.etag
    assert cancelled.create_time == order.create_time
    assert cancelled.update_time.ToDatetime() > order.update_time.ToDatetime()
    assert (cancelled.id, cancelled.items, cancelled.total) == (order.id, order.items, order.total)
    fetched = await services.orders.GetOrder(order_pb2.GetOrderRequest(id=order.id))
    assert fetched.order == cancelled


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["not-an-id", "' OR 1=1 --", UNKNOWN_ID.upper()])
async def test_malformed_order_id_is_invalid_argument(services: Services, bad_id: str) -> None:
    user = await create_user(services.users)
    order = await place(services, order_request(user.id))
    for call in (
        services.orders.GetOrder(order_pb2.GetOrderRequest(id=bad_id)),
        services.orders.CancelOrder(order_pb2.CancelOrderRequest(id=bad_id)),
    ):
        found = await fails(call, Code.INVALID_ARGUMENT, "INVALID_ARGUMENT")
        assert found.violations == [("id", "INVALID_ID")]
    assert await all_orders(services.orders) == [order]


async def test_unknown_order_id_is_not_found(services: Services) -> None:
    for call in (
        services.orders.GetOrder(order_pb2.GetOrderRequest(id=UNKNOWN_ID)),
        services.orders.CancelOrder(order_pb2.CancelOrderRequest(id=UNKNOWN_ID)),
    ):
        found = await fails(call, Code.NOT_FOUND, "ORDER_NOT_FOUND")
        assert found.metadata == {"id": UNKNOWN_ID}
    assert await all_orders(services.orders) == []


async def test_order_for_unknown_user_fails_its_precondition(services: Services) -> None:
    found = await fails(
        services.orders.CreateOrder(order_request(UNKNOWN_ID)),
        Code.FAILED_PRECONDITION,
        "USER_NOT_FOUND",
    )
    assert found.metadata == {"user_id": UNKNOWN_ID}
    assert await all_orders(services.orders) == []


@pytest.mark.parametrize(
    ("user_id", "violation"),
    [
        ("", ("order.user_id", "REQUIRED")),
        ("alice", ("order.user_id", "INVALID_ID")),
        (UNKNOWN_ID + "\n", ("order.user_id", "INVALID_ID")),
    ],
)
async def test_missing_or_malformed_user_id_is_invalid_argument(
    services: Services, user_id: str, violation: tuple[str, str]
) -> None:
    found = await fails(
        services.orders.CreateOrder(order_request(user_id)),
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert found.violations == [violation]
    assert await all_orders(services.orders) == []


async def test_mixed_currencies_are_invalid_argument(services: Services) -> None:
    user = await create_user(services.users)
    found = await fails(
        services.orders.CreateOrder(
            order_request(user.id, item(unit_price=price(1)), item(unit_price=price(1, 0, "USD")))
        ),
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert found.violations == [("order.items", "MIXED_CURRENCIES")]
    assert await all_orders(services.orders) == []


@pytest.mark.parametrize(
    ("bad_item", "fields"),
    [
        pytest.param(
            item(unit_price=price(1, 0, "eur")),
            {"order.items[0].unit_price.currency_code"},
            id="lower-case-currency",
        ),
        pytest.param(
            item(unit_price=price(1, 0, "EUR\n")),
            {"order.items[0].unit_price.currency_code"},
            id="currency-with-newline",
        ),
        pytest.param(
            item(unit_price=price(1, 1_000_000_000)),
            {"order.items[0].unit_price.nanos"},
            id="nanos-out-of-range",
        ),
        pytest.param(
            item(unit_price=price(1, -1)),
            {"order.items[0].unit_price.nanos", "order.items[0].unit_price"},
            id="sign-mismatch",
        ),
        pytest.param(item(unit_price=price(-1)), {"order.items[0].unit_price"}, id="negative"),
        pytest.param(
            item(unit_price=price(MAX_UNIT_PRICE_UNITS + 1)),
            {"order.items[0].unit_price.units"},
            id="too-large",
        ),
        pytest.param(item(quantity=0), {"order.items[0].quantity"}, id="quantity-0"),
        pytest.param(
            item(quantity=MAX_QUANTITY + 1), {"order.items[0].quantity"}, id="quantity-over-max"
        ),
        pytest.param(item(sku=""), {"order.items[0].sku"}, id="empty-sku"),
        pytest.param(
            item(sku="TEA'; DROP TABLE orders;--"), {"order.items[0].sku"}, id="sql-in-sku"
        ),
        pytest.param(item(sku="TEA-1\n"), {"order.items[0].sku"}, id="sku-with-newline"),
    ],
)
async def test_invalid_item_is_refused_with_its_field(
    services: Services, bad_item: order_pb2.LineItem, fields: set[str]
) -> None:
    user = await create_user(services.users)
    found = await fails(
        services.orders.CreateOrder(order_request(user.id, bad_item)),
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert fields_of(found) == fields
    assert await all_orders(services.orders) == []


async def test_order_without_items_is_refused(services: Services) -> None:
    user = await create_user(services.users)
    request = order_pb2.CreateOrderRequest(order=order_pb2.Order(user_id=user.id))
    found = await fails(
        services.orders.CreateOrder(request), Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert found.violations == [("order.items", "REQUIRED")]


async def test_cancelling_a_cancelled_order_fails_its_precondition(services: Services) -> None:
    user = await create_user(services.users)
    order = await place(services, order_request(user.id))
    cancelled = (await services.orders.CancelOrder(order_pb2.CancelOrderRequest(id=order.id))).order
    found = await fails(
        services.orders.CancelOrder(order_pb2.CancelOrderRequest(id=order.id)),
        Code.FAILED_PRECONDITION,
        "ORDER_ALREADY_CANCELLED",
    )
    assert found.metadata == {"id": order.id}
    assert await all_orders(services.orders) == [cancelled]


async def test_stale_etag_on_cancel_is_aborted(services: Services) -> None:
    user = await create_user(services.users)
    order = await place(services, order_request(user.id))
    found = await fails(
        services.orders.CancelOrder(
            order_pb2.CancelOrderRequest(id=order.id, etag=str(int(order.etag) + 1))
        ),
        Code.ABORTED,
        "ETAG_MISMATCH",
    )
    assert found.metadata == {"current_etag": order.etag}
    assert await all_orders(services.orders) == [order]


async def test_negative_page_size_is_invalid_argument(services: Services) -> None:
    found = await fails(
        services.orders.ListOrders(order_pb2.ListOrdersRequest(page_size=-5)),
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert fields_of(found) == {"page_size"}


async def test_malformed_user_id_filter_is_invalid_argument(services: Services) -> None:
    found = await fails(
        services.orders.ListOrders(order_pb2.ListOrdersRequest(user_id="alice")),
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert found.violations == [("user_id", "INVALID_ID")]


async def test_page_token_reused_with_another_filter_is_invalid_argument(
    services: Services,
) -> None:
    ada = await create_user(services.users)
    bo = await create_user(services.users)
    for _ in range(2):
        await place(services, order_request(ada.id))
    first = await services.orders.ListOrders(
        order_pb2.ListOrdersRequest(page_size=1, user_id=ada.id)
    )
    for user_id in (bo.id, ""):
        found = await fails(
            services.orders.ListOrders(
                order_pb2.ListOrdersRequest(
                    page_size=1, user_id=user_id, page_token=first.next_page_token
                )
            ),
            Code.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
        )
        assert fields_of(found) == {"page_token"}


async def test_page_token_of_the_user_service_is_refused(services: Services) -> None:
    for _ in range(2):
        await create_user(services.users)
    users_page = await services.users.ListUsers(user_pb2.ListUsersRequest(page_size=1))
    await fails(
        services.orders.ListOrders(
            order_pb2.ListOrdersRequest(page_token=users_page.next_page_token)
        ),
        Code.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    )


# --- idempotency -------------------------------------------------------------------------------


async def test_same_request_id_twice_creates_one_order(services: Services) -> None:
    user = await create_user(services.users)
    request = order_request(user.id, item(quantity=2), request_id="order-1")
    first = await place(services, request)
    again = await place(services, request)
    assert again == first
    assert await all_orders(services.orders) == [first]


async def test_same_request_id_concurrently_creates_one_order(services: Services) -> None:
    user = await create_user(services.users)
    request = order_request(user.id, request_id="order-race")
    placed = await asyncio.gather(*(place(services, request) for _ in range(8)))
    assert len({o.id for o in placed}) == 1
    assert await all_orders(services.orders) == [placed[0]]


async def test_replay_of_a_cancelled_order_returns_the_first_result(services: Services) -> None:
    user = await create_user(services.users)
    request = order_request(user.id, request_id="order-2")
    first = await place(services, request)
    await services.orders.CancelOrder(order_pb2.CancelOrderRequest(id=first.id))
    again = await place(services, request)
    assert again.id == first.id
    assert len(await all_orders(services.orders)) == 1


async def test_request_id_reused_with_another_order_is_invalid_argument(
    services: Services,
) -> None:
    user = await create_user(services.users)
    first = await place(services, order_request(user.id, item(quantity=1), request_id="r"))
    found = await fails(
        services.orders.CreateOrder(order_request(user.id, item(quantity=2), request_id="r")),
        Code.INVALID_ARGUMENT,
        "REQUEST_ID_REUSED",
    )
    assert found.violations == [("request_id", "REQUEST_ID_REUSED")]
    assert await all_orders(services.orders) == [first]


async def test_request_ids_belong_to_their_caller(services: Services) -> None:
    """Another caller sending Alice's key places an order of their own: with her request
    they do not get hers back, with another they do not learn (REQUEST_ID_REUSED) that she
    used the key."""
    for subject in ("alice", "bob", "carol"):
        await owned_user(services.users, services.orders, subject)
    request = order_request("", item(quantity=1), request_id="k")
    other = order_request("", item(quantity=2), request_id="k")
    hers = (await services.orders.CreateOrder(request, metadata=bearer("alice"))).order
    bobs = (await services.orders.CreateOrder(request, metadata=bearer("bob"))).order
    carols = (await services.orders.CreateOrder(other, metadata=bearer("carol"))).order
    assert len({hers.id, bobs.id, carols.id}) == 3
    assert carols.items[0].quantity == 2
    for order, subject in ((hers, "alice"), (bobs, "bob")):
        replayed = await services.orders.CreateOrder(request, metadata=bearer(subject))
        assert replayed.order == order
    assert len(await all_orders(services.orders)) == 3


async def test_request_ids_of_users_and_orders_do_not_collide(services: Services) -> None:
    user = await create_user(services.users, request_id="shared")
    order = await place(services, order_request(user.id, request_id="shared"))
    assert order.user_id == user.id


# --- identity ------------------------------------------------------------------------------------


async def test_order_without_user_id_is_for_the_callers_own_user(services: Services) -> None:
    mine = await owned_user(services.users, services.orders, "alice")
    theirs = await owned_user(services.users, services.orders, "bob")
    order = (await services.orders.CreateOrder(order_request(""), metadata=bearer("alice"))).order
    assert order.user_id == mine.id
    named = order_request(mine.id)
    assert (await services.orders.CreateOrder(named, metadata=bearer("alice"))).order.user_id == (
        mine.id
    )
    await fails(
        services.orders.CreateOrder(order_request(theirs.id), metadata=bearer("alice")),
        Code.PERMISSION_DENIED,
        "NOT_YOUR_USER",
    )
    # The admin orders for anyone.
    assert (await place(services, order_request(theirs.id))).user_id == theirs.id


async def test_an_owner_names_a_user_the_view_has_not_seen_yet(services: Services) -> None:
    """The order service asks the user service (as itself) who owns a user its view has not
    seen yet, and records the owner with the order."""
    user = await create_user(services.users, subject="alice")
    order = (
        await services.orders.CreateOrder(order_request(user.id), metadata=bearer("alice"))
    ).order
    assert order.user_id == user.id
    got = await services.orders.GetOrder(
        order_pb2.GetOrderRequest(id=order.id), metadata=bearer("alice")
    )
    assert got.order == order


async def test_a_stranger_naming_a_user_the_view_has_not_seen_is_denied(
    services: Services,
) -> None:
    user = await create_user(services.users, subject="alice")
    for user_id in (user.id, UNKNOWN_ID):
        found = await fails(
            services.orders.CreateOrder(order_request(user_id), metadata=bearer("bob")),
            Code.PERMISSION_DENIED,
            "NOT_YOUR_USER",
        )
        assert found.message == f"permission denied on user {user_id}"
    assert await all_orders(services.orders) == []


async def test_a_caller_whose_subject_owns_no_user_cannot_order_for_themselves(
    services: Services,
) -> None:
    await fails(
        services.orders.CreateOrder(order_request(""), metadata=bearer("nobody")),
        Code.FAILED_PRECONDITION,
        "CALLER_HAS_NO_USER",
    )
    # The development admin has no subject, hence no user of its own: it must name one.
    found = await fails(
        services.orders.CreateOrder(order_request("")), Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert found.violations == [("order.user_id", "REQUIRED")]
    assert await all_orders(services.orders) == []


async def test_a_deleted_users_subject_orders_for_its_new_user(services: Services) -> None:
    old = await owned_user(services.users, services.orders, "alice")
    placed = (await services.orders.CreateOrder(order_request(""), metadata=bearer("alice"))).order
    await services.users.DeleteUser(user_pb2.DeleteUserRequest(id=old.id))
    new = await create_user(services.users, subject="alice")
    await known_to_orders(services.orders, new)
    order = (await services.orders.CreateOrder(order_request(""), metadata=bearer("alice"))).order
    assert order.user_id == new.id
    # The old user's (cancelled) orders are still the subject's.
    mine = await services.orders.ListOrders(order_pb2.ListOrdersRequest(), metadata=bearer("alice"))
    assert {o.id for o in mine.orders} == {placed.id, order.id}


@pytest.mark.parametrize("authorization", ["Basic x", "Bearer", "Bearer   ", "alice", "Token a"])
async def test_malformed_authorization_is_unauthenticated(
    services: Services, authorization: str
) -> None:
    user = await create_user(services.users)
    metadata = (("authorization", authorization),)
    await fails(
        services.orders.CreateOrder(order_request(user.id), metadata=metadata),
        Code.UNAUTHENTICATED,
        "MALFORMED_AUTHORIZATION",
    )
    await fails(
        services.users.CreateUser(
            user_pb2.CreateUserRequest(user=user_pb2.User(email="x@example.com")),
            metadata=metadata,
        ),
        Code.UNAUTHENTICATED,
        "MALFORMED_AUTHORIZATION",
    )
    await fails(
        services.users.GetUser(user_pb2.GetUserRequest(id=user.id), metadata=metadata),
        Code.UNAUTHENTICATED,
        "MALFORMED_AUTHORIZATION",
    )
    assert await all_orders(services.orders) == []
    assert [u.id for u in (await services.users.ListUsers(user_pb2.ListUsersRequest())).users] == [
        user.id
    ]


async def test_bearer_scheme_is_case_insensitive(services: Services) -> None:
    user = await owned_user(services.users, services.orders, "alice")
    order = (
        await services.orders.CreateOrder(
            order_request(""), metadata=(("authorization", "bearer alice"),)
        )
    ).order
    assert order.user_id == user.id


async def test_concurrent_cancels_let_exactly_one_win(services: Services) -> None:
    user = await create_user(services.users)
    order = await place(services, order_request(user.id))
    results = await asyncio.gather(
        *(services.orders.CancelOrder(order_pb2.CancelOrderRequest(id=order.id)) for _ in range(6)),
        return_exceptions=True,
    )
    won = [r.order for r in results if isinstance(r, order_pb2.CancelOrderResponse)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1
    assert [e.code() for e in lost] == [Code.FAILED_PRECONDITION] * 5
    assert await all_orders(services.orders) == won


async def test_a_full_page_of_the_largest_orders_can_be_listed(services: Services) -> None:
    # 1000 orders may be asked for at once, and an order may hold 100 items: a page must not
    # outgrow the 4 MiB message limit (a shorter page with a next_page_token is fine).
    user = await create_user(services.users)
    largest = [
        domain.LineItem(f"{n:02d}" + "S" * 62, MAX_QUANTITY, domain.Money("EUR", 999_999_999_999))
        for n in range(100)
    ]
    now = datetime.now(UTC)
    codec = OrderRows()
    rows = [
        codec.to_row(
            domain.Order(new_id(), user.id, tuple(largest), domain.State.PENDING, now, now, 1)
        )
        for _ in range(600)
    ]
    database = Database(services.order_database_url)
    try:  # stored directly: 500 calls would only make the test slow
        await database.write(lambda conn: conn.execute(order_svc.schema.orders.insert(), rows))
    finally:
        await database.close()
    seen: set[str] = set()
    token = ""
    while True:
        page = await services.orders.ListOrders(
            order_pb2.ListOrdersRequest(page_size=1000, page_token=token)
        )
        assert page.orders
        assert page.ByteSize() <= 4 * 1024 * 1024
        seen.update(o.id for o in page.orders)
        token = page.next_page_token
        if not token:
            break
    assert seen == {r["id"] for r in rows}
