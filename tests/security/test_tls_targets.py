"""Which name TLS checks on a channel to a gRPC target (`open_channel`), over real servers:
the name given (`*_TLS_NAME`: `user-svc`) for every form of target, round robin over an
address list included; without one, the target's host, and a list of addresses (which
names none) refused before any connection."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator

import certs
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shop_common.security import TlsSettings, open_channel
from tests.security.test_tls import SERVING, Pki, RecordingHealth, serving

CALLS = 40


@pytest.fixture
def pki(tmp_path: pathlib.Path) -> Pki:
    return Pki(tmp_path, certs.new_authority("test CA"))


async def checks(
    target: str, tls: TlsSettings, server_name: str | None, calls: int = CALLS
) -> list[int]:
    channel = await open_channel(target, [], tls, server_name=server_name)
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        return [
            (await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)).status
            for _ in range(calls)
        ]
    finally:
        await channel.close(None)


@contextlib.asynccontextmanager
async def two(
    first: TlsSettings, second: TlsSettings
) -> AsyncIterator[tuple[str, RecordingHealth, RecordingHealth]]:
    """Two servers, and the `ipv4:` target listing both."""
    async with serving(first) as (port_a, a), serving(second) as (port_b, b):
        yield f"ipv4:127.0.0.1:{port_a},127.0.0.1:{port_b}", a, b


async def test_an_address_list_is_checked_against_the_name_given_and_spread(pki: Pki) -> None:
    user_svc = pki.identity("user_svc")
    async with two(user_svc, user_svc) as (target, a, b):
        statuses = await checks(target, pki.identity("order_svc"), "user-svc")
    assert statuses == [SERVING] * CALLS
    assert len(a.services) + len(b.services) == CALLS
    assert min(len(a.services), len(b.services)) >= CALLS // 4, "not spread over both"
    assert set(a.services + b.services) == {"order_svc"}


async def test_in_an_address_list_another_parts_certificate_gets_no_call(pki: Pki) -> None:
    """The order service's certificate does not name `user-svc`: its handshake fails, and
    round robin sends every call to the replica that passes."""
    async with two(pki.identity("user_svc"), pki.identity("order_svc")) as (target, a, b):
        statuses = await checks(target, pki.identity("gateway"), "user-svc")
    assert statuses == [SERVING] * CALLS
    assert (len(a.services), len(b.services)) == (CALLS, 0)


async def test_a_dns_target_is_checked_against_the_name_given_not_the_one_dialed(
    pki: Pki,
) -> None:
    """A headless Service's name (`user-svc-grpc`) is not the service's identity: the
    certificate names `user-svc`, and that is what is checked."""
    client = pki.identity("gateway")
    async with serving(pki.identity("user_svc")) as (port, _):
        assert await checks(f"dns:///localhost:{port}", client, "user-svc", 2) == [SERVING] * 2
    async with serving(pki.identity("order_svc")) as (port, recorder):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await checks(f"dns:///localhost:{port}", client, "user-svc", 1)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert recorder.services == []


async def test_without_a_name_a_dns_target_is_checked_against_its_host(pki: Pki) -> None:
    """The certificates name `localhost` too (what clients dial on one machine)."""
    async with serving(pki.identity("user_svc")) as (port, _):
        assert await checks(f"dns:///localhost:{port}", pki.identity("gateway"), None, 1) == [
            SERVING
        ]


async def test_without_a_name_an_address_list_is_refused_before_it_dials(pki: Pki) -> None:
    with pytest.raises(ValueError, match="names no host for TLS to check"):
        await open_channel("ipv4:127.0.0.1:1,127.0.0.1:2", [], pki.identity("gateway"))
