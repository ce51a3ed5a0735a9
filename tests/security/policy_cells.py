"""The policy table's cells as calls on a running system in jwt mode, through gRPC and
through the gateway (`tests/security/test_policy_jwt.py` without TLS,
`tests/security/test_policy_mtls.py` with mutual TLS), checked against `tests/policy_table.py`.

A world is made once per system: alice owns a user with an order, and bob owns a user. Each
cell's call is the RPC on the owner's resources; where the call changes them, on fresh ones
(CreateUser: a user for a subject that owns none yet; DeleteUser: a fresh subject's fresh
user; CancelOrder: a fresh order of alice's user), so that cells do not depend on each other.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import httpx

from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from tests import policy_table
from tests.integration.helpers import fails, new_email, order_request
from tests.policy_table import ADMIN, ANOTHER_USER, OWNER, Outcome
from tests.security.system import Issuer
from tests.support import eventually

Metadata = tuple[tuple[str, str], ...]
TIMEOUT = 10.0
ITEM = {"sku": "TEA-1", "quantity": 1, "unitPrice": {"currencyCode": "EUR", "units": "2"}}


@dataclass(frozen=True)
class Stubs:
    """Both services, over one client identity's channels."""

    users: user_pb2_grpc.UserServiceAsyncStub
    orders: order_pb2_grpc.OrderServiceAsyncStub

    @classmethod
    def of(cls, users: grpc.aio.Channel, orders: grpc.aio.Channel) -> Stubs:
        return cls(user_pb2_grpc.UserServiceStub(users), order_pb2_grpc.OrderServiceStub(orders))


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class World:
    issuer: Issuer
    admin: Stubs
    """Over channels a user's token may use (the test client's, under mutual TLS)."""
    owner: user_pb2.User
    """Alice's."""
    other: user_pb2.User
    """Bob's."""
    order: order_pb2.Order
    """Of alice's user."""

    def as_admin(self) -> Metadata:
        return bearer(self.issuer.admin())


async def make_world(issuer: Issuer, admin: Stubs) -> World:
    as_admin = bearer(issuer.admin())
    users = []
    for subject in ("alice", "bob"):
        request = user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()), subject=subject)
        users.append((await admin.users.CreateUser(request, metadata=as_admin)).user)
    alice, bob = users
    order = (await admin.orders.CreateOrder(order_request(alice.id), metadata=as_admin)).order

    async def known() -> bool:
        """Until the order service's view of users has alice's user, she is refused on it."""
        request = order_pb2.ListOrdersRequest(user_id=alice.id, page_size=1)
        try:
            await admin.orders.ListOrders(request, metadata=bearer(issuer.token("alice")))
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise
            return False
        return True

    await eventually(known, TIMEOUT, "the order service knows alice's user")
    return World(issuer, admin, alice, bob, order)


@dataclass(frozen=True)
class Target:
    """What one cell's call is about."""

    owner: str
    """The subject of the owner column."""
    user_id: str
    order_id: str
    subject: str
    """CreateUser's: the user is for it."""


def fresh_subject() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


async def target(world: World, rpc: str) -> Target:
    """The resources `rpc`'s cell acts on: fresh ones where the call changes them."""
    shared = Target("alice", world.owner.id, world.order.id, "alice")
    if rpc == "CreateUser":
        subject = fresh_subject()
        return Target(subject, shared.user_id, shared.order_id, subject)
    if rpc == "DeleteUser":
        subject = fresh_subject()
        request = user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()), subject=subject)
        user = (await world.admin.users.CreateUser(request, metadata=world.as_admin())).user
        return Target(subject, user.id, shared.order_id, subject)
    if rpc == "CancelOrder":
        created = await world.admin.orders.CreateOrder(
            order_request(world.owner.id), metadata=world.as_admin()
        )
        return Target("alice", world.owner.id, created.order.id, "alice")
    return shared


def user_token(world: World, caller: str, target: Target) -> str | None:
    """The token of a caller who is a user (or an admin) in `target`'s cell; None for others."""
    if caller == OWNER:
        return world.issuer.token(target.owner)
    if caller == ANOTHER_USER:
        return world.issuer.token("bob")
    if caller == ADMIN:
        return world.issuer.admin()
    return None


# --- through gRPC ---------------------------------------------------------------------------


async def first_response(call: Any) -> None:
    """A watch's first response (a bookmark at least: each asks for them)."""
    try:
        response = await call.read()
        assert isinstance(response, user_pb2.WatchUsersResponse | order_pb2.WatchOrdersResponse)
    finally:
        call.cancel()


GrpcCall = Callable[[Stubs, Target, Metadata], Awaitable[object]]
GRPC_CALLS: Mapping[str, GrpcCall] = {
    "CreateUser": lambda s, t, m: s.users.CreateUser(
        user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()), subject=t.subject),
        metadata=m,
        timeout=TIMEOUT,
    ),
    "GetUser": lambda s, t, m: s.users.GetUser(
        user_pb2.GetUserRequest(id=t.user_id), metadata=m, timeout=TIMEOUT
    ),
    "ListUsers": lambda s, t, m: s.users.ListUsers(
        user_pb2.ListUsersRequest(page_size=1), metadata=m, timeout=TIMEOUT
    ),
    "UpdateUser": lambda s, t, m: s.users.UpdateUser(
        user_pb2.UpdateUserRequest(user=user_pb2.User(id=t.user_id, display_name="New")),
        metadata=m,
        timeout=TIMEOUT,
    ),
    "DeleteUser": lambda s, t, m: s.users.DeleteUser(
        user_pb2.DeleteUserRequest(id=t.user_id), metadata=m, timeout=TIMEOUT
    ),
    "WatchUsers": lambda s, t, m: first_response(
        s.users.WatchUsers(
            user_pb2.WatchUsersRequest(progress_notify=True), metadata=m, timeout=TIMEOUT
        )
    ),
    "CreateOrder": lambda s, t, m: s.orders.CreateOrder(
        order_request(t.user_id), metadata=m, timeout=TIMEOUT
    ),
    "GetOrder": lambda s, t, m: s.orders.GetOrder(
        order_pb2.GetOrderRequest(id=t.order_id), metadata=m, timeout=TIMEOUT
    ),
    "ListOrders": lambda s, t, m: s.orders.ListOrders(
        order_pb2.ListOrdersRequest(user_id=t.user_id), metadata=m, timeout=TIMEOUT
    ),
    "CancelOrder": lambda s, t, m: s.orders.CancelOrder(
        order_pb2.CancelOrderRequest(id=t.order_id), metadata=m, timeout=TIMEOUT
    ),
    "WatchOrders": lambda s, t, m: first_response(
        s.orders.WatchOrders(
            order_pb2.WatchOrdersRequest(user_id=t.user_id, progress_notify=True),
            metadata=m,
            timeout=TIMEOUT,
        )
    ),
}


async def check_grpc(
    rpc: str, outcome: Outcome, stubs: Stubs, target: Target, metadata: Metadata
) -> None:
    """The cell's call over gRPC runs, or fails with the outcome's code and reason."""
    call = GRPC_CALLS[rpc](stubs, target, metadata)
    if outcome.ok:
        await call
        return
    assert outcome.reason is not None
    failure = await fails(call, outcome.code, outcome.reason)
    for _, value in metadata:  # no part of a token in the answer
        assert value.removeprefix("Bearer ") not in failure.message


# --- through the gateway --------------------------------------------------------------------


async def rest_call(
    http: httpx.AsyncClient, rpc: str, target: Target, headers: Mapping[str, str]
) -> httpx.Response:
    """The cell's call as the gateway's REST route; a watch: its status and first line."""
    user, order = target.user_id, target.order_id
    if rpc in ("WatchUsers", "WatchOrders"):
        path = "/v1/users:watch?" if rpc == "WatchUsers" else f"/v1/orders:watch?userId={user}&"
        async with (
            asyncio.timeout(TIMEOUT),
            http.stream("GET", f"{path}progressNotify=true", headers=headers) as streamed,
        ):
            first = ""
            async for line in streamed.aiter_lines():
                if line.strip():
                    first = line
                    break
            return httpx.Response(
                streamed.status_code, headers=streamed.headers, content=first.encode()
            )
    calls: dict[str, tuple[str, str, Any]] = {
        "CreateUser": ("POST", f"/v1/users?subject={target.subject}", {"email": new_email()}),
        "GetUser": ("GET", f"/v1/users/{user}", None),
        "ListUsers": ("GET", "/v1/users?pageSize=1", None),
        "UpdateUser": ("PATCH", f"/v1/users/{user}", {"displayName": "New"}),
        "DeleteUser": ("DELETE", f"/v1/users/{user}", None),
        "CreateOrder": ("POST", "/v1/orders", {"userId": user, "items": [ITEM]}),
        "GetOrder": ("GET", f"/v1/orders/{order}", None),
        "ListOrders": ("GET", f"/v1/orders?userId={user}", None),
        "CancelOrder": ("POST", f"/v1/orders/{order}:cancel", {}),
    }
    method, path, body = calls[rpc]
    return await http.request(method, path, json=body, headers=dict(headers))


def status_reason(response: httpx.Response) -> tuple[int, str]:
    """The `google.rpc.Status` JSON body's code and its ErrorInfo's reason."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    info = next(d for d in body["details"] if d["@type"].endswith("google.rpc.ErrorInfo"))
    assert info["domain"] == "shop.dev"
    return body["code"], info["reason"]


def check_rest(rpc: str, outcome: Outcome, response: httpx.Response) -> None:
    """The cell's HTTP status, and for a refusal its Status body's code and reason (a 401
    asks for a bearer token)."""
    if outcome.ok:
        assert response.status_code == policy_table.HTTP_OK[rpc], response.text
        if rpc.startswith("Watch"):
            assert response.content, "the watch sent nothing"
        return
    assert response.status_code == outcome.http_status, response.text
    assert status_reason(response) == (outcome.code.value[0], outcome.reason)
    if outcome.code is grpc.StatusCode.UNAUTHENTICATED:
        assert response.headers["www-authenticate"].startswith("Bearer"), response.headers


def rest_headers(token: str | None) -> dict[str, str]:
    return {} if token is None else {"authorization": f"Bearer {token}"}
