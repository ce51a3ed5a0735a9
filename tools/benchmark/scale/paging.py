"""Real ListOrders and ListUsers calls: the page tokens of pages deep into a listing, got by
paging as a client does (tokens are signed: only the service makes them), and one page's
reply, which checks a listing row before and after it is loaded."""

from __future__ import annotations

import grpc
from google.protobuf.message import Message

from benchmark.calls import grpc_frame
from benchmark.errors import BenchError
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc

MOST_PER_PAGE = 1000


async def orders_token_after(address: str, user_id: str, skip: int) -> str:
    """The token of the page that starts after the user's first `skip` orders."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub, token, seen = order_pb2_grpc.OrderServiceStub(channel), "", 0
        while seen < skip:
            size = min(MOST_PER_PAGE, skip - seen)
            request = order_pb2.ListOrdersRequest(user_id=user_id, page_size=size, page_token=token)
            page = await stub.ListOrders(request, timeout=30)
            seen, token = seen + len(page.orders), page.next_page_token
            if not token:
                raise BenchError(f"user {user_id} has {seen} orders, not more than {skip}")
    return token


async def users_token_after(address: str, skip: int) -> str:
    """The token of the page that starts after the first `skip` users."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub, token, seen = user_pb2_grpc.UserServiceStub(channel), "", 0
        while seen < skip:
            size = min(MOST_PER_PAGE, skip - seen)
            request = user_pb2.ListUsersRequest(page_size=size, page_token=token)
            page = await stub.ListUsers(request, timeout=30)
            seen, token = seen + len(page.users), page.next_page_token
            if not token:
                raise BenchError(f"there are {seen} users, not more than {skip}")
    return token


async def one_page(address: str, request: Message, expected: int) -> int:
    """One real ListOrders or ListUsers (raises unless OK and `expected` items long); the size
    of the reply's frame."""
    async with grpc.aio.insecure_channel(address) as channel:
        reply: order_pb2.ListOrdersResponse | user_pb2.ListUsersResponse
        if isinstance(request, order_pb2.ListOrdersRequest):
            reply = await order_pb2_grpc.OrderServiceStub(channel).ListOrders(request, timeout=10)
            found = len(reply.orders)
        else:
            assert isinstance(request, user_pb2.ListUsersRequest)
            reply = await user_pb2_grpc.UserServiceStub(channel).ListUsers(request, timeout=10)
            found = len(reply.users)
    if found != expected:
        raise BenchError(f"{type(request).__name__} answered {found} items, not {expected}")
    return len(grpc_frame(reply))
