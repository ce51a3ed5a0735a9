"""Channelz on the service's own port, for real: on when `<NAME>_CHANNELZ` says so (then
GetTopChannels and GetServers answer over a real channel, behind the boundary: admins
only), UNIMPLEMENTED when off (the default)."""

from __future__ import annotations

import pathlib

import grpc
import pytest
from grpc_channelz.v1 import channelz_pb2, channelz_pb2_grpc

from tests.integration.helpers import ORDER_SERVICE, bearer, fails
from tests.support import channel_to, running_order_svc, running_user_svc

Code = grpc.StatusCode


async def test_channelz_answers_when_on(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    async with (
        running_user_svc(url, tmp_path / "u", channelz=True) as users,
        running_order_svc(
            f"sqlite:///{tmp_path / 'orders.db'}", tmp_path / "o", f"127.0.0.1:{users.port}"
        ),
        channel_to(users.port) as channel,
    ):
        channelz = channelz_pb2_grpc.ChannelzStub(channel)
        # In dev mode a call without credentials is the development admin.
        servers = await channelz.GetServers(channelz_pb2.GetServersRequest(start_server_id=0))
        assert servers.server, "no server listed"
        assert any(s.data.calls_started >= 1 for s in servers.server)
        server_id = servers.server[0].ref.server_id
        found = await channelz.GetServer(channelz_pb2.GetServerRequest(server_id=server_id))
        assert found.server.ref.server_id == server_id
        # This process's channels: the test's own, at least.
        top = await channelz.GetTopChannels(channelz_pb2.GetTopChannelsRequest(start_channel_id=0))
        assert top.channel, "no channel listed"


async def test_channelz_is_for_admins_only(tmp_path: pathlib.Path) -> None:
    async with (
        running_user_svc(f"sqlite:///{tmp_path / 'u.db'}", tmp_path, channelz=True) as users,
        channel_to(users.port) as channel,
    ):
        channelz = channelz_pb2_grpc.ChannelzStub(channel)
        request = channelz_pb2.GetServersRequest()
        await fails(
            channelz.GetServers(request, metadata=bearer("alice")),
            Code.PERMISSION_DENIED,
            "NOT_ALLOWED",
        )
        # Not the system's services either: the order service reads users, nothing more.
        await fails(
            channelz.GetServers(request, metadata=ORDER_SERVICE),
            Code.PERMISSION_DENIED,
            "NOT_ALLOWED",
        )


async def test_channelz_is_unimplemented_when_off(tmp_path: pathlib.Path) -> None:
    async with (
        running_user_svc(f"sqlite:///{tmp_path / 'u.db'}", tmp_path) as users,
        channel_to(users.port) as channel,
    ):
        channelz = channelz_pb2_grpc.ChannelzStub(channel)
        for call in (
            channelz.GetTopChannels(channelz_pb2.GetTopChannelsRequest()),
            channelz.GetServers(channelz_pb2.GetServersRequest()),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == Code.UNIMPLEMENTED
