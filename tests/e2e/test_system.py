"""End to end: the three real processes, driven by grpcurl (reflection only) and plain HTTP."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import System, grpcurl_binary

pytestmark = pytest.mark.e2e


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [grpcurl_binary(), "-plaintext", *args], capture_output=True, text=True, timeout=30
    )


def call(address: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    result = grpcurl("-d", json.dumps(body), address, method)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def new_email() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}@example.com"


def test_grpcurl_lists_services_through_reflection(system: System) -> None:
    for address, service in (
        (system.user_addr, "shop.user.v1.UserService"),
        (system.order_addr, "shop.order.v1.OrderService"),
    ):
        listed = grpcurl(address, "list")
        assert listed.returncode == 0, listed.stderr
        assert service in listed.stdout.split()
        assert "grpc.health.v1.Health" in listed.stdout.split()
        described = grpcurl(address, "describe", service)
        assert described.returncode == 0, described.stderr
        assert "google.api.http" in described.stdout or "rpc " in described.stdout


def test_grpcurl_describes_messages(system: System) -> None:
    described = grpcurl(system.order_addr, "describe", "shop.order.v1.Order")
    assert described.returncode == 0, described.stderr
    assert "repeated .shop.order.v1.LineItem items" in described.stdout


def test_user_created_over_grpc_is_read_over_rest(system: System) -> None:
    email = new_email()
    created = call(
        system.user_addr,
        "shop.user.v1.UserService/CreateUser",
        {"user": {"email": email, "display_name": "Grace"}},
    )["user"]
    response = httpx.get(f"{system.gateway_url}/v1/users/{created['id']}")
    assert response.status_code == 200
    assert response.json()["email"] == email
    assert response.json()["displayName"] == "Grace"


def test_order_lifecycle_over_rest(system: System) -> None:
    base = system.gateway_url
    user = httpx.post(f"{base}/v1/users", json={"email": new_email(), "displayName": "Lin"})
    assert user.status_code == 201, user.text
    assert user.headers["location"] == f"/v1/users/{user.json()['id']}"
    user_id = user.json()["id"]
    order = httpx.post(
        f"{base}/v1/orders",
        json={
            "userId": user_id,
            "items": [
                {"sku": "TEA-1", "quantity": 2, "unitPrice": {"currencyCode": "EUR", "units": "3"}}
            ],
        },
    )
    assert order.status_code == 201, order.text
    body = order.json()
    assert body["state"] == "STATE_PENDING"
    assert body["total"] == {"currencyCode": "EUR", "units": "6", "nanos": 0}
    cancelled = httpx.post(f"{base}/v1/orders/{body['id']}:cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "STATE_CANCELLED"
    listed = httpx.get(f"{base}/v1/orders", params={"userId": user_id})
    assert [o["id"] for o in listed.json()["orders"]] == [body["id"]]
    again = httpx.post(f"{base}/v1/orders/{body['id']}:cancel", json={})
    assert again.status_code == 400
    assert again.json()["details"][0]["reason"] == "ORDER_ALREADY_CANCELLED"


def test_order_for_unknown_user_is_refused_with_details(system: System) -> None:
    result = grpcurl(
        "-format-error",
        "-d",
        json.dumps(
            {
                "order": {
                    "user_id": "01a21966-e263-7607-918a-d4d32f874249",
                    "items": [{"sku": "A", "quantity": 1, "unit_price": {"currency_code": "EUR"}}],
                }
            }
        ),
        system.order_addr,
        "shop.order.v1.OrderService/CreateOrder",
    )
    assert result.returncode != 0
    status = json.loads(result.stderr)  # grpcurl writes the -format-error JSON to stderr
    assert status["code"] == 9  # FAILED_PRECONDITION
    assert status["details"][0]["reason"] == "USER_NOT_FOUND"


def test_rest_errors_are_google_rpc_status(system: System) -> None:
    missing = httpx.get(f"{system.gateway_url}/v1/users/01a21966-e263-7607-918a-d4d32f874249")
    assert missing.status_code == 404
    assert missing.json()["code"] == 5
    bad = httpx.get(f"{system.gateway_url}/v1/users/not-an-id")
    assert bad.status_code == 400
    violations = bad.json()["details"][1]["fieldViolations"]
    assert violations[0]["field"] == "id"


def test_health_is_serving(system: System) -> None:
    for address in (system.user_addr, system.order_addr):
        result = call(address, "grpc.health.v1.Health/Check", {})
        assert result == {"status": "SERVING"}
    assert httpx.get(f"{system.gateway_url}/healthz").status_code == 200


def test_grpcurl_follows_the_user_feed(system: System) -> None:
    # As the README shows: watch from a revision; grpcurl prints each response as it comes.
    created = call(
        system.user_addr,
        "shop.user.v1.UserService/CreateUser",
        {"user": {"email": new_email(), "display_name": "Feed"}},
    )["user"]
    watched = grpcurl(
        "-max-time",
        "2",
        "-d",
        json.dumps({"start_revision": int(created["etag"]), "progress_notify": True}),
        system.user_addr,
        "shop.user.v1.UserService/WatchUsers",
    )
    assert "DeadlineExceeded" in watched.stderr  # the stream only ends when grpcurl gives up
    first = json.loads(watched.stdout[: watched.stdout.index("\n}\n") + 2])
    event = first["events"][0]
    assert event["type"] == "TYPE_PUT"
    assert event["user"]["id"] == created["id"]
    assert event["revision"] == created["etag"]  # int64 in proto JSON: a string


def test_deleting_a_user_cancels_their_open_orders_and_the_feed_says_so(system: System) -> None:
    base = system.gateway_url
    user_id = httpx.post(
        f"{base}/v1/users", json={"email": new_email(), "displayName": "Gone"}
    ).json()["id"]
    item = {"sku": "TEA-1", "quantity": 1, "unitPrice": {"currencyCode": "EUR", "units": "3"}}
    order = httpx.post(f"{base}/v1/orders", json={"userId": user_id, "items": [item]}).json()
    listed = httpx.get(f"{base}/v1/orders", params={"userId": user_id}).json()
    assert httpx.delete(f"{base}/v1/users/{user_id}").status_code == 204
    # The gateway answers once the first response is there (its status depends on it), so
    # the watch starts after the delete, from the listing's revision: nothing is missed.
    with httpx.stream(
        "GET",
        f"{base}/v1/orders:watch",
        params={"userId": user_id, "startRevision": str(int(listed["revision"]) + 1)},
        timeout=15,
    ) as stream:
        for line in stream.iter_lines():
            events = json.loads(line)["result"].get("events", [])
            if events:
                break
    assert [(e["order"]["id"], e["order"]["state"]) for e in events] == [
        (order["id"], "STATE_CANCELLED")
    ]
    refused = httpx.post(f"{base}/v1/orders", json={"userId": user_id, "items": [item]})
    assert refused.status_code == 400
    assert refused.json()["details"][0]["reason"] == "USER_NOT_FOUND"
