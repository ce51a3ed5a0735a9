"""The policy table, cell by cell, over real servers (the README's "Who may call what", as
`tests/policy_table.py` has it).

Every RPC of both services for each caller that development identity can make: the owner
(`Bearer alice`), another user (`Bearer bob`), an admin (no credentials) and the order
service (`Bearer service:order_svc`). The anonymous and gateway columns need a verifying
mode: they are skipped here, and `tests/security/test_policy_*.py` check them (in jwt mode,
with and without mutual TLS) and `tests/unit/test_policy.py` on the pure policy. Then
what the table's cells mean beyond the code: a user's own listing and watch, permission
before existence, one log line per denial, and the order service's own calls.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.serving import ServerLimits, Service, start_server
from tests import policy_table
from tests.integration.helpers import (
    ORDER_SERVICE,
    UNKNOWN_ID,
    all_orders,
    bearer,
    fails,
    failure_of,
    new_email,
    order_request,
    owned_user,
)
from tests.support import Databases, Services, channel_to, eventually, running_order_svc

Code = grpc.StatusCode
Metadata = tuple[tuple[str, str], ...]


@dataclass
class World:
    """Alice owns a user with an order; Bob owns a user too."""

    services: Services
    owner: user_pb2.User
    other: user_pb2.User
    order: order_pb2.Order


async def make_world(services: Services) -> World:
    alice = await owned_user(services.users, services.orders, "alice")
    bob = await owned_user(services.users, services.orders, "bob")
    order = (await services.orders.CreateOrder(order_request(alice.id))).order
    return World(services, alice, bob, order)


async def first_response(call: Any) -> None:
    """A watch's first response (a bookmark at least, since each asks for them)."""
    try:
        response = await call.read()
        assert isinstance(response, user_pb2.WatchUsersResponse | order_pb2.WatchOrdersResponse)
    finally:
        call.cancel()


def users(world: World) -> user_pb2_grpc.UserServiceAsyncStub:
    return world.services.users


def orders(world: World) -> order_pb2_grpc.OrderServiceAsyncStub:
    return world.services.orders


def _calls() -> dict[str, Callable[[World, Metadata], Awaitable[object]]]:
    return {
        # CreateUser's "owner" is the subject the user is for (carol, who has none yet).
        "CreateUser": lambda w, m: users(w).CreateUser(
            user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()), subject="carol"),
            metadata=m,
        ),
        "GetUser": lambda w, m: users(w).GetUser(
            user_pb2.GetUserRequest(id=w.owner.id), metadata=m
        ),
        "ListUsers": lambda w, m: users(w).ListUsers(user_pb2.ListUsersRequest(), metadata=m),
        "UpdateUser": lambda w, m: users(w).UpdateUser(
            user_pb2.UpdateUserRequest(user=user_pb2.User(id=w.owner.id, display_name="New")),
            metadata=m,
        ),
        "DeleteUser": lambda w, m: users(w).DeleteUser(
            user_pb2.DeleteUserRequest(id=w.owner.id), metadata=m
        ),
        "WatchUsers": lambda w, m: first_response(
            users(w).WatchUsers(
                user_pb2.WatchUsersRequest(progress_notify=True), metadata=m, timeout=10
            )
        ),
        "CreateOrder": lambda w, m: orders(w).CreateOrder(order_request(w.owner.id), metadata=m),
        "GetOrder": lambda w, m: orders(w).GetOrder(
            order_pb2.GetOrderRequest(id=w.order.id), metadata=m
        ),
        "ListOrders": lambda w, m: orders(w).ListOrders(
            order_pb2.ListOrdersRequest(user_id=w.owner.id), metadata=m
        ),
        "CancelOrder": lambda w, m: orders(w).CancelOrder(
            order_pb2.CancelOrderRequest(id=w.order.id), metadata=m
        ),
        "WatchOrders": lambda w, m: first_response(
            orders(w).WatchOrders(
                order_pb2.WatchOrdersRequest(user_id=w.owner.id, progress_notify=True),
                metadata=m,
                timeout=10,
            )
        ),
    }


CALLS = _calls()
CALLERS: dict[str, Metadata] = {
    policy_table.OWNER: bearer("alice"),
    policy_table.ANOTHER_USER: bearer("bob"),
    policy_table.ADMIN: (),
    policy_table.ORDER_SERVICE: ORDER_SERVICE,
}
NOBODY_IS_ANONYMOUS = (
    "development identity makes nobody anonymous: a call without credentials acts as the "
    "development admin (tests/security/test_policy_*.py make this caller, in jwt mode)"
)
CELLS = policy_table.cells(
    {policy_table.ANONYMOUS: NOBODY_IS_ANONYMOUS, policy_table.GATEWAY: NOBODY_IS_ANONYMOUS}
)
NOT_ALLOWED = (Code.PERMISSION_DENIED, "NOT_ALLOWED")
NOT_YOUR_ORDER = (Code.PERMISSION_DENIED, "NOT_YOUR_ORDER")


def test_the_table_has_every_rpc_of_both_services() -> None:
    names = {m.name for m in user_pb2.DESCRIPTOR.services_by_name["UserService"].methods}
    names |= {m.name for m in order_pb2.DESCRIPTOR.services_by_name["OrderService"].methods}
    assert set(policy_table.TABLE) == set(CALLS) == names


@pytest.mark.parametrize(("rpc", "column", "outcome"), CELLS)
async def test_policy_cell(
    services: Services, rpc: str, column: str, outcome: policy_table.Outcome
) -> None:
    world = await make_world(services)
    owner = (rpc, column) == ("CreateUser", policy_table.OWNER)
    metadata = bearer("carol") if owner else CALLERS[column]
    call = CALLS[rpc](world, metadata)
    if outcome.ok:
        await call
    else:
        assert outcome.reason is not None
        await fails(call, outcome.code, outcome.reason)


# --- a user's own listing and watch ----------------------------------------------------------


async def test_list_orders_without_user_id_lists_the_callers_own(services: Services) -> None:
    world = await make_world(services)
    mine = (await services.orders.CreateOrder(order_request(""), metadata=bearer("alice"))).order
    theirs = (await services.orders.CreateOrder(order_request(""), metadata=bearer("bob"))).order

    async def listed(metadata: Metadata) -> set[str]:
        request = order_pb2.ListOrdersRequest(page_size=1)  # pages: the token keeps the owner
        found: set[str] = set()
        while True:
            page = await services.orders.ListOrders(request, metadata=metadata)
            found |= {o.id for o in page.orders}
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token

    assert await listed(bearer("alice")) == {world.order.id, mine.id}
    assert await listed(bearer("bob")) == {theirs.id}
    assert await listed(bearer("nobody")) == set()
    assert await listed(()) == {world.order.id, mine.id, theirs.id}  # the admin: all


async def watched(services: Services, metadata: Metadata) -> list[str]:
    """The order ids a watch from the first revision shows, up to its caught-up bookmark."""
    request = order_pb2.WatchOrdersRequest(start_revision=1, progress_notify=True)
    call = services.orders.WatchOrders(request, metadata=metadata, timeout=10)
    found = []
    try:
        async for response in call:
            found += [e.order.id for e in response.events]
            if response.progress_notify:
                return found
    finally:
        call.cancel()
    raise AssertionError("the watch ended")


async def test_watch_orders_shows_a_user_only_their_own(services: Services) -> None:
    world = await make_world(services)
    theirs = (await services.orders.CreateOrder(order_request(""), metadata=bearer("bob"))).order
    cancel = order_pb2.CancelOrderRequest(id=world.order.id)
    await services.orders.CancelOrder(cancel, metadata=bearer("alice"))
    assert await watched(services, bearer("alice")) == [world.order.id, world.order.id]
    assert await watched(services, bearer("bob")) == [theirs.id]
    assert await watched(services, ()) == [world.order.id, theirs.id, world.order.id]
    # Live events too: Bob's new order reaches Bob's watch, not Alice's.
    request = order_pb2.WatchOrdersRequest(progress_notify=True)
    hers = services.orders.WatchOrders(request, metadata=bearer("alice"), timeout=10)
    his = services.orders.WatchOrders(request, metadata=bearer("bob"), timeout=10)
    try:
        for call in (hers, his):
            bookmark = await call.read()
            assert isinstance(bookmark, order_pb2.WatchOrdersResponse)
            assert bookmark.progress_notify
        placed = await services.orders.CreateOrder(order_request(""), metadata=bearer("bob"))
        event = await his.read()
        assert isinstance(event, order_pb2.WatchOrdersResponse)
        assert [e.order.id for e in event.events] == [placed.order.id]
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await hers.read()
    finally:
        hers.cancel()
        his.cancel()


async def test_a_subject_without_a_user_cannot_watch_its_orders(services: Services) -> None:
    call = services.orders.WatchOrders(
        order_pb2.WatchOrdersRequest(progress_notify=True), metadata=bearer("nobody"), timeout=5
    )
    await fails(call.read(), Code.FAILED_PRECONDITION, "CALLER_HAS_NO_USER")


# --- permission before existence (AIP-211) ---------------------------------------------------

BOB = bearer("bob")
PROBES: dict[str, Callable[[Services, str, str], Awaitable[object]]] = {
    "GetUser": lambda s, i, _e: s.users.GetUser(user_pb2.GetUserRequest(id=i), metadata=BOB),
    "UpdateUser": lambda s, i, e: s.users.UpdateUser(
        user_pb2.UpdateUserRequest(user=user_pb2.User(id=i, display_name="X", etag=e)),
        metadata=BOB,
    ),
    "DeleteUser": lambda s, i, e: s.users.DeleteUser(
        user_pb2.DeleteUserRequest(id=i, etag=e), metadata=BOB
    ),
    "GetOrder": lambda s, i, _e: s.orders.GetOrder(order_pb2.GetOrderRequest(id=i), metadata=BOB),
    "CancelOrder": lambda s, i, e: s.orders.CancelOrder(
        order_pb2.CancelOrderRequest(id=i, etag=e), metadata=BOB
    ),
}


@pytest.mark.parametrize("rpc", PROBES)
async def test_another_users_resource_and_none_get_the_same_answer(
    services: Services, rpc: str
) -> None:
    world = await make_world(services)
    existing = world.order.id if "Order" in rpc else world.owner.id
    probe = PROBES[rpc]
    answers = []
    # A stale etag on the existing one changes nothing: permission comes first.
    for resource_id, etag in ((existing, ""), (existing, "1"), (UNKNOWN_ID, ""), (UNKNOWN_ID, "1")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await probe(services, resource_id, etag)
        found = failure_of(caught.value)
        answers.append(
            (found.code, found.reason, found.message.replace(resource_id, "<id>"), found.metadata)
        )
        assert found.metadata == {"id": resource_id}
    assert len({(code, reason, message) for code, reason, message, _ in answers}) == 1, answers
    assert answers[0][:2] == (
        Code.PERMISSION_DENIED,
        f"NOT_YOUR_{'ORDER' if 'Order' in rpc else 'USER'}",
    )
    # Nothing changed.
    assert (await services.users.GetUser(user_pb2.GetUserRequest(id=world.owner.id))).user == (
        world.owner
    )
    assert await all_orders(services.orders, world.owner.id) == [world.order]


USER_ID_PROBES: dict[str, Callable[[Services, str], Awaitable[object]]] = {
    "CreateOrder": lambda s, i: s.orders.CreateOrder(order_request(i), metadata=BOB),
    "ListOrders": lambda s, i: s.orders.ListOrders(
        order_pb2.ListOrdersRequest(user_id=i), metadata=BOB
    ),
    "WatchOrders": lambda s, i: first_response(
        s.orders.WatchOrders(order_pb2.WatchOrdersRequest(user_id=i), metadata=BOB, timeout=10)
    ),
}


@pytest.mark.parametrize("rpc", USER_ID_PROBES)
async def test_another_users_id_and_an_unknown_one_in_an_order_request_answer_alike(
    services: Services, rpc: str
) -> None:
    world = await make_world(services)
    answers = set()
    for user_id in (world.owner.id, UNKNOWN_ID):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await USER_ID_PROBES[rpc](services, user_id)
        found = failure_of(caught.value)
        answers.add((found.code, found.reason, found.message.replace(user_id, "<id>")))
    assert answers == {(Code.PERMISSION_DENIED, "NOT_YOUR_USER", "permission denied on user <id>")}


# --- denials are logged once each ----------------------------------------------------------------


async def test_each_denial_is_logged_once_with_the_caller_the_rpc_and_the_reason(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world(services)
    caplog.set_level(logging.INFO)
    caplog.clear()
    await fails(
        services.orders.GetOrder(order_pb2.GetOrderRequest(id=world.order.id), metadata=BOB),
        *NOT_YOUR_ORDER,
    )
    await fails(services.users.ListUsers(user_pb2.ListUsersRequest(), metadata=BOB), *NOT_ALLOWED)
    denials = [r for r in caplog.records if r.getMessage().startswith("denied ")]
    assert [(r.levelno, r.getMessage()) for r in denials] == [
        (
            logging.WARNING,
            f"denied shop.order.v1.OrderService/GetOrder to subject 'bob': NOT_YOUR_ORDER "
            f"(permission denied on order {world.order.id})",
        ),
        (
            logging.WARNING,
            "denied shop.user.v1.UserService/ListUsers to subject 'bob': NOT_ALLOWED "
            "(ListUsers is for admins and order_svc only)",
        ),
    ]
    assert not [r for r in caplog.records if "Bearer" in r.getMessage()]


# --- the order service calls the user service as itself ------------------------------------------


class RecordingUserService(user_pb2_grpc.UserServiceServicer):
    """A user service that records the metadata of the calls it gets, and knows one user
    (owned by alice)."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.calls: list[tuple[str, str | None]] = []

    def _record(self, rpc: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        metadata = dict(context.invocation_metadata() or ())
        value = metadata.get("authorization")
        self.calls.append((rpc, None if value is None else str(value)))

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> user_pb2.CreateUserResponse:
        raise NotImplementedError

    async def UpdateUser(
        self, request: user_pb2.UpdateUserRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> user_pb2.UpdateUserResponse:
        raise NotImplementedError

    async def DeleteUser(
        self, request: user_pb2.DeleteUserRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> user_pb2.DeleteUserResponse:
        raise NotImplementedError

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> user_pb2.GetUserResponse:
        self._record("GetUser", context)
        user = user_pb2.User(id=request.id, email="a@example.com", etag="7", subject="alice")
        return user_pb2.GetUserResponse(user=user)

    async def ListUsers(
        self, request: user_pb2.ListUsersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> user_pb2.ListUsersResponse:
        self._record("ListUsers", context)
        return user_pb2.ListUsersResponse(revision=1)

    async def WatchUsers(  # type: ignore[override]
        self, request: user_pb2.WatchUsersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        self._record("WatchUsers", context)
        await context.write(user_pb2.WatchUsersResponse(progress_notify=True, header_revision=1))
        await asyncio.Event().wait()


@pytest.fixture
async def recording(tmp_path: pathlib.Path) -> AsyncIterator[tuple[RecordingUserService, int]]:
    servicer = RecordingUserService(UNKNOWN_ID)
    descriptor = user_pb2.DESCRIPTOR.services_by_name["UserService"]
    running = await start_server(
        "recording",
        "127.0.0.1:0",
        [
            Service(
                descriptor, lambda s: user_pb2_grpc.add_UserServiceServicer_to_server(servicer, s)
            )
        ],
        limits=ServerLimits(),
    )
    try:
        yield servicer, running.port
    finally:
        await running.server.stop(0)


async def test_the_order_service_calls_the_user_service_as_itself_never_as_its_caller(
    databases: Databases, tmp_path: pathlib.Path, recording: tuple[RecordingUserService, int]
) -> None:
    servicer, port = recording
    async with (
        running_order_svc(await databases.new(), tmp_path / "o", f"127.0.0.1:{port}") as server,
        channel_to(server.port) as channel,
    ):
        orders = order_pb2_grpc.OrderServiceStub(channel)
        # A user the view has not seen: asked of the user service, which says alice owns it.
        placed = await orders.CreateOrder(order_request(UNKNOWN_ID), metadata=bearer("alice"))
        assert placed.order.user_id == UNKNOWN_ID

        async def all_three() -> bool:
            return {rpc for rpc, _ in servicer.calls} == {"GetUser", "ListUsers", "WatchUsers"}

        await eventually(
            all_three, 10, "the order service's three calls", context=lambda: str(servicer.calls)
        )
        assert {value for _, value in servicer.calls} == {"Bearer service:order_svc"}
