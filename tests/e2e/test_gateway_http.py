"""The gateway's HTTP semantics against the real services (`make run`'s system): statuses
from the AIPs, ETag and conditional requests, idempotency keys, PATCH masks, request ids,
and, on gateways of their own over the same services, strict mode and CORS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway import RunningGateway, Settings, start
from gateway.config import services_of
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.e2e.conftest import System

ORIGIN = "https://app.example"


def new_user(base: str, **fields: str) -> dict[str, Any]:
    body = {"email": f"{uuid.uuid4().hex[:12]}@example.com", **fields}
    response = httpx.post(f"{base}/v1/users", json=body)
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


def reason(response: httpx.Response) -> str:
    details = response.json()["details"]
    return next(str(d["reason"]) for d in details if d["@type"].endswith("ErrorInfo"))


def violations(response: httpx.Response) -> list[str]:
    details = response.json()["details"]
    found = [d for d in details if d["@type"].endswith("BadRequest")]
    return [v["field"] for d in found for v in d["fieldViolations"]]


# -- statuses: 201 + Location, 204 -------------------------------------------------------


def test_create_is_201_with_the_location_that_reads_it_back(system: System) -> None:
    base = system.gateway_url
    created = httpx.post(f"{base}/v1/users", json={"email": f"{uuid.uuid4().hex}@example.com"})
    assert created.status_code == 201
    location = created.headers["location"]
    assert location == f"/v1/users/{created.json()['id']}"
    assert httpx.get(base + location).json() == created.json()


def test_create_order_location_is_the_order(system: System) -> None:
    base = system.gateway_url
    user = new_user(base)
    item = {"sku": "TEA-1", "quantity": 1, "unitPrice": {"currencyCode": "EUR", "units": "2"}}
    order = httpx.post(f"{base}/v1/orders", json={"userId": user["id"], "items": [item]})
    assert order.status_code == 201, order.text
    assert httpx.get(base + order.headers["location"]).json()["id"] == order.json()["id"]


def test_delete_is_204_without_a_body(system: System) -> None:
    base = system.gateway_url
    user = new_user(base)
    deleted = httpx.delete(f"{base}/v1/users/{user['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert httpx.get(f"{base}/v1/users/{user['id']}").status_code == 404


# -- ETag, If-Match, If-None-Match ---------------------------------------------------------


def test_reads_and_writes_carry_the_etag(system: System) -> None:
    base = system.gateway_url
    user = new_user(base)
    got = httpx.get(f"{base}/v1/users/{user['id']}")
    assert got.headers["etag"] == f'"{user["etag"]}"'
    patched = httpx.patch(f"{base}/v1/users/{user['id']}", json={"displayName": "N"})
    assert patched.headers["etag"] == f'"{patched.json()["etag"]}"'
    assert patched.headers["etag"] != got.headers["etag"]


def test_if_none_match_on_a_read_is_304(system: System) -> None:
    base = system.gateway_url
    user = new_user(base)
    etag = httpx.get(f"{base}/v1/users/{user['id']}").headers["etag"]
    same = httpx.get(f"{base}/v1/users/{user['id']}", headers={"If-None-Match": etag})
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)
    changed = httpx.get(f"{base}/v1/users/{user['id']}", headers={"If-None-Match": '"0"'})
    assert changed.status_code == 200


def test_head_is_a_get_without_the_body(system: System) -> None:
    base = system.gateway_url
    user = new_user(base)
    got = httpx.get(f"{base}/v1/users/{user['id']}")
    head = httpx.head(f"{base}/v1/users/{user['id']}")
    assert (head.status_code, head.content) == (200, b"")
    for name in ("etag", "content-length", "content-type"):
        assert head.headers[name] == got.headers[name]
    watch = httpx.head(f"{base}/v1/users:watch")
    assert watch.status_code == 405
    assert watch.headers["allow"] == "GET"


def test_if_match_makes_a_write_conditional(system: System) -> None:
    base = system.gateway_url
    user = new_user(base)
    etag = f'"{user["etag"]}"'
    ok = httpx.patch(
        f"{base}/v1/users/{user['id']}", json={"displayName": "A"}, headers={"If-Match": etag}
    )
    assert ok.status_code == 200, ok.text
    stale = httpx.patch(
        f"{base}/v1/users/{user['id']}", json={"displayName": "B"}, headers={"If-Match": etag}
    )
    assert stale.status_code == 412, stale.text
    assert stale.json()["code"] == 10  # ABORTED, as the service said it
    assert httpx.get(f"{base}/v1/users/{user['id']}").json()["displayName"] == "A"


def test_a_stale_etag_in_the_body_stays_409(system: System) -> None:
    base = system.gateway_url
    user = new_user(base)
    httpx.patch(f"{base}/v1/users/{user['id']}", json={"displayName": "A"})
    stale = httpx.patch(
        f"{base}/v1/users/{user['id']}", json={"displayName": "B", "etag": user["etag"]}
    )
    assert stale.status_code == 409, stale.text


def test_if_match_on_delete_and_on_a_top_level_etag(system: System) -> None:
    base = system.gateway_url
    user = new_user(base)
    stale = httpx.delete(f"{base}/v1/users/{user['id']}", headers={"If-Match": '"nope"'})
    assert stale.status_code == 412
    current = httpx.get(f"{base}/v1/users/{user['id']}").headers["etag"]
    deleted = httpx.delete(f"{base}/v1/users/{user['id']}", headers={"If-Match": current})
    assert deleted.status_code == 204


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("unquoted", "quoted"),
        ('"a", "b"', "exactly one"),
    ],
)
def test_a_bad_if_match_is_400_naming_the_header(system: System, value: str, why: str) -> None:
    base = system.gateway_url
    user = new_user(base)
    bad = httpx.delete(f"{base}/v1/users/{user['id']}", headers={"If-Match": value})
    assert bad.status_code == 400
    assert violations(bad) == ["If-Match"]
    assert why in bad.json()["message"]
    assert httpx.get(f"{base}/v1/users/{user['id']}").status_code == 200  # nothing changed


def test_a_weak_if_match_never_holds_for_a_write(system: System) -> None:
    base = system.gateway_url
    user = new_user(base)
    weak = httpx.delete(
        f"{base}/v1/users/{user['id']}", headers={"If-Match": f'W/"{user["etag"]}"'}
    )
    assert weak.status_code == 412
    assert reason(weak) == "PRECONDITION_FAILED"
    assert httpx.get(f"{base}/v1/users/{user['id']}").status_code == 200


def test_if_match_on_a_create_cannot_hold(system: System) -> None:
    base = system.gateway_url
    email = f"{uuid.uuid4().hex}@example.com"
    created = httpx.post(f"{base}/v1/users", json={"email": email}, headers={"If-Match": "*"})
    assert created.status_code == 412
    listed = httpx.get(f"{base}/v1/users", params={"pageSize": 1000}).json()["users"]
    assert email not in [u["email"] for u in listed]


def test_if_none_match_over_several_header_lines(system: System) -> None:
    base = system.gateway_url
    user = new_user(base)
    etag = httpx.get(f"{base}/v1/users/{user['id']}").headers["etag"]
    lines = [("If-None-Match", '"other"'), ("If-None-Match", etag)]
    assert httpx.get(f"{base}/v1/users/{user['id']}", headers=lines).status_code == 304


def test_if_match_and_a_different_body_etag_conflict(system: System) -> None:
    base = system.gateway_url
    user = new_user(base)
    both = httpx.patch(
        f"{base}/v1/users/{user['id']}",
        json={"displayName": "B", "etag": user["etag"]},
        headers={"If-Match": '"other"'},
    )
    assert both.status_code == 400
    assert violations(both) == ["If-Match"]


# -- Idempotency-Key ----------------------------------------------------------------------


def test_idempotency_key_becomes_the_request_id(system: System) -> None:
    base = system.gateway_url
    key = uuid.uuid4().hex
    body = {"email": f"{key}@example.com"}
    first = httpx.post(f"{base}/v1/users", json=body, headers={"Idempotency-Key": key})
    again = httpx.post(f"{base}/v1/users", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = httpx.post(
        f"{base}/v1/users", json={"email": f"x{key}@example.com"}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 400, other.text  # the same key for another request


def test_idempotency_key_and_a_different_request_id_conflict(system: System) -> None:
    response = httpx.post(
        f"{system.gateway_url}/v1/users?requestId=a",
        json={"email": f"{uuid.uuid4().hex}@example.com"},
        headers={"Idempotency-Key": "b"},
    )
    assert response.status_code == 400
    assert violations(response) == ["Idempotency-Key"]


# -- PATCH masks --------------------------------------------------------------------------


def test_patch_without_a_mask_updates_the_keys_sent(system: System) -> None:
    base = system.gateway_url
    user = new_user(base, displayName="Lin")
    # An empty string clears the field: the mask names it because the key was sent.
    cleared = httpx.patch(f"{base}/v1/users/{user['id']}", json={"displayName": ""})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["displayName"] == ""
    assert cleared.json()["email"] == user["email"]


def test_patch_with_an_explicit_mask_keeps_it(system: System) -> None:
    base = system.gateway_url
    user = new_user(base, displayName="Lin")
    email = f"{uuid.uuid4().hex}@example.com"
    patched = httpx.patch(
        f"{base}/v1/users/{user['id']}?updateMask=email",
        json={"displayName": "ignored", "email": email},
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["email"], patched.json()["displayName"]) == (email, "Lin")


def test_patch_mask_leaves_out_the_etag_and_output_only_fields(system: System) -> None:
    base = system.gateway_url
    user = new_user(base, displayName="Lin")
    patched = httpx.patch(
        f"{base}/v1/users/{user['id']}",
        json={"displayName": "Kim", "etag": user["etag"], "createTime": user["createTime"]},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["displayName"] == "Kim"


# -- OpenAPI and its docs page -------------------------------------------------------------


def test_the_openapi_document_and_its_docs_page_are_served(system: System) -> None:
    base = system.gateway_url
    spec = httpx.get(f"{base}/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["openapi"] == "3.1.0"
    assert "/v1/users/{id}" in spec.json()["paths"]
    docs = httpx.get(f"{base}/docs")
    assert docs.headers["content-type"] == "text/html; charset=utf-8"
    assert '"/openapi.json"' in docs.text
    script = httpx.get(f"{base}/docs/swagger-ui-bundle.js")  # from the gateway, not a CDN
    assert script.status_code == 200
    assert b"SwaggerUIBundle" in script.content


# -- X-Request-Id -------------------------------------------------------------------------


def test_a_request_id_is_returned_and_generated(system: System) -> None:
    base = system.gateway_url
    given = httpx.get(f"{base}/v1/users?pageSize=1", headers={"X-Request-Id": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = httpx.get(f"{base}/v1/users/01a21966-e263-7607-918a-d4d32f874249")
    assert made.status_code == 404
    assert len(made.headers["x-request-id"]) == 32


def test_the_client_cannot_forge_what_the_gateway_forwards(system: System) -> None:
    for key in ("X-Request-Id", "X-Forwarded-For", "X-Forwarded-Host"):
        response = httpx.get(
            f"{system.gateway_url}/v1/users", headers={f"Grpc-Metadata-{key}": "forged"}
        )
        assert response.status_code == 400, key
        assert violations(response) == [f"grpc-metadata-{key.lower()}"]


@pytest.mark.parametrize("header", ["X-Forwarded-For", "X-Forwarded-Host"])
def test_a_forwarded_header_grpc_cannot_carry_is_400(system: System, header: str) -> None:
    response = httpx.get(f"{system.gateway_url}/v1/users", headers={header.encode(): "é".encode()})
    assert response.status_code == 400
    assert violations(response) == [header.lower()]


def test_too_much_metadata_is_431(system: System) -> None:
    response = httpx.get(f"{system.gateway_url}/v1/users", headers={"Grpc-Metadata-X": "v" * 9000})
    assert response.status_code == 431
    assert violations(response) == ["grpc-metadata-*"]


def test_an_unusable_request_id_is_400(system: System) -> None:
    response = httpx.get(f"{system.gateway_url}/v1/users", headers={"X-Request-Id": "x" * 129})
    assert response.status_code == 400
    assert violations(response) == ["x-request-id"]
    assert response.headers["x-request-id"] != "x" * 129


# -- gateways of their own: strict mode and CORS -------------------------------------------


def settings(system: System, **overrides: Any) -> Settings:
    return Settings(
        backends=services_of(user_pb2.DESCRIPTOR, system.user_addr)
        | services_of(order_pb2.DESCRIPTOR, system.order_addr),
        listen="127.0.0.1:0",
        grace_seconds=1,
        **overrides,
    )


@pytest.fixture
async def strict(system: System) -> AsyncIterator[httpx.AsyncClient]:
    running: RunningGateway = await start(settings(system, strict=True))
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
            yield client
    finally:
        await running.stop()


@pytest.fixture
async def cors(system: System) -> AsyncIterator[httpx.AsyncClient]:
    running = await start(settings(system, cors_origins=(ORIGIN,)))
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
            yield client
    finally:
        await running.stop()


async def test_strict_refuses_unknown_json_fields(strict: httpx.AsyncClient) -> None:
    response = await strict.post("/v1/users", json={"email": "a@example.com", "nickname": "x"})
    assert response.status_code == 400
    assert violations(response) == ["nickname"]


async def test_strict_refuses_unknown_query_parameters(strict: httpx.AsyncClient) -> None:
    response = await strict.get("/v1/users", params={"pageSize": 1, "pagesize": 2})
    assert response.status_code == 400
    assert violations(response) == ["pagesize"]


async def test_strict_refuses_a_body_on_a_get(strict: httpx.AsyncClient) -> None:
    response = await strict.request("GET", "/v1/users", content=b'{"pageSize": 1}')
    assert response.status_code == 400
    assert reason(response) == "BODY_NOT_ALLOWED"


async def test_strict_wants_a_json_content_type(strict: httpx.AsyncClient) -> None:
    body = b'{"email": "t@example.com"}'
    plain = await strict.post("/v1/users", content=body, headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    assert violations(plain) == ["content-type"]
    typed = {"Content-Type": "application/json; charset=utf-8"}
    assert (await strict.post("/v1/users", content=body, headers=typed)).status_code != 415


def test_a_browser_cannot_post_a_simple_request(system: System) -> None:
    # text/plain needs no preflight: without this check any page could write cross-origin.
    response = httpx.post(
        f"{system.gateway_url}/v1/users",
        content=b'{"email": "csrf@example.com"}',
        headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
    )
    assert response.status_code == 415
    without_origin = httpx.post(
        f"{system.gateway_url}/v1/users",
        content=f'{{"email": "{uuid.uuid4().hex}@example.com"}}'.encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert without_origin.status_code == 201  # curl -d: lenient, as grpc-gateway is


async def test_strict_refuses_a_field_in_both_path_and_body(strict: httpx.AsyncClient) -> None:
    response = await strict.patch("/v1/users/abc", json={"id": "other", "displayName": "x"})
    assert response.status_code == 400
    assert violations(response) == ["user.id"]


def test_lenient_by_default(system: System) -> None:
    base = system.gateway_url
    user = new_user(base)
    response = httpx.patch(
        f"{base}/v1/users/{user['id']}?unknown=1",
        json={"id": "other", "displayName": "x", "nickname": "y"},
    )
    assert response.status_code == 200, response.text  # the path's id wins
    assert response.json()["id"] == user["id"]


async def test_cors_preflight_names_the_paths_methods(cors: httpx.AsyncClient) -> None:
    response = await cors.options(
        "/v1/users/abc",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "content-type, if-match",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-methods"] == "DELETE, GET, HEAD, OPTIONS, PATCH"
    assert response.headers["access-control-allow-headers"] == "content-type, if-match"


async def test_cors_actual_request_exposes_headers(cors: httpx.AsyncClient) -> None:
    response = await cors.get("/v1/users?pageSize=1", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "etag" in response.headers["access-control-expose-headers"]
    assert response.headers["vary"] == "Origin"


async def test_cors_other_origins_get_no_grant(cors: httpx.AsyncClient) -> None:
    actual = await cors.get("/v1/users?pageSize=1", headers={"Origin": "https://evil.example"})
    assert actual.status_code == 200
    assert "access-control-allow-origin" not in actual.headers
    assert actual.headers["vary"] == "Origin"  # a cache must not reuse it for another origin
    plain = await cors.get("/v1/users?pageSize=1")
    assert plain.headers["vary"] == "Origin"
    preflight = await cors.options(
        "/v1/users",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 403
    assert reason(preflight) == "CORS_ORIGIN_NOT_ALLOWED"


async def test_cors_preflight_refusals(cors: httpx.AsyncClient) -> None:
    method = await cors.options(
        "/v1/users", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}
    )
    assert method.status_code == 405
    assert method.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    header = await cors.options(
        "/v1/users",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-secret",
        },
    )
    assert header.status_code == 403
    assert reason(header) == "CORS_HEADER_NOT_ALLOWED"
    missing = await cors.options(
        "/v2/nothing", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    assert missing.status_code == 404


async def test_cors_grants_errors_and_streams_too(cors: httpx.AsyncClient) -> None:
    missing = await cors.get("/v1/users/x", headers={"Origin": ORIGIN})
    assert missing.status_code == 400
    assert missing.headers["access-control-allow-origin"] == ORIGIN
    async with cors.stream(
        "GET", "/v1/users:watch?progressNotify=true", headers={"Origin": ORIGIN}
    ) as stream:
        assert stream.headers["access-control-allow-origin"] == ORIGIN
        assert len(stream.headers["x-request-id"]) == 32


async def test_plain_options_lists_the_methods(cors: httpx.AsyncClient) -> None:
    response = await cors.options("/v1/orders/o-1:cancel")
    assert (response.status_code, response.headers["allow"]) == (204, "OPTIONS, POST")


# -- deadlines -------------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["0S", "0n", "0m"])
def test_a_write_whose_deadline_has_passed_is_not_started(system: System, timeout: str) -> None:
    base = system.gateway_url
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    late = httpx.post(f"{base}/v1/users", json={"email": email}, headers={"Grpc-Timeout": timeout})
    assert late.status_code == 504, late.text
    assert reason(late) == "DEADLINE_EXCEEDED"
    emails = [
        u["email"] for u in httpx.get(f"{base}/v1/users", params={"pageSize": 1000}).json()["users"]
    ]
    assert email not in emails
