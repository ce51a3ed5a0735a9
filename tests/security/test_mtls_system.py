"""Mutual TLS across the three parts, with the certificates `make certs` writes (in a
temporary directory), in jwt mode: the system works end to end, the services refuse
plaintext and strangers, a service is who its certificate says, certificates changed on disk
are picked up without a restart; the plaintext health-only port; HTTPS on the gateway."""

from __future__ import annotations

import contextlib
import functools
import pathlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import certs
import grpc
import httpx
import pytest
from google.type import money_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import shop_common.security.channel
from gateway import RunningGateway
from order_svc.user_feed import HEALTH_NAME
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.domain import new_id
from shop_common.serving import Caller, RunningServer
from tests.security.system import (
    Issuer,
    Pki,
    RecordingUsers,
    recording_user_svc,
    running_gateway,
    running_order_svc,
    running_user_svc,
    secure_channel,
)
from tests.support import channel_to, eventually

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def pki(tmp_path: pathlib.Path) -> Pki:
    return Pki(tmp_path / "certs")


@pytest.fixture
def issuer(tmp_path: pathlib.Path) -> Issuer:
    return Issuer(tmp_path / "jwks.json")


@dataclass
class System:
    users: RunningServer
    orders: RunningServer
    gateway: RunningGateway
    http: httpx.AsyncClient


@pytest.fixture
async def system(tmp_path: pathlib.Path, pki: Pki, issuer: Issuer) -> AsyncIterator[System]:
    async with (
        running_user_svc(tmp_path, issuer.security(pki.tls("user_svc"))) as users,
        running_order_svc(tmp_path, issuer.security(pki.tls("order_svc")), users.port) as orders,
        running_gateway(issuer.security(pki.tls("gateway")), users.port, orders.port) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
    ):
        yield System(users, orders, gateway, http)


async def health_of(channel: grpc.aio.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(answer.status)


async def test_the_whole_system_works_over_mutual_tls(
    system: System, pki: Pki, issuer: Issuer
) -> None:
    alice = {"authorization": f"Bearer {issuer.token('alice')}"}
    created = await system.http.post("/v1/users", json={"email": "a@example.com"}, headers=alice)
    assert created.status_code == 201, created.text
    ordered = await system.http.post(
        "/v1/orders",
        json={
            "userId": created.json()["id"],
            "items": [
                {"sku": "TEA-1", "quantity": 1, "unitPrice": {"currencyCode": "EUR", "units": "3"}}
            ],
        },
        headers=alice,
    )
    assert ordered.status_code == 201, ordered.text
    health = await system.http.get("/healthz")
    assert health.status_code == 200, health.text
    async with secure_channel(system.orders.port, pki.credentials(), "order-svc") as channel:

        async def following() -> bool:
            return bool(await health_of(channel, HEALTH_NAME) == SERVING)

        await eventually(following, 10, "the order service following the user feed")


async def test_a_request_the_gateway_forwards_without_a_token_is_anonymous(
    system: System,
) -> None:
    """The gateway calls with its certificate, which carries no rights: without a token the
    caller is anonymous (401, sign in), not the gateway (403)."""
    for method, path in (("GET", "/v1/users"), ("POST", "/v1/orders")):
        response = await system.http.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 401, response.text
        assert response.json()["details"][0]["reason"] == "CREDENTIALS_REQUIRED"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_the_services_refuse_a_plaintext_client(system: System) -> None:
    for port in (system.users.port, system.orders.port):
        async with channel_to(port) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await health_of(channel)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_services_refuse_a_client_of_another_ca(
    system: System, tmp_path: pathlib.Path
) -> None:
    stranger = Pki(tmp_path / "other")
    async with secure_channel(system.users.port, stranger.credentials()) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_of(channel)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_with_the_ca_gets_in_and_a_token_still_decides_who_it_is(
    system: System, pki: Pki, issuer: Issuer
) -> None:
    async with secure_channel(system.users.port, pki.credentials()) as channel:
        assert await health_of(channel) == SERVING
        created = await user_pb2_grpc.UserServiceStub(channel).CreateUser(
            user_pb2.CreateUserRequest(user=user_pb2.User(email="t@example.com")),
            metadata=(("authorization", f"Bearer {issuer.token('tess')}"),),
            timeout=5,
        )
        assert created.user.subject == "tess"


async def test_a_service_is_who_its_certificate_says(
    tmp_path: pathlib.Path, pki: Pki, issuer: Issuer
) -> None:
    """The order service started with the gateway's certificate: the user service does not
    see the order service but an anonymous caller (the gateway's certificate proves a hop,
    not a caller: it carries no rights)."""
    for certificate, seen in (("gateway", None), ("order_svc", "order_svc")):
        (tmp_path / certificate).mkdir()
        async with (
            recording_user_svc(issuer.security(pki.tls("user_svc"))) as (users, recorder),
            running_order_svc(
                tmp_path / certificate, issuer.security(pki.tls(certificate)), users.port
            ),
        ):
            await eventually(functools.partial(_called, recorder), 10, "the feed followed")
        assert {caller for _, caller in recorder.callers} == {Caller(subject=None, service=seen)}


async def _called(recorder: RecordingUsers) -> bool:
    return bool(recorder.callers)


async def test_a_client_pins_the_server_it_dials(system: System, pki: Pki) -> None:
    """The order service's certificate does not name `user-svc`: a client that expects the
    user service there refuses it, though it is from the same CA."""
    async with secure_channel(system.orders.port, pki.credentials(), "user-svc") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_of(channel)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_order_services_new_certificate_is_used_without_restart(
    tmp_path: pathlib.Path, pki: Pki, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shop_common.security.channel, "POLL_SECONDS", 0.05)
    mine = pki.own("order_svc", tmp_path / "order_svc_certs")
    async with (
        recording_user_svc(issuer.security(pki.tls("user_svc"))) as (users, recorder),
        running_order_svc(tmp_path, issuer.security(mine), users.port) as orders,
        secure_channel(orders.port, pki.credentials(), "order-svc") as channel,
    ):
        await eventually(lambda: _called(recorder), 10, "the user feed followed")
        renamed = certs.issue(pki.ca, "order_svc", uri="spiffe://shop.local/order_svc_renewed")
        certs.Files(mine.cert_file, mine.key_file).write(renamed)
        stub = order_pb2_grpc.OrderServiceStub(channel)
        price = money_pb2.Money(currency_code="EUR", units=3)
        item = order_pb2.LineItem(sku="SKU-1", quantity=1, unit_price=price)
        bearer = (("authorization", f"Bearer {issuer.admin()}"),)

        async def renewed() -> bool:
            request = order_pb2.CreateOrderRequest(
                order=order_pb2.Order(user_id=new_id(), items=[item])
            )
            with contextlib.suppress(grpc.aio.AioRpcError):  # who called is what counts
                await stub.CreateOrder(request, metadata=bearer, timeout=5)
            return recorder.callers[-1] == (
                "GetUser",
                Caller(subject=None, service="order_svc_renewed"),
            )

        await eventually(renewed, 10, "GetUser with the new certificate", interval=0.1)


async def test_a_servers_new_certificate_serves_new_connections_without_restart(
    tmp_path: pathlib.Path, pki: Pki, issuer: Issuer
) -> None:
    mine = pki.own("user_svc", tmp_path / "user_svc_certs")
    other = certs.new_authority("the next CA")
    trusting_the_next = grpc.ssl_channel_credentials(
        root_certificates=other.cert_pem,
        private_key=certs.Files.of(pki.root, certs.TEST_CLIENT).key.read_bytes(),
        certificate_chain=certs.Files.of(pki.root, certs.TEST_CLIENT).cert.read_bytes(),
    )
    async with recording_user_svc(issuer.security(mine)) as (users, _):
        async with secure_channel(users.port, trusting_the_next) as channel:
            with pytest.raises(grpc.aio.AioRpcError):
                await health_of(channel)
        certs.Files(mine.cert_file, mine.key_file).write(certs.issue(other, "user_svc"))
        async with secure_channel(users.port, trusting_the_next) as channel:
            assert await health_of(channel) == SERVING


async def test_the_health_port_is_plaintext_and_health_only(pki: Pki, issuer: Issuer) -> None:
    async with recording_user_svc(
        issuer.security(pki.tls("user_svc")), health_listen="127.0.0.1:0"
    ) as (users, _):
        assert users.health_port
        async with channel_to(users.health_port) as channel:
            assert await health_of(channel) == SERVING
            assert await health_of(channel, "shop.user.v1.UserService") == SERVING
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await user_pb2_grpc.UserServiceStub(channel).GetUser(
                    user_pb2.GetUserRequest(id="u1"), timeout=5
                )
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
            await users.health.enter_graceful_shutdown()
            assert await health_of(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
        async with channel_to(users.port) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await health_of(plaintext)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def reflection_lists(channel: grpc.aio.Channel, *, ask: bool = True) -> list[str]:
    """The services reflection lists. `ask=False` sends no request, only opens the stream:
    where reflection is off the server ends it UNIMPLEMENTED, and a request racing that end
    can fail on the client as INTERNAL ("execute_batch") instead."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for answer in stub.ServerReflectionInfo(iter([request] if ask else []), timeout=5):
        return [s.name for s in answer.list_services_response.service]
    return []


@pytest.mark.parametrize("on", [False, True])
async def test_reflection_is_off_in_jwt_mode_unless_enabled(
    pki: Pki, issuer: Issuer, on: bool
) -> None:
    async with (
        recording_user_svc(issuer.security(pki.tls("user_svc")), reflection_on=on) as (users, _),
        secure_channel(users.port, pki.credentials()) as channel,
    ):
        if on:
            assert "shop.user.v1.UserService" in await reflection_lists(channel)
        else:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await reflection_lists(channel, ask=False)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_the_gateway_serves_https_from_its_certificate(
    pki: Pki, issuer: Issuer, tmp_path: pathlib.Path
) -> None:
    gateway_files = certs.Files.of(pki.root, "gateway")
    async with (
        running_user_svc(tmp_path, issuer.security(pki.tls("user_svc"))) as users,
        running_order_svc(tmp_path, issuer.security(pki.tls("order_svc")), users.port) as orders,
        running_gateway(
            issuer.security(pki.tls("gateway")),
            users.port,
            orders.port,
            tls_cert_file=gateway_files.cert,
            tls_key_file=gateway_files.key,
        ) as gateway,
    ):
        assert gateway.url.startswith("https://")
        trust = ssl.create_default_context(cafile=str(pki.root / "ca.pem"))
        url = gateway.url.replace("127.0.0.1", "localhost")
        async with httpx.AsyncClient(base_url=url, verify=trust, timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200
        async with httpx.AsyncClient(base_url=url, timeout=10) as untrusting:
            with pytest.raises(httpx.ConnectError):
                await untrusting.get("/healthz")
