"""The system in jwt mode without TLS: the real user and order services and the gateway,
tokens signed by a test issuer whose keys are in a JWKS file; the order service calls the
user service with its own token (its `sub` named in `SHOP_SERVICE_SUBJECTS`)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import pathlib
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from google.type import money_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from order_svc.user_feed import HEALTH_NAME
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.domain import new_id
from tests import tokens
from tests.security.system import (
    ORDER_SVC_SUBJECT,
    Issuer,
    JwtSystem,
    RecordingUsers,
    jwt_system,
    recording_user_svc,
    running_order_svc,
)
from tests.support import channel_to, eventually


@pytest.fixture
async def system(tmp_path: pathlib.Path) -> AsyncIterator[JwtSystem]:
    async with jwt_system(tmp_path) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_create_user_over_grpc_records_the_tokens_subject(system: JwtSystem) -> None:
    async with channel_to(system.users.port) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        created = await stub.CreateUser(
            user_pb2.CreateUserRequest(user=user_pb2.User(email="a@example.com")),
            metadata=tuple(bearer(system.issuer.token("alice")).items()),
            timeout=5,
        )
        assert created.user.subject == "alice"
        for_bob = await stub.CreateUser(
            user_pb2.CreateUserRequest(user=user_pb2.User(email="b@example.com"), subject="bob"),
            metadata=tuple(bearer(system.issuer.admin()).items()),
            timeout=5,
        )
        assert for_bob.user.subject == "bob"


async def test_through_the_gateway_a_user_orders_and_the_order_service_follows(
    system: JwtSystem,
) -> None:
    alice = bearer(system.issuer.token("alice"))
    created = await system.http.post(
        "/v1/users", json={"email": "alice@example.com"}, headers=alice
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["subject"] == "alice"
    ordered = await system.http.post(
        "/v1/orders",
        json={
            "userId": user["id"],
            "items": [
                {"sku": "TEA-1", "quantity": 2, "unitPrice": {"currencyCode": "EUR", "units": "3"}}
            ],
        },
        headers=alice,
    )
    assert ordered.status_code == 201, ordered.text

    async with channel_to(system.orders.port) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def following() -> bool:
            answer = await health.Check(health_pb2.HealthCheckRequest(service=HEALTH_NAME))
            return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

        await eventually(following, 10, "the order service following the user feed")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "TOKEN_EXPIRED"),
        ("wrong_issuer", "TOKEN_ISSUER"),
        ("wrong_audience", "TOKEN_AUDIENCE"),
        ("unknown_kid", "TOKEN_KEY_UNKNOWN"),
        ("alg_none", "TOKEN_ALGORITHM"),
    ],
)
async def test_the_gateway_refuses_a_bad_token_with_401(
    system: JwtSystem, case: str, reason: str
) -> None:
    now = int(time.time())
    issuer = system.issuer
    token = {
        "expired": lambda: issuer.token(exp=now - 3600, iat=now - 7200),
        "wrong_issuer": lambda: issuer.token(issuer="https://evil.test"),
        "wrong_audience": lambda: issuer.token(audience="another-api"),
        "unknown_kid": lambda: tokens.new_signing_key().sign(tokens.claims()),
        "alg_none": lambda: none_token(tokens.claims()),
    }[case]()
    answer = await system.http.post(
        "/v1/users", json={"email": "x@example.com"}, headers=bearer(token)
    )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    body = answer.json()
    assert body["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert body["details"][0]["reason"] == reason
    assert token not in answer.text


async def test_the_gateways_refusal_is_logged_once_never_the_token(
    system: JwtSystem, caplog: pytest.LogCaptureFixture
) -> None:
    token = system.issuer.token(issuer="https://evil.test")
    caplog.set_level(logging.WARNING, logger="gateway.app")
    answer = await system.http.get("/v1/users/x", headers=bearer(token))
    assert answer.status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.app"]
    assert len(lines) == 1, lines
    assert "GET '/v1/users/x'" in lines[0]
    assert "TOKEN_ISSUER" in lines[0]
    assert all(part not in lines[0] for part in token.split("."))


def none_token(claims: dict[str, object]) -> str:
    """An unsigned token (`alg: none`) naming the issuer's key."""

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_the_gateway_refuses_a_malformed_authorization(system: JwtSystem) -> None:
    answer = await system.http.get("/v1/users/x", headers={"authorization": "Basic YTpi"})
    assert answer.status_code == 401
    assert answer.json()["details"][0]["reason"] == "MALFORMED_AUTHORIZATION"
    assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_the_docs_are_off_and_health_is_open_in_jwt_mode(system: JwtSystem) -> None:
    for path in ("/docs", "/openapi.json", "/console", "/console/console.js"):
        assert (await system.http.get(path)).status_code == 404
    assert (await system.http.get("/healthz")).status_code == 200


async def test_the_order_service_calls_with_its_own_token_not_its_callers(
    tmp_path: pathlib.Path,
) -> None:
    issuer = Issuer(tmp_path / "jwks.json")
    token_file = tmp_path / "order_svc.token"
    token_file.write_text(issuer.token(ORDER_SVC_SUBJECT))
    security = issuer.security()
    recorder: RecordingUsers
    async with (
        recording_user_svc(security) as (users, recorder),
        running_order_svc(tmp_path, security, users.port, token_file=token_file) as orders,
        channel_to(orders.port) as channel,
    ):
        await eventually(lambda: _called(recorder, "WatchUsers"), 10, "the feed followed")
        price = money_pb2.Money(currency_code="EUR", units=3)
        item = order_pb2.LineItem(sku="SKU-1", quantity=1, unit_price=price)
        order = order_pb2.Order(user_id=new_id(), items=[item])
        with contextlib.suppress(grpc.aio.AioRpcError):  # the outcome is the policy's
            await order_pb2_grpc.OrderServiceStub(channel).CreateOrder(
                order_pb2.CreateOrderRequest(order=order),
                metadata=tuple(bearer(issuer.token("alice")).items()),
                timeout=5,
            )
        assert _methods(recorder) >= {"ListUsers", "WatchUsers", "GetUser"}
        assert {c.service for _, c in recorder.callers} == {"order_svc"}
        assert {c.subject for _, c in recorder.callers} == {None}


async def _called(recorder: RecordingUsers, method: str) -> bool:
    return method in _methods(recorder)


def _methods(recorder: RecordingUsers) -> set[str]:
    return {method for method, _ in recorder.callers}
