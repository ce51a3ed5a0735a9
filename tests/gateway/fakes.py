"""Tiny in-memory stand-ins for the user and order services: they record what they
receive, echo it back, and fail on demand with rich google.rpc.Status details.

`GetUser` with id `code-N` fails with gRPC code N, with id `say-TEXT` fails INVALID_ARGUMENT
with the message TEXT (any characters), with id `hang` answers only when cancelled (then
`Recorder.cancelled` is set), and with id `etag-TAG` answers a user whose etag is TAG;
`WatchUsers` from revision 0 is UNIMPLEMENTED (as the real services may still answer), from
revision R streams three responses and then fails with ABORTED, with `progress_notify`
streams until cancelled, and with `prev_user` streams the three responses, each event with
a previous user of `BIG_NAME` characters (a message large enough to be compressed), and then
ends OK with its trailer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from google.type import money_pb2
from grpc_status import rpc_status

from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.domain import ERROR_DOMAIN

Context = grpc.aio.ServicerContext[Any, Any]
CREATED = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5_000_000)
BIG_REVISION = 2**53 + 1  # not exact in a JSON number: must travel as a string
BIG_NAME = 4000


@dataclass
class Received:
    rpc: str
    request: Message
    metadata: dict[str, str | bytes]
    time_remaining: float | None


@dataclass
class Recorder:
    calls: list[Received] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a call is recorded."""

    def record(self, rpc: str, request: Message, context: Context) -> None:
        metadata = dict(context.invocation_metadata() or ())
        self.calls.append(Received(rpc, request, metadata, context.time_remaining()))
        self.arrived.set()

    def last(self, rpc: str) -> Received:
        found = [call for call in self.calls if call.rpc == rpc]
        assert found, f"{rpc} was not called; calls: {[c.rpc for c in self.calls]}"
        return found[-1]


def rich_status(
    code: grpc.StatusCode, message: str, reason: str, field: str | None = None
) -> grpc.Status:
    details = [_pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))]
    if field is not None:
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=message)
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    return rpc_status.to_status(status)


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


async def abort(context: Context, status: grpc.Status) -> None:
    # grpc-stubs lacks the aio context's abort_with_status.
    await cast(Any, context).abort_with_status(status)


async def echo_metadata(context: Context) -> None:
    """Sends `x-echo` back as header metadata and a fixed trailer."""
    echo = dict(context.invocation_metadata() or ()).get("x-echo", "none")
    await context.send_initial_metadata((("x-served-by", "fake"), ("x-echo", echo)))
    context.set_trailing_metadata((("x-trailer", "done"),))


class FakeUsers(user_pb2_grpc.UserServiceServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: Context
    ) -> user_pb2.CreateUserResponse:
        self.recorder.record("CreateUser", request, context)
        user = user_pb2.User()
        user.CopyFrom(request.user)
        user.id = "u-1"
        user.create_time.CopyFrom(CREATED)
        return user_pb2.CreateUserResponse(user=user)

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: Context
    ) -> user_pb2.GetUserResponse:
        self.recorder.record("GetUser", request, context)
        if request.id.startswith("code-"):
            code = next(c for c in grpc.StatusCode if c.value[0] == int(request.id[5:]))
            await abort(context, rich_status(code, f"failed with {code.name}", code.name, "id"))
        if request.id.startswith("say-"):
            status = rich_status(grpc.StatusCode.INVALID_ARGUMENT, request.id[4:], "SAID", "id")
            await abort(context, status)
        if request.id == "hang":
            try:
                await asyncio.Event().wait()
            finally:
                self.recorder.cancelled.set()
        await echo_metadata(context)
        user = user_pb2.User(id=request.id, email=f"{request.id}@example.com")
        if request.id.startswith("etag-"):
            user.etag = request.id[5:]
        return user_pb2.GetUserResponse(user=user)

    async def ListUsers(
        self, request: user_pb2.ListUsersRequest, context: Context
    ) -> user_pb2.ListUsersResponse:
        self.recorder.record("ListUsers", request, context)
        users = [user_pb2.User(id="a", display_name="Ann"), user_pb2.User(id="b")]
        return user_pb2.ListUsersResponse(
            users=users, next_page_token=f"after-{request.page_token}", revision=BIG_REVISION
        )

    async def UpdateUser(
        self, request: user_pb2.UpdateUserRequest, context: Context
    ) -> user_pb2.UpdateUserResponse:
        self.recorder.record("UpdateUser", request, context)
        return user_pb2.UpdateUserResponse(user=request.user)

    async def DeleteUser(
        self, request: user_pb2.DeleteUserRequest, context: Context
    ) -> user_pb2.DeleteUserResponse:
        self.recorder.record("DeleteUser", request, context)
        return user_pb2.DeleteUserResponse()

    async def WatchUsers(
        self, request: user_pb2.WatchUsersRequest, context: Context
    ) -> AsyncIterator[user_pb2.WatchUsersResponse]:
        self.recorder.record("WatchUsers", request, context)
        if request.start_revision == 0:
            await abort(
                context,
                rich_status(grpc.StatusCode.UNIMPLEMENTED, "not yet", "WATCH_UNIMPLEMENTED"),
            )
        await echo_metadata(context)
        if request.progress_notify:
            try:
                while True:
                    yield user_pb2.WatchUsersResponse(progress_notify=True)
                    await asyncio.sleep(0.01)
            finally:
                self.recorder.cancelled.set()
        for step in range(1, 4):
            revision = request.start_revision + step
            event = user_pb2.UserEvent(
                type=user_pb2.UserEvent.TYPE_PUT,
                user=user_pb2.User(id=f"u{step}"),
                revision=revision,
            )
            if request.prev_user:
                event.prev_user.CopyFrom(user_pb2.User(id=f"u{step}", display_name="n" * BIG_NAME))
            yield user_pb2.WatchUsersResponse(events=[event], header_revision=revision)
        if request.prev_user:
            return
        await abort(context, rich_status(grpc.StatusCode.ABORTED, "compacted", "COMPACTED"))


class FakeOrders(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def CreateOrder(
        self, request: order_pb2.CreateOrderRequest, context: Context
    ) -> order_pb2.CreateOrderResponse:
        self.recorder.record("CreateOrder", request, context)
        order = order_pb2.Order()
        order.CopyFrom(request.order)
        order.id = "o-1"
        order.state = order_pb2.Order.STATE_PENDING
        order.total.CopyFrom(money_pb2.Money(currency_code="EUR", units=6))
        return order_pb2.CreateOrderResponse(order=order)

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Context
    ) -> order_pb2.GetOrderResponse:
        self.recorder.record("GetOrder", request, context)
        order = order_pb2.Order(id=request.id, state=order_pb2.Order.STATE_PENDING)
        return order_pb2.GetOrderResponse(order=order)

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: Context
    ) -> order_pb2.ListOrdersResponse:
        self.recorder.record("ListOrders", request, context)
        orders = [order_pb2.Order(id="o-1", user_id=request.user_id)]
        return order_pb2.ListOrdersResponse(orders=orders, revision=7)

    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: Context
    ) -> order_pb2.CancelOrderResponse:
        self.recorder.record("CancelOrder", request, context)
        order = order_pb2.Order(
            id=request.id, etag=request.etag, state=order_pb2.Order.STATE_CANCELLED
        )
        return order_pb2.CancelOrderResponse(order=order)

    async def WatchOrders(
        self, request: order_pb2.WatchOrdersRequest, context: Context
    ) -> AsyncIterator[order_pb2.WatchOrdersResponse]:
        self.recorder.record("WatchOrders", request, context)
        await abort(context, rich_status(grpc.StatusCode.UNIMPLEMENTED, "not yet", "NOT_YET"))
        yield order_pb2.WatchOrdersResponse()  # unreachable: makes this a generator
