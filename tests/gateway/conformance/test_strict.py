"""Strict mode (`Settings(strict=True)`): a query key that sets nothing is a 400 naming the
key as sent, where the lenient default ignores it (test_values.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.gateway.conformance.protos import Conformance
from tests.gateway.conformance.support import message, received, refusal

pytestmark = pytest.mark.asyncio(loop_scope="package")


@pytest.mark.parametrize(
    ("method", "url", "key"),
    [
        ("GET", "/v1/query?text=ok&nope=1", "nope"),
        ("GET", "/v1/query?nested.nope=1", "nested.nope"),
        ("GET", "/v1/query?nested=x", "nested"),
        ("GET", "/v1/query?labels=x", "labels"),
        ("GET", "/v1/query?text[a]=x", "text[a]"),
        ("GET", "/v1/query?nestedByName[k]=x", "nestedByName[k]"),
        ("GET", "/v1/things/t1?id=other", "id"),  # bound by the path
        ("PUT", "/v1/things/t1?nested.name=x", "nested.name"),  # bound by the body
        ("POST", "/v1/things?text=x", "text"),  # the body is the whole request
        ("GET", "/v1/things/t1:watch?nope=1", "nope"),
    ],
)
async def test_strict_refuses_a_query_key_that_sets_nothing(
    strict_client: httpx.AsyncClient, method: str, url: str, key: str
) -> None:
    body = b"{}" if method in ("POST", "PUT") else None
    headers = {"content-type": "application/json"}
    response = await strict_client.request(method, url, content=body, headers=headers)
    assert refusal(response, 400) == ("INVALID_QUERY_PARAMETER", key)
    assert response.json()["message"].startswith("unknown query parameter")


async def test_strict_takes_every_key_that_sets_a_field(
    strict_client: httpx.AsyncClient, api: Conformance
) -> None:
    fields: dict[str, Any] = {"displayName": "d", "labels": {"k": "v"}, "nested": {"count": "1"}}
    response = await strict_client.get("/v1/query?displayName=d&labels[k]=v&nested.count=1")
    assert received(api, response, "Query") == message(api, fields)
