"""Channelz in jwt mode, for real (a test issuer's tokens, the user service on loopback):
it tells who is connected and how busy the process is, so only an admin's token reads it;
a user, the system's own services and anonymous callers are refused as the policy refuses."""

from __future__ import annotations

import dataclasses
import pathlib

import grpc
from grpc_channelz.v1 import channelz_pb2, channelz_pb2_grpc

import user_svc.app
from tests.integration.helpers import fails
from tests.security.system import ORDER_SVC_SUBJECT, Issuer, service_settings
from tests.support import channel_to

Code = grpc.StatusCode


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def test_only_an_admin_token_reads_channelz(tmp_path: pathlib.Path) -> None:
    issuer = Issuer(tmp_path / "jwks.json")
    settings = service_settings(tmp_path, "user_svc", issuer.security())
    running = await user_svc.app.start(dataclasses.replace(settings, channelz=True))
    try:
        async with channel_to(running.port) as channel:
            channelz = channelz_pb2_grpc.ChannelzStub(channel)
            request = channelz_pb2.GetServersRequest()
            found = await channelz.GetServers(request, metadata=bearer(issuer.admin()))
            assert found.server
            await fails(channelz.GetServers(request), Code.UNAUTHENTICATED, "CREDENTIALS_REQUIRED")
            for token in (issuer.token("alice"), issuer.token(ORDER_SVC_SUBJECT)):
                await fails(
                    channelz.GetServers(request, metadata=bearer(token)),
                    Code.PERMISSION_DENIED,
                    "NOT_ALLOWED",
                )
    finally:
        await running.stop(grace=0)
