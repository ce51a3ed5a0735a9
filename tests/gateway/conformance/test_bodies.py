"""Bodies both ways: `body: "*"` and `body: "field"` in, `response_body` out (a message
field and a scalar one), every well-known type through the JSON codec, and a server stream
as newline-delimited JSON."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.gateway.conformance.protos import Conformance
from tests.gateway.conformance.support import STREAMED, answer, message, received

pytestmark = pytest.mark.asyncio(loop_scope="package")

EVERY_KIND: dict[str, Any] = {
    "text": "t",
    "display_name": "proto name",
    "i64": "-9223372036854775808",
    "u64": 18446744073709551615,
    "color": 2,
    "blob": "-_8",
    "nested": {"name": "n", "inner": {"notes": ["a"]}, "labels": {"k": "v"}},
    "items": [{"name": "i1"}, {"count": "2"}],
    "byFlag": {"true": "y"},
    "nestedByName": {"x": {"color": "COLOR_RED"}},
    "when": "2024-01-02T03:04:05Z",
    "wait": "-1.5s",
    "updateMask": "displayName,nested.count",
    "int64Value": "7",
    "bytesValue": "aGk=",
    "structValue": {"a": [1, None, {"b": False}]},
    "anyJson": None,
    "listValue": ["x"],
    "any": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"},
    "empty": {},
    "choiceNested": {"count": "3"},
}


async def test_body_star_is_the_whole_request(client: httpx.AsyncClient, api: Conformance) -> None:
    response = await client.post("/v1/things", json=EVERY_KIND)
    assert received(api, response, "Create") == message(api, EVERY_KIND)


async def test_every_well_known_type_prints_in_its_json_form(client: httpx.AsyncClient) -> None:
    request = answer(await client.post("/v1/lookup", json=EVERY_KIND))["request"]
    assert {key: request[key] for key in ("when", "wait", "updateMask", "int64Value")} == {
        "when": "2024-01-02T03:04:05Z",
        "wait": "-1.500s",
        "updateMask": "displayName,nested.count",
        "int64Value": "7",
    }
    assert request["structValue"] == {"a": [1, None, {"b": False}]}
    assert (request["anyJson"], request["listValue"], request["empty"]) == (None, ["x"], {})
    assert request["any"] == {
        "@type": "type.googleapis.com/google.protobuf.Duration",
        "value": "2s",
    }
    assert (request["blob"], request["bytesValue"]) == ("+/8=", "aGk=")
    assert (request["u64"], request["color"]) == ("18446744073709551615", "COLOR_GREEN")


@pytest.mark.parametrize(("method", "rpc"), [("PUT", "Replace"), ("PATCH", "Update")])
async def test_body_field_fills_that_field_and_the_path_the_rest(
    client: httpx.AsyncClient, api: Conformance, method: str, rpc: str
) -> None:
    response = await client.request(
        method,
        "/v1/things/t1?updateMask=name&text=q",
        json={"name": "n", "displayName": "d", "count": "3", "inner": {"value": "v"}},
    )
    assert received(api, response, rpc) == message(
        api,
        {
            "id": "t1",
            "text": "q",
            "updateMask": "name",
            "nested": {"name": "n", "displayName": "d", "count": "3", "inner": {"value": "v"}},
        },
    )


async def test_response_body_selects_a_message_field(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/unwrapped/u1?text=x&i64=5")
    body = answer(response)
    assert "method" not in body
    assert (body["id"], body["text"], body["i64"]) == ("u1", "x", "5")


async def test_response_body_selects_a_scalar_field(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/method-name")
    assert response.status_code == 200
    assert response.json() == "MethodName"


async def test_a_server_stream_is_one_json_line_per_message(
    client: httpx.AsyncClient, api: Conformance
) -> None:
    async with client.stream(
        "GET", "/v1/things/t1:watch?labels[k]=v", headers={"accept": "application/x-ndjson"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) async for line in response.aiter_lines() if line]
    assert [line["result"]["index"] for line in lines] == list(range(STREAMED))
    for line in lines:
        echo = line["result"]
        assert echo["method"] == "Watch"
        assert message(api, echo["request"]) == message(api, {"id": "t1", "labels": {"k": "v"}})
