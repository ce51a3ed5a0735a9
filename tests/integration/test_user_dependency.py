"""The order service's call to the user service: deadlines propagate, failures map to statuses.

A stand-in UserService runs on a real grpc.aio server so the tests control how it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from shop.order.v1 import order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from tests.integration.helpers import UNKNOWN_ID, all_orders, fails, order_request
from tests.support import channel_to, running_order_svc

Code = grpc.StatusCode
Context = grpc.aio.ServicerContext[Any, Any]
# gRPC sends a timeout rounded up to whole milliseconds (grpc-timeout header), so a callee can
# see a hair more than the caller set; the cap is applied without margin.
TIMEOUT_ROUNDING = 0.002


class StandInUsers(user_pb2_grpc.UserServiceServicer):
    """GetUser records the time the caller left it, then answers as told: never, or with a
    status code (OK: the user exists)."""

    def __init__(self, answer: Code | None) -> None:
        self.answer = answer
        self.remaining: list[float | None] = []

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: Context
    ) -> user_pb2.GetUserResponse:
        self.remaining.append(context.time_remaining())
        answer = self.answer
        if answer is None:
            await asyncio.Event().wait()  # never answers: the caller's deadline ends the call
            raise AssertionError("unreachable")
        if answer is not Code.OK:
            await context.abort(answer, "stand-in failure")
        return user_pb2.GetUserResponse(user=user_pb2.User(id=request.id, etag="1"))

    # The order service only ever calls GetUser.

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: Context
    ) -> user_pb2.CreateUserResponse:
        await context.abort(Code.UNIMPLEMENTED, "not in the stand-in")

    async def ListUsers(
        self, request: user_pb2.ListUsersRequest, context: Context
    ) -> user_pb2.ListUsersResponse:
        await context.abort(Code.UNIMPLEMENTED, "not in the stand-in")

    async def UpdateUser(
        self, request: user_pb2.UpdateUserRequest, context: Context
    ) -> user_pb2.UpdateUserResponse:
        await context.abort(Code.UNIMPLEMENTED, "not in the stand-in")

    async def DeleteUser(
        self, request: user_pb2.DeleteUserRequest, context: Context
    ) -> user_pb2.DeleteUserResponse:
        await context.abort(Code.UNIMPLEMENTED, "not in the stand-in")

    async def WatchUsers(
        self, request: user_pb2.WatchUsersRequest, context: Context
    ) -> AsyncIterator[user_pb2.WatchUsersResponse]:
        await context.abort(Code.UNIMPLEMENTED, "not in the stand-in")
        yield user_pb2.WatchUsersResponse()


@contextlib.asynccontextmanager
async def stand_in_user_svc(servicer: StandInUsers) -> AsyncIterator[str]:
    server = grpc.aio.server()
    user_pb2_grpc.add_UserServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


@contextlib.asynccontextmanager
async def orders_in_front_of(
    database_url: str, tmp_path: pathlib.Path, user_addr: str, user_svc_timeout: float = 2.0
) -> AsyncIterator[order_pb2_grpc.OrderServiceAsyncStub]:
    async with (
        running_order_svc(
            database_url, tmp_path, user_addr, user_svc_timeout_seconds=user_svc_timeout
        ) as running,
        channel_to(running.port) as channel,
    ):
        yield order_pb2_grpc.OrderServiceStub(channel)


@contextlib.contextmanager
def address_nobody_listens_on() -> Iterator[str]:
    """A port bound (so nobody else takes it) but not listening: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


async def test_client_deadline_propagates_to_the_user_service(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    users = StandInUsers(answer=None)
    async with (
        stand_in_user_svc(users) as user_addr,
        orders_in_front_of(database_url, tmp_path, user_addr) as orders,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await orders.CreateOrder(order_request(UNKNOWN_ID), timeout=0.5)
        assert caught.value.code() == Code.DEADLINE_EXCEEDED
        assert len(users.remaining) == 1
        remaining = users.remaining[0]
        assert remaining is not None
        assert 0 < remaining <= 0.5  # not the order service's own 2 s
        assert await all_orders(orders) == []


async def test_without_client_deadline_the_configured_timeout_applies(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    users = StandInUsers(answer=None)
    async with (
        stand_in_user_svc(users) as user_addr,
        orders_in_front_of(database_url, tmp_path, user_addr, user_svc_timeout=0.3) as orders,
    ):
        async with asyncio.timeout(30):  # a guard against hanging, not a gRPC deadline
            await fails(
                orders.CreateOrder(order_request(UNKNOWN_ID)),
                Code.DEADLINE_EXCEEDED,
                "USER_SERVICE_TIMEOUT",
            )
        [remaining] = users.remaining
        assert remaining is not None
        assert 0 < remaining <= 0.3 + TIMEOUT_ROUNDING  # not 2 s, nor 30 s
        assert await all_orders(orders) == []


async def test_client_deadline_longer_than_the_cap_is_capped(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    users = StandInUsers(answer=None)
    async with (
        stand_in_user_svc(users) as user_addr,
        orders_in_front_of(database_url, tmp_path, user_addr, user_svc_timeout=0.3) as orders,
    ):
        await fails(
            orders.CreateOrder(order_request(UNKNOWN_ID), timeout=30),
            Code.DEADLINE_EXCEEDED,
            "USER_SERVICE_TIMEOUT",
        )
        [remaining] = users.remaining
        assert remaining is not None
        assert 0 < remaining <= 0.3 + TIMEOUT_ROUNDING  # not 2 s, nor 30 s
        assert await all_orders(orders) == []


async def test_user_service_down_is_unavailable(database_url: str, tmp_path: pathlib.Path) -> None:
    with address_nobody_listens_on() as user_addr:
        async with orders_in_front_of(database_url, tmp_path, user_addr) as orders:
            await fails(
                orders.CreateOrder(order_request(UNKNOWN_ID)),
                Code.UNAVAILABLE,
                "USER_SERVICE_UNAVAILABLE",
            )
            assert await all_orders(orders) == []


async def test_unavailable_user_service_is_retried(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    users = StandInUsers(answer=Code.UNAVAILABLE)
    async with (
        stand_in_user_svc(users) as user_addr,
        orders_in_front_of(database_url, tmp_path, user_addr) as orders,
    ):
        await fails(
            orders.CreateOrder(order_request(UNKNOWN_ID)),
            Code.UNAVAILABLE,
            "USER_SERVICE_UNAVAILABLE",
        )
        assert len(users.remaining) == 3  # the service config's maxAttempts
        assert await all_orders(orders) == []


@pytest.mark.parametrize("answer", [Code.INTERNAL, Code.PERMISSION_DENIED, Code.UNIMPLEMENTED])
async def test_other_user_service_failures_are_unavailable_and_not_retried(
    database_url: str, tmp_path: pathlib.Path, answer: Code
) -> None:
    users = StandInUsers(answer=answer)
    async with (
        stand_in_user_svc(users) as user_addr,
        orders_in_front_of(database_url, tmp_path, user_addr) as orders,
    ):
        found = await fails(
            orders.CreateOrder(order_request(UNKNOWN_ID)),
            Code.UNAVAILABLE,
            "USER_SERVICE_UNAVAILABLE",
        )
        assert answer.name in found.message
        assert len(users.remaining) == 1
        assert await all_orders(orders) == []


@pytest.mark.parametrize("answer", [Code.NOT_FOUND, Code.INVALID_ARGUMENT])
async def test_user_the_user_service_does_not_know_is_user_not_found(
    database_url: str, tmp_path: pathlib.Path, answer: Code
) -> None:
    users = StandInUsers(answer=answer)
    async with (
        stand_in_user_svc(users) as user_addr,
        orders_in_front_of(database_url, tmp_path, user_addr) as orders,
    ):
        await fails(
            orders.CreateOrder(order_request(UNKNOWN_ID)),
            Code.FAILED_PRECONDITION,
            "USER_NOT_FOUND",
        )
        assert await all_orders(orders) == []


async def test_existing_user_is_asked_once_and_the_order_taken(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    users = StandInUsers(answer=Code.OK)
    async with (
        stand_in_user_svc(users) as user_addr,
        orders_in_front_of(database_url, tmp_path, user_addr) as orders,
    ):
        order = (await orders.CreateOrder(order_request(UNKNOWN_ID, request_id="r1"))).order
        assert order.user_id == UNKNOWN_ID
        replay = (await orders.CreateOrder(order_request(UNKNOWN_ID, request_id="r1"))).order
        assert replay == order
        # The replay is answered from the idempotency record, without asking again.
        assert len(users.remaining) == 1
        assert users.remaining[0] is not None
        assert await all_orders(orders) == [order]
