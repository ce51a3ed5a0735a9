"""Every path template form routes to its RPC with the values it captured: literals, `*`,
`**`, resource names, nested field paths, custom verbs, every HTTP method and a custom
kind, additional bindings; specificity, percent-encoding, 404 and 405."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.gateway.conformance.protos import Conformance
from tests.gateway.conformance.support import message, received, refusal

pytestmark = pytest.mark.asyncio(loop_scope="package")

ROUTES = [
    # Specificity: the rules are declared from `**` to literal, and routed the other way.
    ("GET", "/v1/items/special", "Literal", {}),
    ("GET", "/v1/items/abc", "Single", {"id": "abc"}),
    ("GET", "/v1/items/a/b/c", "Deep", {"path": "a/b/c"}),
    ("GET", "/v1/items", "Deep", {}),  # `**` matches zero segments too
    ("GET", "/v1/items/abc/parts/special", "PartOfAny", {"id": "abc"}),
    ("GET", "/v1/items/special/parts/special", "PartOfLiteral", {"text": "special"}),
    ("GET", "/v1/items/special/parts/x", "PartOfLiteral", {"text": "x"}),
    ("GET", "/v1/items/abc/parts/x", "Deep", {"path": "abc/parts/x"}),
    # Variables.
    ("GET", "/v1/shelves/s1/books/b1", "GetBook", {"name": "shelves/s1/books/b1"}),
    (
        "GET",
        "/v1/nested/v/42",
        "Nested",
        {"nested": {"inner": {"value": "v"}, "count": "42"}},
    ),
    # One resource, every method, verbs and a custom kind.
    ("POST", "/v1/things", "Create", {}),
    ("GET", "/v1/things/t1", "Fetch", {"id": "t1"}),
    ("PUT", "/v1/things/t1", "Replace", {"id": "t1", "nested": {}}),
    # AIP-134: a PATCH without a mask gets one of the body's keys (here none).
    ("PATCH", "/v1/things/t1", "Update", {"id": "t1", "nested": {}, "updateMask": ""}),
    ("DELETE", "/v1/things/t1", "Remove", {"id": "t1"}),
    ("POST", "/v1/things/t1:cancel", "Cancel", {"id": "t1"}),
    ("POST", "/v1/things:search", "Search", {}),
    ("SEARCH", "/v1/things", "Find", {}),
    ("GET", "/v1/things/a:b", "Fetch", {"id": "a:b"}),  # `b` is no declared verb
    ("POST", "/v1/things/a:b:cancel", "Cancel", {"id": "a:b"}),
    # Additional bindings, each its own route to the same RPC.
    ("GET", "/v1/lookup/l1", "Lookup", {"id": "l1"}),
    ("GET", "/v1/people/p1:lookup", "Lookup", {"name": "people/p1"}),
    ("POST", "/v1/lookup", "Lookup", {}),
    ("GET", "/v1/query", "Query", {}),
    ("POST", "/v1/query/q1", "QueryBeside", {"id": "q1", "nested": {}}),
]


@pytest.mark.parametrize(
    ("method", "path", "rpc", "fields"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
async def test_each_template_routes_to_its_rpc_with_its_captures(
    client: httpx.AsyncClient,
    api: Conformance,
    method: str,
    path: str,
    rpc: str,
    fields: dict[str, Any],
) -> None:
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    response = await client.request(method, path, content=body)
    assert received(api, response, rpc) == message(api, fields)


@pytest.mark.parametrize(
    ("path", "rpc", "fields"),
    [
        ("/v1/items/a%20b", "Single", {"id": "a b"}),
        ("/v1/items/%E2%9C%93", "Single", {"id": "✓"}),
        ("/v1/items/a%2Fb", "Single", {"id": "a/b"}),  # one segment: fully decoded
        ("/v1/items/a%3Fb%23c", "Single", {"id": "a?b#c"}),
        ("/v1/items/%73pecial", "Literal", {}),  # an encoded unreserved character is itself
        ("/v1/items/a%20b/c", "Deep", {"path": "a b/c"}),
        ("/v1/shelves/s%201/books/b%2B1", "GetBook", {"name": "shelves/s 1/books/b+1"}),
        ("/v1/things/a+b", "Fetch", {"id": "a+b"}),  # `+` is a space only in a query
    ],
)
async def test_percent_encoded_segments_are_decoded(
    client: httpx.AsyncClient, api: Conformance, path: str, rpc: str, fields: dict[str, Any]
) -> None:
    response = await client.get(path)
    assert received(api, response, rpc) == message(api, fields)


@pytest.mark.parametrize(
    ("path", "rpc", "fields"),
    [
        ("/v1/items/a%2Fb/c", "Deep", {"path": "a%2Fb/c"}),
        ("/v1/shelves/a%2Fb/books/c", "GetBook", {"name": "shelves/a%2Fb/books/c"}),
    ],
)
async def test_multi_segment_variables_keep_encoded_slashes(
    client: httpx.AsyncClient, api: Conformance, path: str, rpc: str, fields: dict[str, Any]
) -> None:
    """google/api/http.proto: a variable of several segments is decoded "except %2F and
    %2f are left unchanged", so that a slash inside a segment stays apart from the slashes
    between segments."""
    response = await client.get(path)
    assert received(api, response, rpc) == message(api, fields)


async def test_an_encoded_colon_is_data_not_a_verb(
    client: httpx.AsyncClient, api: Conformance
) -> None:
    """Only a literal `:` starts the verb; `%3A` is part of the segment."""
    response = await client.get("/v1/things/abc%3Acancel")
    assert received(api, response, "Fetch") == message(api, {"id": "abc:cancel"})


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/v1/items/abc", "GET, HEAD"),
        ("POST", "/v1/things/t1", "DELETE, GET, HEAD, PATCH, PUT"),
        ("GET", "/v1/things", "POST, SEARCH"),
        ("GET", "/v1/things/t1:cancel", "POST"),
        ("POST", "/v1/things/t1:watch", "GET"),
        ("DELETE", "/v1/lookup", "POST"),
        ("PUT", "/v1/shelves/s1/books/b1", "GET, HEAD"),
    ],
)
async def test_a_known_path_with_another_method_is_405_with_allow(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert refusal(response, 405) == ("METHOD_NOT_ALLOWED", "")
    assert response.headers["allow"] == allow


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v2/items/special",
        "/v1/unknown",
        "/v1/things/t1/extra",
        "/v1/shelves/s1/books",
        "/v1/shelves/s1/books/b1/pages",
        "/v1/nested/v",
        "/V1/items/special",
    ],
)
async def test_an_unknown_path_is_404(client: httpx.AsyncClient, path: str) -> None:
    assert refusal(await client.get(path), 404) == ("ROUTE_NOT_FOUND", "")
