"""The request rows of the scale benchmark, measured on the system started on one load: at
IN_FLIGHT requests in flight and from one paced client (MODERATE x MODERATE_RPS/s), as the
normal benchmark measures its rows and with its tools (h2load for gRPC, wrk for REST).

Reads come first and writes last, and the writes go to the plan's sample users only: the
pages the listing rows read (the typical user's first, a heavy user's deep one, the users
far into the listing) stay the same on a kept load however often it is measured.

A row is a `Row` in ROWS: its key (of the results), its label and how it is measured, given
the `Target` of the run. To add one, add a function and a line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

from benchmark import grpc_rows, rest_rows
from benchmark.calls import grpc_frame
from benchmark.load import Run, h2load
from benchmark.scale import paging
from benchmark.scale.plan import Plan
from benchmark.session import Session
from benchmark.settings import IN_FLIGHT, MODERATE, MODERATE_RPS
from benchmark.system import System
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2

PAGE_SIZE = 50
"""Of every measured page (ListOrders' default)."""
DEEP_ORDERS = 5_000
"""A heavy user's page starts after this many of its orders (half of them, at most)."""
DEEP_USERS = 0.9
"""The deep ListUsers page starts this far into the users (rounded down to 1,000s)."""


@dataclass(frozen=True)
class Listing:
    """A listing page the rows ask for: where, the request, and how many items it holds."""

    address: str
    path: str
    request: Message
    items: int


@dataclass(frozen=True)
class Target:
    """What the rows of one load measure."""

    session: Session
    system: System
    listings: dict[str, Listing]
    """By row key stem: `list_orders_first`, `list_orders_deep`, `list_users_deep`."""

    @property
    def h2_log(self) -> Path:
        return self.session.tmp / "h2.log"


def find_listings(system: System, plan: Plan) -> dict[str, Listing]:
    """The listing pages, their tokens got by paging with the real client."""
    typical, heavy = plan.user_ids[plan.typical], plan.user_ids[plan.heavy[0]]
    deep = min(DEEP_ORDERS, plan.size.heavy_orders // 2)
    skip_users = int(plan.size.users * DEEP_USERS)
    skip_users = skip_users // 1000 * 1000 or skip_users
    orders_token = asyncio.run(paging.orders_token_after(system.order_addr, heavy, deep))
    users_token = asyncio.run(paging.users_token_after(system.user_addr, skip_users))
    list_orders = "/shop.order.v1.OrderService/ListOrders"
    first = order_pb2.ListOrdersRequest(user_id=typical, page_size=PAGE_SIZE)
    deep_orders = order_pb2.ListOrdersRequest(
        user_id=heavy, page_size=PAGE_SIZE, page_token=orders_token
    )
    deep_users = user_pb2.ListUsersRequest(page_size=PAGE_SIZE, page_token=users_token)
    return {
        "list_orders_first": Listing(
            system.order_addr, list_orders, first, min(PAGE_SIZE, plan.counts[plan.typical])
        ),
        "list_orders_deep": Listing(system.order_addr, list_orders, deep_orders, PAGE_SIZE),
        "list_users_deep": Listing(
            system.user_addr, "/shop.user.v1.UserService/ListUsers", deep_users, PAGE_SIZE
        ),
    }


def listing(stem: str, target: Target, seconds: int, in_flight: int, rps: int | None) -> Run:
    """A listing page over gRPC, checked by a real call before and after it and by the bytes
    it got back (every reply is the same page)."""
    found = target.listings[stem]
    size = asyncio.run(paging.one_page(found.address, found.request, found.items))
    frame = target.session.tmp / f"{stem}.bin"
    frame.write_bytes(grpc_frame(found.request))
    url = f"http://{found.address}{found.path}"
    run, ok_http, data = h2load(url, frame, seconds, target.h2_log, in_flight, rps)
    asyncio.run(paging.one_page(found.address, found.request, found.items))
    return grpc_rows.count_replies(run, ok_http, data, size)


Measure = Callable[[Target, int], Run]


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    measure: Measure


def _loaded(in_flight: int, rps: int | None) -> str:
    return f"{in_flight} in flight" if rps is None else f"{in_flight} x {rps}/s"


def _rows() -> tuple[Row, ...]:
    """Each row at IN_FLIGHT and paced (REST: wrk at IN_FLIGHT, h2load paced)."""
    found: list[Row] = []
    for suffix, in_flight, rps in (("", IN_FLIGHT, None), ("_paced", MODERATE, MODERATE_RPS)):
        how = _loaded(in_flight, rps)

        def get_user(t: Target, s: int, n: int = in_flight, r: int | None = rps) -> Run:
            return grpc_rows.get_user_grpc(t.system, t.h2_log, s, n, r)

        def create_order(t: Target, s: int, n: int = in_flight, r: int | None = rps) -> Run:
            return grpc_rows.create_order_grpc(t.system, t.h2_log, s, n, r)

        def page(stem: str, n: int = in_flight, r: int | None = rps) -> Measure:
            return lambda t, s: listing(stem, t, s, n, r)

        found += [
            Row(f"get_user_grpc{suffix}", f"GetUser gRPC, {how}", get_user),
            Row(f"list_orders_first{suffix}", f"ListOrders, a typical user, {how}",
                page("list_orders_first")),
            Row(f"list_orders_deep{suffix}", f"ListOrders, deep in a heavy user, {how}",
                page("list_orders_deep")),
            Row(f"list_users_deep{suffix}", f"ListUsers, 90% deep, {how}",
                page("list_users_deep")),
            Row(f"create_order_grpc{suffix}", f"CreateOrder gRPC, {how}", create_order),
        ]  # fmt: skip
    found += [
        Row(
            "create_order_rest",
            f"CreateOrder REST, {IN_FLIGHT} in flight",
            lambda t, s: rest_rows.create_order_rest(t.session.http, t.system, s),
        ),
        Row(
            "create_order_rest_paced",
            f"CreateOrder REST, {_loaded(MODERATE, MODERATE_RPS)}",
            lambda t, s: rest_rows.create_order_rest_paced(t.session.http, t.system, t.h2_log, s),
        ),
    ]
    reads = [r for r in found if not r.key.startswith("create_order")]
    return (*reads, *(r for r in found if r.key.startswith("create_order")))


ROWS = _rows()
