"""Limits per caller at the gateway in jwt mode, over the real services: a caller is the
verified subject of its token, never anything unverified."""

from __future__ import annotations

import asyncio
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


async def test_a_bad_token_is_401_and_spends_no_callers_bucket_but_its_addresss(
    limited: JwtSystem,
) -> None:
    """Refused credentials have a bucket of their own per address (3 at once, then 1/s
    here): past it, the address is refused 429 before another signature is checked, except
    for a token verified before; the buckets of the subjects the bad tokens name, and of
    anonymous requests, are untouched."""
    issuer, http = limited.issuer, limited.http
    now = int(time.time())
    alice = issuer.token("alice")
    assert remaining(await http.get(USER, headers=bearer(alice))) == 2  # verified: remembered
    forged = [
        tokens.new_signing_key().sign(tokens.claims("bob")),  # a key the issuer never had
        issuer.token("bob", exp=now - 3600, iat=now - 7200),  # expired
        "not-a-jwt",
    ]
    for token in forged:
        answer = await http.get(USER, headers=bearer(token))
        assert answer.status_code == 401
        assert "ratelimit" not in answer.headers
    for token in (*forged, issuer.token("carol")):  # carol's is new: it is not checked
        answer = await http.get(USER, headers=bearer(token))
        assert answer.status_code == 429, answer.text
        assert answer.json()["details"][0]["reason"] == "RATE_LIMITED"
        assert answer.headers["retry-after"] == "1"
    # A token verified before is free to check: its subject is served from its own bucket.
    assert remaining(await http.get(USER, headers=bearer(alice))) == 1
    # Once the address's bucket refills, new tokens are checked again; bob's bucket is full.
    await asyncio.sleep(1.1)
    assert remaining(await http.get(USER, headers=bearer(issuer.token("bob")))) == 2
