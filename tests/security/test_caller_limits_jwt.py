"""Limits per caller at the gateway in jwt mode, over the real services: a caller is the
verified subject of its token, never anything unverified."""

from __future__ import annotations

import pathlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests import tokens
from tests.security.system import JwtSystem, jwt_system

USER = "/v1/users/u-1"


@pytest.fixture
async def limited(tmp_path: pathlib.Path) -> AsyncIterator[JwtSystem]:
    """The system in jwt mode; its gateway serves a caller 3 requests, then 1 per second."""
    async with jwt_system(tmp_path, rate_limit_per_second=1, rate_limit_burst=3) as system:
        yield system


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def remaining(response: httpx.Response) -> int:
    assert response.status_code != 429, response.text
    state = dict(part.split("=") for part in response.headers["ratelimit"].split(";")[1:])
    return int(state["r"])


async def test_two_tokens_of_one_subject_share_its_bucket(limited: JwtSystem) -> None:
    issuer, http = limited.issuer, limited.http
    first, second = issuer.token("alice", jti="one"), issuer.token("alice", jti="two")
    assert first != second
    lefts = [remaining(await http.get(USER, headers=bearer(t))) for t in (first, second, first)]
    assert lefts == [2, 1, 0]
    refused = await http.get(USER, headers=bearer(second))
    assert refused.status_code == 429
    assert refused.json()["details"][0]["reason"] == "RATE_LIMITED"
    assert refused.headers["retry-after"] == "1"
    # Another subject, and an anonymous caller (by its address), are served.
    assert remaining(await http.get(USER, headers=bearer(issuer.token("bob")))) == 2
    assert remaining(await http.get(USER)) == 2


async def test_a_bad_token_is_401_before_the_limiter_and_spends_no_ones_bucket(
    limited: JwtSystem,
) -> None:
    issuer, http = limited.issuer, limited.http
    now = int(time.time())
    forged = [
        tokens.new_signing_key().sign(tokens.claims("bob")),  # a key the issuer never had
        issuer.token("bob", exp=now - 3600, iat=now - 7200),  # expired
        "not-a-jwt",
    ]
    for token in forged * 3:
        answer = await http.get(USER, headers=bearer(token))
        assert answer.status_code == 401
        assert "ratelimit" not in answer.headers
    # Nine refusals naming bob spent nothing of bob's bucket, nor of the client's address.
    assert remaining(await http.get(USER, headers=bearer(issuer.token("bob")))) == 2
    assert remaining(await http.get(USER)) == 2
