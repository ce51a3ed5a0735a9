"""gRPC's admin view, channelz (`grpc.channelz.v1.Channelz`, grpcio-channelz): the
process's channels, subchannels, servers and sockets with their call counts, as grpcdebug
and other channelz clients read them. Served on the service's own port when the operator
turns it on (`<NAME>_CHANNELZ=true`; off by default).

It tells who is connected (peer addresses, ports) and how busy the process is: operator
information, not the public's. So, unlike health and reflection, it crosses the boundary
like the application's services (the caller authenticated as the mode says, refusals as
statuses, counted in the gRPC metrics) and admits admins only: a table with no rule for
users or services (`Policy` with empty rules). In dev mode a call without credentials is
the development admin, so `grpcdebug` works as is; in jwt mode it takes an admin's token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_channelz.v1 import _async, channelz_pb2, channelz_pb2_grpc

from shop_common.serving.policy import Policy, Rule

DESCRIPTOR = channelz_pb2.DESCRIPTOR.services_by_name["Channelz"]
SERVICE = DESCRIPTOR.full_name

POLICY = Policy(DESCRIPTOR, {method.name: Rule() for method in DESCRIPTOR.methods})
"""Admins only."""

_Method = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


def _admitted(name: str, answer: _Method) -> _Method:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        POLICY.admit(name)  # PERMISSION_DENIED / UNAUTHENTICATED, through the boundary
        return await answer(request, context)

    return handle


class _AdminsOnly(channelz_pb2_grpc.ChannelzServicer):  # type: ignore[misc]  # untyped
    """grpcio-channelz's own servicer (its asyncio one), each method behind the policy."""

    def __init__(self) -> None:
        inner = _async.ChannelzServicer()
        for method in DESCRIPTOR.methods:
            setattr(self, method.name, _admitted(method.name, getattr(inner, method.name)))


def enable(server: grpc.aio.Server) -> None:
    """Serves channelz on `server`; the caller puts `SERVICE` behind the boundary."""
    channelz_pb2_grpc.add_ChannelzServicer_to_server(_AdminsOnly(), server)
