"""jwt mode over gRPC, on a real server with the boundary interceptor: who the service sees
for each kind of credentials, and the UNAUTHENTICATED refusals with their reasons."""

from __future__ import annotations

import base64
import json
import logging
import pathlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.security import SecuritySettings
from shop_common.serving import Caller
from tests import tokens
from tests.security.system import ORDER_SVC_SUBJECT, Issuer, RecordingUsers, recording_user_svc
from tests.support import channel_to


@pytest.fixture
def issuer(tmp_path: pathlib.Path) -> Issuer:
    return Issuer(tmp_path / "jwks.json")


@pytest.fixture
async def served(issuer: Issuer) -> AsyncIterator[tuple[int, RecordingUsers]]:
    async with recording_user_svc(issuer.security()) as (running, recorder):
        yield running.port, recorder


async def get_user(port: int, authorization: str | None = None) -> Any:
    metadata = None if authorization is None else (("authorization", authorization),)
    async with channel_to(port) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        return await stub.GetUser(user_pb2.GetUserRequest(id="u1"), metadata=metadata, timeout=5)


async def refusal(port: int, authorization: str) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get_user(port, authorization)
    error = caught.value
    status = rpc_status.from_call(error)  # type: ignore[arg-type]  # an aio error is a call
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    return error.code(), info.reason, error.details() or ""


async def test_a_valid_token_is_its_subject(
    served: tuple[int, RecordingUsers], issuer: Issuer
) -> None:
    port, recorder = served
    await get_user(port, f"Bearer {issuer.token('alice')}")
    assert recorder.callers == [("GetUser", Caller(subject="alice"))]


async def test_the_admin_scope_makes_an_admin(
    served: tuple[int, RecordingUsers], issuer: Issuer
) -> None:
    port, recorder = served
    await get_user(port, f"Bearer {issuer.admin('root')}")
    await get_user(port, f"Bearer {issuer.token('carol', scp=['shop.admin'])}")
    assert [c for _, c in recorder.callers] == [
        Caller(subject="root", admin=True),
        Caller(subject="carol", admin=True),
    ]


async def test_a_service_subjects_token_is_that_service(
    served: tuple[int, RecordingUsers], issuer: Issuer
) -> None:
    port, recorder = served
    await get_user(port, f"Bearer {issuer.token(ORDER_SVC_SUBJECT)}")
    assert recorder.callers == [("GetUser", Caller(subject=None, service="order_svc"))]


async def test_no_credentials_is_anonymous_not_the_development_admin(
    served: tuple[int, RecordingUsers],
) -> None:
    port, recorder = served
    await get_user(port)
    assert recorder.callers == [("GetUser", Caller(subject=None))]
    assert recorder.callers[0][1].is_anonymous


async def test_development_bearers_mean_nothing_in_jwt_mode(
    served: tuple[int, RecordingUsers],
) -> None:
    port, recorder = served
    for credential in ("alice", "service:order_svc"):
        code, reason, _ = await refusal(port, f"Bearer {credential}")
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
    assert recorder.callers == []


def _none_token() -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'kid': 'x'})}.{part(tokens.claims('mallory'))}."


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "TOKEN_EXPIRED"),
        ("wrong_issuer", "TOKEN_ISSUER"),
        ("wrong_audience", "TOKEN_AUDIENCE"),
        ("unknown_kid", "TOKEN_KEY_UNKNOWN"),
        ("alg_none", "TOKEN_ALGORITHM"),
        ("other_key", "TOKEN_SIGNATURE"),
        ("not_yet_valid", "TOKEN_NOT_YET_VALID"),
    ],
)
async def test_a_bad_token_is_unauthenticated_with_its_reason(
    served: tuple[int, RecordingUsers], issuer: Issuer, case: str, reason: str
) -> None:
    port, recorder = served
    now = int(time.time())
    makers: dict[str, Callable[[], str]] = {
        "expired": lambda: issuer.token(exp=now - 3600, iat=now - 7200),
        "wrong_issuer": lambda: issuer.token(issuer="https://evil.test"),
        "wrong_audience": lambda: issuer.token(audience="another-api"),
        "unknown_kid": lambda: tokens.new_signing_key().sign(tokens.claims()),
        "alg_none": _none_token,
        "other_key": lambda: tokens.SigningKey(
            issuer.key.kid, "ES256", tokens.new_signing_key().private
        ).sign(tokens.claims()),
        "not_yet_valid": lambda: issuer.token(nbf=now + 3600),
    }
    token = makers[case]()
    code, found, message = await refusal(port, f"Bearer {token}")
    assert (code, found) == (grpc.StatusCode.UNAUTHENTICATED, reason)
    assert token not in message
    assert recorder.callers == []


async def test_a_refused_token_is_logged_once_with_the_rpc_and_reason_never_the_token(
    served: tuple[int, RecordingUsers], issuer: Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    port, _ = served
    token = issuer.token(issuer="https://evil.test")
    caplog.set_level(logging.WARNING, logger="shop_common.serving.interceptor")
    await refusal(port, f"Bearer {token}")
    lines = [r.getMessage() for r in caplog.records if r.name == "shop_common.serving.interceptor"]
    assert len(lines) == 1, lines
    assert "shop.user.v1.UserService/GetUser" in lines[0]
    assert "TOKEN_ISSUER" in lines[0]
    assert all(part not in lines[0] for part in token.split("."))


@pytest.mark.parametrize("value", ["Basic YTpi", "Bearer", "token-without-scheme"])
async def test_authorization_that_is_not_one_bearer_is_refused(
    served: tuple[int, RecordingUsers], value: str
) -> None:
    port, _ = served
    code, reason, _ = await refusal(port, value)
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "MALFORMED_AUTHORIZATION")


async def test_two_authorizations_are_refused(
    served: tuple[int, RecordingUsers], issuer: Issuer
) -> None:
    port, recorder = served
    bearer = f"Bearer {issuer.token('alice')}"
    async with channel_to(port) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetUser(
                user_pb2.GetUserRequest(id="u1"),
                metadata=(("authorization", bearer), ("authorization", "Bearer root")),
                timeout=5,
            )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert recorder.callers == []


async def test_development_mode_is_unchanged() -> None:
    async with recording_user_svc(SecuritySettings()) as (running, recorder):
        await get_user(running.port)
        await get_user(running.port, "Bearer alice")
    assert [c for _, c in recorder.callers] == [
        Caller(subject=None, admin=True),
        Caller(subject="alice"),
    ]


async def test_a_rotated_key_is_used_without_restart(
    served: tuple[int, RecordingUsers], issuer: Issuer
) -> None:
    port, recorder = served
    rotated = tokens.new_signing_key("EdDSA")
    tokens.write_jwks(issuer.jwks, issuer.key, rotated)
    await get_user(port, f"Bearer {rotated.sign(tokens.claims('dave'))}")
    assert recorder.callers == [("GetUser", Caller(subject="dave"))]
