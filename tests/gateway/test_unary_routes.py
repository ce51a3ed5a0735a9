"""Every route of both services, through the running gateway to the fake backends:
path, body and query fields reach the right RPC, and the answer is proto3 JSON."""

from __future__ import annotations

import logging

import httpx
import pytest

from gateway import start
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.gateway.conftest import Backend, settings_for
from tests.gateway.fakes import BIG_REVISION


async def test_create_user_takes_the_body_as_the_user_and_returns_the_bare_user(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    response = await client.post(
        "/v1/users?requestId=req-1", json={"email": "lin@example.com", "displayName": "Lin"}
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/v1/users/u-1"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": "u-1",
        "email": "lin@example.com",
        "displayName": "Lin",
        "createTime": "2023-11-14T22:13:20.005Z",
        "etag": "",
        "subject": "",
    }
    received = backend.recorder.last("CreateUser").request
    assert received == user_pb2.CreateUserRequest(
        user=user_pb2.User(email="lin@example.com", display_name="Lin"), request_id="req-1"
    )


async def test_body_accepts_proto_field_names_too(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    response = await client.post("/v1/users", json={"display_name": "Lin"})
    assert response.status_code == 201, response.text
    request = backend.recorder.last("CreateUser").request
    assert isinstance(request, user_pb2.CreateUserRequest)
    assert request.user.display_name == "Lin"


async def test_get_user_binds_the_path_variable(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    response = await client.get("/v1/users/ab%20c")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "ab c"
    assert response.json()["email"] == "ab c@example.com"
    assert backend.recorder.last("GetUser").request == user_pb2.GetUserRequest(id="ab c")


async def test_list_users_reads_query_parameters_and_prints_int64_as_string(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    response = await client.get("/v1/users", params={"pageSize": "5", "page_token": "t"})
    assert response.status_code == 200, response.text
    assert backend.recorder.last("ListUsers").request == user_pb2.ListUsersRequest(
        page_size=5, page_token="t"
    )
    body = response.json()
    assert body["revision"] == str(BIG_REVISION)
    assert body["nextPageToken"] == "after-t"
    # Unpopulated fields are printed; fields with presence (timestamps) are not.
    assert body["users"][1] == {
        "id": "b",
        "email": "",
        "displayName": "",
        "etag": "",
        "subject": "",
    }


async def test_update_user_merges_path_into_the_body_field(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    response = await client.patch(
        "/v1/users/u-7?updateMask=displayName,email",
        json={"id": "ignored", "displayName": "New"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "u-7"
    request = backend.recorder.last("UpdateUser").request
    assert isinstance(request, user_pb2.UpdateUserRequest)
    assert request.user.id == "u-7"
    assert request.user.display_name == "New"
    assert list(request.update_mask.paths) == ["display_name", "email"]


async def test_delete_user_answers_204_without_a_body(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    response = await client.delete("/v1/users/u-9", params={"etag": "e1"})
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert "content-type" not in response.headers
    assert backend.recorder.last("DeleteUser").request == user_pb2.DeleteUserRequest(
        id="u-9", etag="e1"
    )


async def test_create_order_with_nested_items_and_money(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    item = {"sku": "TEA-1", "quantity": 2, "unitPrice": {"currencyCode": "EUR", "units": "3"}}
    response = await client.post("/v1/orders", json={"userId": "u-1", "items": [item]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["state"] == "STATE_PENDING"
    assert body["total"] == {"currencyCode": "EUR", "units": "6", "nanos": 0}
    assert body["items"] == [{**item, "unitPrice": {**item["unitPrice"], "nanos": 0}}]  # type: ignore[dict-item]
    request = backend.recorder.last("CreateOrder").request
    assert isinstance(request, order_pb2.CreateOrderRequest)
    assert request.order.items[0].unit_price.units == 3


async def test_get_order(client: httpx.AsyncClient, backend: Backend) -> None:
    response = await client.get("/v1/orders/o-5")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "o-5"
    assert backend.recorder.last("GetOrder").request == order_pb2.GetOrderRequest(id="o-5")


async def test_list_orders_filters_by_user(client: httpx.AsyncClient, backend: Backend) -> None:
    response = await client.get("/v1/orders", params={"userId": "u-3", "page_size": "2"})
    assert response.status_code == 200, response.text
    assert response.json()["orders"][0]["userId"] == "u-3"
    assert response.json()["revision"] == "7"
    assert backend.recorder.last("ListOrders").request == order_pb2.ListOrdersRequest(
        user_id="u-3", page_size=2
    )


async def test_cancel_order_takes_the_verb_path_and_the_whole_body(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    response = await client.post("/v1/orders/o-5:cancel", json={"etag": "e9"})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "STATE_CANCELLED"
    assert response.json()["etag"] == "e9"
    assert backend.recorder.last("CancelOrder").request == order_pb2.CancelOrderRequest(
        id="o-5", etag="e9"
    )


async def test_cancel_order_with_an_empty_body(client: httpx.AsyncClient, backend: Backend) -> None:
    response = await client.post("/v1/orders/o-6:cancel")
    assert response.status_code == 200, response.text
    assert backend.recorder.last("CancelOrder").request == order_pb2.CancelOrderRequest(id="o-6")


async def test_proto_names_out_when_the_gateway_is_set_so(backend: Backend) -> None:
    running = await start(settings_for(backend.address, proto_names=True))
    try:
        async with httpx.AsyncClient(base_url=running.url) as http:
            listed = (await http.get("/v1/users")).json()
    finally:
        await running.stop()
    assert listed["next_page_token"] == "after-"
    assert listed["users"][0]["display_name"] == "Ann"
    assert "displayName" not in listed["users"][0]


async def test_every_response_carries_a_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        ok = await client.get("/v1/users/u-1", headers={"X-Request-Id": "trace-1"})
        failed = await client.get("/v1/users/code-13")
    assert ok.headers["x-request-id"] == "trace-1"
    assert failed.status_code == 500
    assert len(failed.headers["x-request-id"]) == 32
    # The access log names the request by its id, and its route by the template.
    logged = [r for r in caplog.records if r.name == "gateway.access"]
    assert [getattr(r, "request_id", None) for r in logged] == [
        "trace-1",
        failed.headers["x-request-id"],
    ]
    assert logged[0].getMessage().startswith("GET /v1/users/{id} 200 ")
    assert logged[1].getMessage().startswith("GET /v1/users/{id} 500 ")
