"""Bytes that are not the request message, sent straight to the services (as a client with a
bug, or a hostile one, would): INVALID_ARGUMENT with an ErrorInfo, like any bad input, and
nothing changes. grpc.aio alone answers UNKNOWN, naming a Python exception class."""

from __future__ import annotations

import grpc
import pytest

from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.integration.helpers import all_users, fails
from tests.support import Services

MALFORMED = [
    pytest.param(b"\xff\xff\xff", id="corrupt"),
    pytest.param(b"\x0a\x05ab", id="truncated"),
    pytest.param(b"\x0a\x03\x0a\x01\xff", id="string-not-utf8"),  # user { id: "\xff" }
]


def raw(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


@pytest.mark.parametrize("body", MALFORMED)
async def test_a_create_that_does_not_parse_is_invalid_argument(
    services: Services, body: bytes
) -> None:
    create = raw(services.user_channel, "/shop.user.v1.UserService/CreateUser")
    found = await fails(create(body), grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
    assert "shop.user.v1.CreateUserRequest" in found.message
    assert await all_users(services.users) == []


@pytest.mark.parametrize("body", MALFORMED[:2])
async def test_a_watch_that_does_not_parse_is_invalid_argument(
    services: Services, body: bytes
) -> None:
    watch = services.order_channel.unary_stream(
        "/shop.order.v1.OrderService/WatchOrders",
        request_serializer=None,
        response_deserializer=None,
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in watch(body, timeout=10):
            pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_well_formed_bytes_are_served_as_before(services: Services) -> None:
    get = raw(services.order_channel, "/shop.order.v1.OrderService/GetOrder")
    request = order_pb2.GetOrderRequest(id="not-an-id").SerializeToString()
    await fails(get(request), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    created = raw(services.user_channel, "/shop.user.v1.UserService/CreateUser")
    body = user_pb2.CreateUserRequest(user=user_pb2.User(email="raw@example.com"))
    reply = user_pb2.CreateUserResponse.FromString(await created(body.SerializeToString()))
    assert reply.user.email == "raw@example.com"
