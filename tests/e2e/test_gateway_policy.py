"""The policy table (`tests/policy_table.py`) through the REST gateway (`make run`'s system,
development identity): each RPC once as its owner and once as another user, both with
`Authorization: Bearer <subject>` (every column, in jwt mode: `tests/security/test_policy_*.py`).
The gateway only forwards the bearer: the services decide, and REST shows their decision as
403 (or 401) with a `google.rpc.Status` JSON body."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests import policy_table
from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e

ITEM = {"sku": "TEA-1", "quantity": 1, "unitPrice": {"currencyCode": "EUR", "units": "2"}}


def as_subject(subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {subject}"}


def new_subject() -> str:
    return f"rest-{uuid.uuid4().hex[:12]}"


@dataclass
class World:
    base: str
    owner: dict[str, str]
    """The owner's headers."""
    user: dict[str, Any]
    order: dict[str, Any]


def world(system: System) -> World:
    base = system.gateway_url
    owner = as_subject(new_subject())
    created = httpx.post(
        f"{base}/v1/users", json={"email": f"{uuid.uuid4().hex}@example.com"}, headers=owner
    )
    assert created.status_code == 201, created.text
    user = created.json()
    order = httpx.post(
        f"{base}/v1/orders", json={"userId": user["id"], "items": [ITEM]}, headers=owner
    )
    assert order.status_code == 201, order.text
    return World(base, owner, user, order.json())


def request(w: World, rpc: str, headers: dict[str, str]) -> httpx.Response:
    """One call of `rpc` on the owner's resources (CreateUser: for a new subject)."""
    user, order = w.user["id"], w.order["id"]
    if rpc in ("WatchUsers", "WatchOrders"):
        path = "users:watch" if rpc == "WatchUsers" else f"orders:watch?userId={user}"
        sep = "&" if "?" in path else "?"
        with httpx.stream(
            "GET", f"{w.base}/v1/{path}{sep}progressNotify=true", headers=headers, timeout=10
        ) as streamed:
            first = next(streamed.iter_lines())  # a bookmark once caught up, or the error
            return httpx.Response(
                streamed.status_code, headers=streamed.headers, content=first.encode()
            )
    calls: dict[str, tuple[str, str, Any]] = {
        "CreateUser": ("POST", "/v1/users", {"email": f"{uuid.uuid4().hex}@example.com"}),
        "GetUser": ("GET", f"/v1/users/{user}", None),
        "ListUsers": ("GET", "/v1/users", None),
        "UpdateUser": ("PATCH", f"/v1/users/{user}", {"displayName": "New"}),
        "DeleteUser": ("DELETE", f"/v1/users/{user}", None),
        "CreateOrder": ("POST", "/v1/orders", {"userId": user, "items": [ITEM]}),
        "GetOrder": ("GET", f"/v1/orders/{order}", None),
        "ListOrders": ("GET", f"/v1/orders?userId={user}", None),
        "CancelOrder": ("POST", f"/v1/orders/{order}:cancel", {}),
    }
    method, path, body = calls[rpc]
    return httpx.request(method, w.base + path, json=body, headers=headers)


RPCS = list(policy_table.TABLE)


def expected(rpc: str, caller: str) -> tuple[int, tuple[int, str] | None]:
    """The cell's HTTP status, and for a refusal its Status body's code and reason, from
    the shared table (`tests/policy_table.py`)."""
    outcome = policy_table.TABLE[rpc][caller]
    if outcome.ok:
        return policy_table.HTTP_OK[rpc], None
    assert outcome.reason is not None
    return outcome.http_status, (outcome.code.value[0], outcome.reason)


def status_reason(response: httpx.Response) -> tuple[int, str]:
    """The `google.rpc.Status` JSON body's code and its ErrorInfo's reason."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    info = next(d for d in body["details"] if d["@type"].endswith("google.rpc.ErrorInfo"))
    assert info["domain"] == "shop.dev"
    return body["code"], info["reason"]


@pytest.mark.parametrize("rpc", RPCS)
def test_the_owner_through_the_gateway(system: System, rpc: str) -> None:
    w = world(system)
    # CreateUser's owner is a subject with no user yet, creating their own.
    headers = as_subject(new_subject()) if rpc == "CreateUser" else w.owner
    response = request(w, rpc, headers)
    status, refusal = expected(rpc, policy_table.OWNER)
    assert response.status_code == status, response.text
    if refusal is not None:  # ListUsers and WatchUsers are for admins and the order service
        assert status_reason(response) == refusal


@pytest.mark.parametrize("rpc", RPCS)
def test_another_user_through_the_gateway_is_403_with_a_status_body(
    system: System, rpc: str
) -> None:
    w = world(system)
    headers = as_subject(new_subject())
    if rpc == "CreateUser":  # for the owner's subject
        subject = w.owner["Authorization"].removeprefix("Bearer ")
        response = httpx.post(
            f"{w.base}/v1/users?subject={subject}",
            json={"email": f"{uuid.uuid4().hex}@example.com"},
            headers=headers,
        )
    else:
        response = request(w, rpc, headers)
    status, refusal = expected(rpc, policy_table.ANOTHER_USER)
    assert response.status_code == status, response.text
    assert status_reason(response) == refusal
    # Nothing changed for the owner.
    assert httpx.get(f"{w.base}/v1/orders/{w.order['id']}", headers=w.owner).json() == w.order


def test_credentials_that_are_not_a_bearer_are_401_with_a_status_body(system: System) -> None:
    w = world(system)
    response = httpx.get(
        f"{w.base}/v1/users/{w.user['id']}", headers={"Authorization": "Basic eHl6"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert status_reason(response) == (16, "MALFORMED_AUTHORIZATION")
