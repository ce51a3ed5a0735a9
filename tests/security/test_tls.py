"""Mutual TLS over real grpc.aio servers (the standard health service) and clients: who gets
in, who the server sees, and certificates changed on disk without a restart."""

from __future__ import annotations

import contextlib
import datetime
import pathlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import certs
import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from shop_common.security import (
    ClientCredentials,
    TlsSettings,
    peer_service,
    server_credentials,
    service_name,
    spiffe_id,
)

SERVING = health_pb2.HealthCheckResponse.SERVING


_AsyncHealth: Any = health.aio.HealthServicer  # type: ignore[attr-defined]  # stubs lag


class RecordingHealth(_AsyncHealth):  # type: ignore[misc]  # an untyped base
    """The standard health service, noting who called."""

    def __init__(self) -> None:
        super().__init__()
        self.spiffe_ids: list[str | None] = []
        self.services: list[str | None] = []

    async def Check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.spiffe_ids.append(spiffe_id(context.auth_context()))
        self.services.append(peer_service(context, "shop.local"))
        return await super().Check(request, context)


@dataclass
class Pki:
    """A CA and the files of the identities it issued, under one directory."""

    root: pathlib.Path
    ca: certs.Identity

    def identity(
        self, name: str, identity: certs.Identity | None = None, *, ca: bytes | None = None
    ) -> TlsSettings:
        directory = self.root / name
        directory.mkdir(exist_ok=True)
        (directory / "ca.pem").write_bytes(ca or self.ca.cert_pem)
        files = certs.Files.of(directory, name)
        files.write(identity or certs.issue(self.ca, name))
        return TlsSettings(ca_file=directory / "ca.pem", cert_file=files.cert, key_file=files.key)


@pytest.fixture(scope="module")
def authority() -> certs.Identity:
    return certs.new_authority("test CA")


@pytest.fixture(scope="module")
def other_authority() -> certs.Identity:
    return certs.new_authority("another CA")


@pytest.fixture
def pki(tmp_path: pathlib.Path, authority: certs.Identity) -> Pki:
    return Pki(tmp_path, authority)


@contextlib.asynccontextmanager
async def serving(settings: TlsSettings) -> AsyncIterator[tuple[int, RecordingHealth]]:
    server = grpc.aio.server()
    recorder = RecordingHealth()
    health_pb2_grpc.add_HealthServicer_to_server(recorder, server)
    port = server.add_secure_port("127.0.0.1:0", await server_credentials(settings))
    await server.start()
    try:
        yield port, recorder
    finally:
        await server.stop(None)


async def check(
    port: int, credentials: grpc.ChannelCredentials | None, *, server_name: str | None = None
) -> int:
    """The health status through a new channel (plaintext without credentials), checking
    that the server's certificate names `server_name` when given (`localhost` otherwise)."""
    target = f"localhost:{port}"
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    channel = (
        grpc.aio.secure_channel(target, credentials, options)
        if credentials
        else grpc.aio.insecure_channel(target)
    )
    async with channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return int(response.status)


async def refused(
    port: int, credentials: grpc.ChannelCredentials | None, *, server_name: str | None = None
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check(port, credentials, server_name=server_name)
    return caught.value


async def test_a_mutual_tls_call_succeeds_and_the_server_sees_the_clients_service(
    pki: Pki,
) -> None:
    async with serving(pki.identity("user_svc")) as (port, recorder):
        client = await ClientCredentials(pki.identity("order_svc")).load()
        assert await check(port, client) == SERVING
    assert recorder.spiffe_ids == ["spiffe://shop.local/order_svc"]
    assert recorder.services == ["order_svc"]


async def test_a_plaintext_client_is_refused(pki: Pki) -> None:
    async with serving(pki.identity("user_svc")) as (port, recorder):
        assert (await refused(port, None)).code() == grpc.StatusCode.UNAVAILABLE
    assert recorder.services == []


async def test_a_client_without_a_certificate_is_refused(pki: Pki) -> None:
    async with serving(pki.identity("user_svc")) as (port, recorder):
        server_only = grpc.ssl_channel_credentials(root_certificates=pki.ca.cert_pem)
        assert (await refused(port, server_only)).code() == grpc.StatusCode.UNAVAILABLE
    assert recorder.services == []


async def test_without_required_client_certificates_such_a_client_is_anonymous(
    pki: Pki,
) -> None:
    settings = pki.identity("user_svc")
    relaxed = TlsSettings(
        settings.ca_file, settings.cert_file, settings.key_file, require_client_cert=False
    )
    async with serving(relaxed) as (port, recorder):
        server_only = grpc.ssl_channel_credentials(root_certificates=pki.ca.cert_pem)
        assert await check(port, server_only) == SERVING
    assert recorder.services == [None]


async def test_a_client_certificate_from_another_ca_is_refused(
    pki: Pki, other_authority: certs.Identity
) -> None:
    stranger = pki.identity("order_svc", certs.issue(other_authority, "order_svc"))
    async with serving(pki.identity("user_svc")) as (port, recorder):
        client = await ClientCredentials(stranger).load()
        assert (await refused(port, client)).code() == grpc.StatusCode.UNAVAILABLE
    assert recorder.services == []


async def test_an_expired_client_certificate_is_refused(pki: Pki) -> None:
    now = datetime.datetime.now(datetime.UTC)
    expired = certs.issue(
        pki.ca,
        "order_svc",
        not_before=now - datetime.timedelta(days=10),
        not_after=now - datetime.timedelta(days=1),
    )
    async with serving(pki.identity("user_svc")) as (port, recorder):
        client = await ClientCredentials(pki.identity("order_svc", expired)).load()
        assert (await refused(port, client)).code() == grpc.StatusCode.UNAVAILABLE
    assert recorder.services == []


async def test_a_client_of_another_trust_domain_gets_in_but_names_no_service(pki: Pki) -> None:
    """TLS admits any certificate of the CA; the service name is for the policy to judge."""
    foreign = certs.issue(pki.ca, "order_svc", uri="spiffe://elsewhere.example/order_svc")
    async with serving(pki.identity("user_svc")) as (port, recorder):
        client = await ClientCredentials(pki.identity("order_svc", foreign)).load()
        assert await check(port, client) == SERVING
    assert recorder.spiffe_ids == ["spiffe://elsewhere.example/order_svc"]
    assert recorder.services == [None]


async def test_a_client_dialing_a_service_by_name_refuses_another_service(pki: Pki) -> None:
    """Hostname verification pins the server: the order service's certificate does not name
    `user-svc`, though it is from the same CA."""
    client = await ClientCredentials(pki.identity("gateway")).load()
    async with serving(pki.identity("user_svc")) as (port, _):
        assert await check(port, client, server_name="user-svc") == SERVING
    async with serving(pki.identity("order_svc")) as (port, recorder):
        error = await refused(port, client, server_name="user-svc")
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert recorder.services == []


async def test_a_server_certificate_rotated_on_disk_serves_new_connections(
    pki: Pki, other_authority: certs.Identity
) -> None:
    """The server's new certificate is from another CA: a client trusting only that CA gets
    in after the rotation, one trusting only the old CA no longer does."""
    settings = pki.identity("user_svc")
    client = pki.identity("order_svc")
    trusts_old = await ClientCredentials(client).load()
    trusts_new = await ClientCredentials(
        pki.identity("order_svc_new", certs.issue(pki.ca, "order_svc"), ca=other_authority.cert_pem)
    ).load()
    async with serving(settings) as (port, recorder):
        assert await check(port, trusts_old) == SERVING
        await refused(port, trusts_new)
        certs.Files(settings.cert_file, settings.key_file).write(
            certs.issue(other_authority, "user_svc")
        )
        assert await check(port, trusts_new) == SERVING
        await refused(port, trusts_old)
    assert recorder.services == ["order_svc", "order_svc"]


async def test_a_half_written_server_certificate_keeps_the_old_one(pki: Pki) -> None:
    settings = pki.identity("user_svc")
    client = await ClientCredentials(pki.identity("order_svc")).load()
    async with serving(settings) as (port, _):
        settings.cert_file.write_bytes(certs.issue(pki.ca, "user_svc").cert_pem)  # key not yet
        assert await check(port, client) == SERVING
        settings.key_file.write_bytes(b"")
        assert await check(port, client) == SERVING


async def test_a_client_whose_files_changed_rebuilds_its_channel(
    pki: Pki, other_authority: certs.Identity
) -> None:
    settings = pki.identity("order_svc", certs.issue(other_authority, "order_svc"))
    credentials = ClientCredentials(settings)
    async with serving(pki.identity("user_svc")) as (port, _):
        await refused(port, await credentials.load())
        assert not await credentials.changed()
        certs.Files(settings.cert_file, settings.key_file).write(certs.issue(pki.ca, "order_svc"))
        assert await credentials.changed()
        assert await check(port, await credentials.load()) == SERVING
        assert not await credentials.changed()


async def test_a_server_with_unusable_files_does_not_start(pki: Pki) -> None:
    settings = pki.identity("user_svc")
    settings.key_file.write_bytes(certs.issue(pki.ca, "other").key_pem)
    with pytest.raises(ValueError, match="is not the key of"):
        await server_credentials(settings)


@pytest.mark.parametrize(
    ("spiffe", "expected"),
    [
        ("spiffe://shop.local/order_svc", "order_svc"),
        ("spiffe://shop.local/", None),
        ("spiffe://shop.local.evil/order_svc", None),
        ("spiffe://other/order_svc", None),
        ("https://shop.local/order_svc", None),
    ],
)
def test_a_service_name_is_read_from_a_spiffe_id_of_the_trust_domain(
    spiffe: str, expected: str | None
) -> None:
    assert service_name(spiffe, "shop.local") == expected
