"""The gateway's token check on its own: the verified subject is what later code reads
(`verified_subject()`, for per-caller limits); a bad token is a 401 naming the reason."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator

import pytest

from gateway.authentication import EdgeAuthentication, verified_subject
from gateway.errors import RequestError
from gateway.headers import RequestHeaders
from tests import tokens
from tests.security.system import Issuer


@pytest.fixture
async def edge(tmp_path: pathlib.Path) -> AsyncIterator[tuple[EdgeAuthentication, Issuer]]:
    issuer = Issuer(tmp_path / "jwks.json")
    authentication = EdgeAuthentication(tokens.settings(issuer.jwks))
    await authentication.start()
    try:
        yield authentication, issuer
    finally:
        await authentication.stop()


def headers(*authorizations: bytes) -> RequestHeaders:
    return RequestHeaders([(b"host", b"x"), *((b"authorization", a) for a in authorizations)])


async def test_a_verified_subject_is_known_for_the_request(
    edge: tuple[EdgeAuthentication, Issuer],
) -> None:
    authentication, issuer = edge

    async def request() -> str | None:
        claims = await authentication.verify(headers(f"Bearer {issuer.admin('root')}".encode()))
        assert claims is not None
        assert claims.is_admin
        return verified_subject()

    assert await asyncio.create_task(request()) == "root"  # a request is a task of its own
    assert verified_subject() is None  # another request's context knows nothing of it


async def test_an_anonymous_request_goes_on(edge: tuple[EdgeAuthentication, Issuer]) -> None:
    authentication, _ = edge
    assert await authentication.verify(headers()) is None
    assert verified_subject() is None


@pytest.mark.parametrize(
    ("authorization", "reason", "challenge"),
    [
        (b"Bearer not.a.jwt", "TOKEN_INVALID", b'Bearer error="invalid_token"'),
        (b"Basic YTpi", "MALFORMED_AUTHORIZATION", b'Bearer error="invalid_request"'),
        (b"Bearer \xff", "TOKEN_INVALID", b'Bearer error="invalid_token"'),
    ],
)
async def test_a_bad_authorization_is_a_401_with_its_reason(
    edge: tuple[EdgeAuthentication, Issuer], authorization: bytes, reason: str, challenge: bytes
) -> None:
    authentication, _ = edge
    with pytest.raises(RequestError) as caught:
        await authentication.verify(headers(authorization))
    assert caught.value.http_status == 401
    assert caught.value.reason == reason
    (name, value), *_ = caught.value.headers
    assert name == b"www-authenticate"
    assert value.startswith(challenge)
    assert len(caught.value.headers) == 1


async def test_two_authorizations_are_refused(edge: tuple[EdgeAuthentication, Issuer]) -> None:
    authentication, issuer = edge
    token = f"Bearer {issuer.token()}".encode()
    with pytest.raises(RequestError) as caught:
        await authentication.verify(headers(token, token))
    assert caught.value.reason == "MALFORMED_AUTHORIZATION"
