"""Limits per caller at the gateway in jwt mode, over the real services: a caller is the
verified subject of its token, never anything unverified."""

from __future__ import annotations

import pathlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests import tokens
from tests.security.system import (
    ORDER_SVC_SUBJECT,
    Issuer,
    running_gateway,
    running_order_svc,
    running_user_svc,
)

USER = "/v1/users/u-1"


@dataclass
class Limited:
    issuer: Issuer
    http: httpx.AsyncClient


@pytest.fixture
async def limited(tmp_path: pathlib.Path) -> AsyncIterator[Limited]:
    """The system in jwt mode; its gateway serves a caller 3 requests, then 1 per second."""
    issuer = Issuer(tmp_path / "jwks.json")
    token_file = tmp_path / "order_svc.token"
    token_file.write_text(issuer.token(ORDER_SVC_SUBJECT) + "\n")
    security = issuer.security()
    async with (
        running_user_svc(tmp_path, security) as users,
        running_order_svc(tmp_path, security, users.port, token_file=token_file) as orders,
        running_gateway(
            security, users.port, orders.port, rate_limit_per_second=1, rate_limit_burst=3
        ) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
    ):
        yield Limited(issuer, http)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def remaining(response: httpx.Response) -> int:
    assert response.status_code != 429, response.text
    state = dict(part.split("=") for part in response.headers["ratelimit"].split(";")[1:])
    return int(state["r"])


async def test_two_tokens_of_one_subject_share_its_bucket(limited: Limited) -> None:
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
    limited: Limited,
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
