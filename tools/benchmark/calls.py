"""Real calls to the system: seeding it, and checking a row before and after it is loaded
(the load tools count HTTP statuses, not gRPC ones)."""

from __future__ import annotations

import asyncio
import os
import struct

import grpc
import httpx
from google.protobuf.message import Message
from google.type import money_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmark.errors import BenchError
from benchmark.settings import IN_FLIGHT, USERS
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc


def grpc_frame(message: Message) -> bytes:
    """A length-prefixed gRPC message: flag 0, 4-byte big-endian length, bytes."""
    body = message.SerializeToString()
    return b"\0" + struct.pack(">I", len(body)) + body


def new_order(user_id: str) -> order_pb2.CreateOrderRequest:
    price = money_pb2.Money(currency_code="EUR", units=2)
    item = order_pb2.LineItem(sku="A-1", quantity=1, unit_price=price)
    return order_pb2.CreateOrderRequest(order=order_pb2.Order(user_id=user_id, items=[item]))


async def seed_users(address: str) -> list[str]:
    token = os.urandom(4).hex()
    async with grpc.aio.insecure_channel(address) as channel:
        users, slots = user_pb2_grpc.UserServiceStub(channel), asyncio.Semaphore(IN_FLIGHT)

        async def create(i: int) -> str:
            user = user_pb2.User(email=f"bench-{token}-{i}@example.com", display_name=f"Bench {i}")
            async with slots:
                reply = await users.CreateUser(user_pb2.CreateUserRequest(user=user), timeout=10)
            return reply.user.id

        return list(await asyncio.gather(*(create(i) for i in range(USERS))))


async def get_user(address: str, user_id: str) -> int:
    """One real GetUser (raises unless its status is OK); the size of the reply's frame."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        reply = await stub.GetUser(user_pb2.GetUserRequest(id=user_id), timeout=5)
    if reply.user.id != user_id:
        raise BenchError(f"GetUser({user_id}) answered user {reply.user.id!r}")
    return len(grpc_frame(reply))


async def create_order(address: str, user_id: str) -> int:
    """One real CreateOrder (raises unless its status is OK); the orders' revision after it."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        if not (await stub.CreateOrder(new_order(user_id), timeout=5)).order.id:
            raise BenchError("CreateOrder answered an order without id")
        return (await stub.ListOrders(order_pb2.ListOrdersRequest(page_size=1), timeout=5)).revision


async def current_revision(address: str) -> int:
    """The user service's newest revision (that of a ListUsers snapshot)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        reply = await stub.ListUsers(user_pb2.ListUsersRequest(page_size=1), timeout=10)
        return int(reply.revision)


async def health_status(address: str, service: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)


def check_http(client: httpx.Client, method: str, url: str, body: str | None = None) -> None:
    headers = {"content-type": "application/json"} if body else None
    response = client.request(method, url, content=body, headers=headers)
    if response.status_code not in (200, 201):
        raise BenchError(f"{method} {url} answered {response.status_code}: {response.text[:300]}")
