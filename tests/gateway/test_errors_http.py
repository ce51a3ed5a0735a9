"""Errors through the running gateway: the backend's, with their details and HTTP status,
and the gateway's own refusals, each a JSON google.rpc.Status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

from gateway.errors import HTTP_STATUS
from tests.gateway.conftest import MAX_BODY_BYTES

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def details_by_type(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {detail["@type"]: detail for detail in body["details"]}


def assert_refusal(response: httpx.Response, status: int, reason: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    details = details_by_type(body)
    assert details[ERROR_INFO]["reason"] == reason
    assert details[ERROR_INFO]["domain"] == "shop.dev"
    if field is not None:
        assert details[BAD_REQUEST]["fieldViolations"][0]["field"] == field


@pytest.mark.parametrize(
    "code",
    [c for c in grpc.StatusCode if c not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED)],
    ids=lambda c: c.name,
)
async def test_backend_errors_keep_code_message_and_details(
    client: httpx.AsyncClient, code: grpc.StatusCode
) -> None:
    response = await client.get(f"/v1/users/code-{code.value[0]}")
    assert response.status_code == HTTP_STATUS[code]
    body = response.json()
    assert body["code"] == code.value[0]
    assert body["message"] == f"failed with {code.name}"
    info, bad_request = body["details"]
    assert info == {
        "@type": ERROR_INFO,
        "reason": code.name,
        "domain": "shop.dev",
        "metadata": {},
    }
    assert bad_request["@type"] == BAD_REQUEST
    assert bad_request["fieldViolations"][0]["field"] == "id"


async def test_a_call_the_backend_cancels_is_a_retryable_503(client: httpx.AsyncClient) -> None:
    """Not 499: the client did not leave; the service cut the call (a stopping grpc server
    cancels the calls it has not started), and the client may retry it."""
    response = await client.get(f"/v1/users/code-{grpc.StatusCode.CANCELLED.value[0]}")
    assert_refusal(response, 503, "BACKEND_CANCELLED", None)
    assert response.json()["code"] == grpc.StatusCode.UNAVAILABLE.value[0]


async def test_unauthenticated_has_www_authenticate(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/users/code-16")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing/here")
    assert_refusal(response, 404, "ROUTE_NOT_FOUND", None)
    assert response.json()["code"] == grpc.StatusCode.NOT_FOUND.value[0]


async def test_known_path_with_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/users/u-1", json={})
    assert_refusal(response, 405, "METHOD_NOT_ALLOWED", None)
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH"


async def test_wrong_method_on_a_verb_is_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/orders/o-1:cancel")
    assert_refusal(response, 405, "METHOD_NOT_ALLOWED", None)
    assert response.headers["allow"] == "POST"


async def test_declared_oversize_body_is_413_before_it_is_read(
    client: httpx.AsyncClient,
) -> None:
    # Not JSON at all: had it been parsed, this would be a 400.
    response = await client.post("/v1/users", content=b"x" * (MAX_BODY_BYTES + 1))
    assert_refusal(response, 413, "BODY_TOO_LARGE", "")


async def test_chunked_oversize_body_is_413_while_reading(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * (MAX_BODY_BYTES // 2)

    response = await client.post("/v1/users", content=chunks())
    assert_refusal(response, 413, "BODY_TOO_LARGE", "")


async def test_a_body_at_the_limit_is_taken(client: httpx.AsyncClient) -> None:
    name = "n" * (MAX_BODY_BYTES - len('{"displayName":""}'))
    response = await client.post("/v1/users", content=f'{{"displayName":"{name}"}}'.encode())
    assert response.status_code == 201, response.text


async def test_malformed_json_is_400_with_a_violation(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/users", content=b'{"email": ')
    assert_refusal(response, 400, "INVALID_JSON", "")
    assert response.json()["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def test_wrong_type_names_the_field_as_spelled(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/orders", json={"items": [{"quantity": "two"}]})
    assert_refusal(response, 400, "INVALID_FIELD", "items[0].quantity")
    response = await client.post("/v1/orders", json={"user_id": 7})
    assert_refusal(response, 400, "INVALID_FIELD", "user_id")


async def test_bad_query_value_is_400_naming_the_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/users", params={"pageSize": "ten"})
    assert_refusal(response, 400, "INVALID_QUERY_PARAMETER", "pageSize")
    violation = details_by_type(response.json())[BAD_REQUEST]["fieldViolations"][0]
    assert "ten" in violation["description"]


async def test_unknown_query_parameters_are_ignored(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/users", params={"colour": "blue"})
    assert response.status_code == 200


async def test_bad_grpc_timeout_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/users/u", headers={"grpc-timeout": "soon"})
    assert_refusal(response, 400, "INVALID_HEADER", "grpc-timeout")


async def test_metadata_that_grpc_refuses_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/users/u", headers={"grpc-metadata-grpc-status": "0"})
    assert_refusal(response, 400, "INVALID_HEADER", "grpc-metadata-grpc-status")
