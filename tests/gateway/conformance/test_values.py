"""Values from the path and the query, through the running gateway to the echo backend:
every scalar type, enums by name and number, each well-known type, bytes in both base64
alphabets, repeated keys, maps, oneofs, camelCase and proto names, nested dots; and the
400 that names the variable or the key as the client wrote it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.gateway.conformance.protos import Conformance
from tests.gateway.conformance.support import answer, message, received, refusal

pytestmark = pytest.mark.asyncio(loop_scope="package")


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        (
            "/v1/typed/COLOR_GREEN/2024-01-02T03:04:05Z/1.5s/aGk/18446744073709551615/true",
            {
                "color": "COLOR_GREEN",
                "when": "2024-01-02T03:04:05Z",
                "wait": "1.5s",
                "blob": "aGk=",
                "u64": "18446744073709551615",
                "flag": True,
            },
        ),
        (
            "/v1/typed/3/2024-01-02T03:04:05.5%2B01:00/-0.5s/-_8/0/false",
            {
                "color": "COLOR_BLUE",
                "when": "2024-01-02T02:04:05.500Z",
                "wait": "-0.5s",
                "blob": "+/8=",
                "flag": False,
            },
        ),
        (
            "/v1/typed/7/1970-01-01T00:00:00Z/0s/%2B%2F8%3D/1/1",
            {
                "color": 7,
                "when": "1970-01-01T00:00:00Z",
                "wait": "0s",
                "blob": "+/8=",
                "u64": "1",
                "flag": True,
            },
        ),
    ],
)
async def test_path_variables_of_every_text_type(
    client: httpx.AsyncClient, api: Conformance, path: str, fields: dict[str, Any]
) -> None:
    assert received(api, await client.get(path), "Typed") == message(api, fields)


TYPED_OK = ["COLOR_RED", "1970-01-01T00:00:00Z", "1s", "aGk", "1", "true"]


@pytest.mark.parametrize(
    ("index", "value", "variable"),
    [
        (0, "COLOR_PURPLE", "color"),
        (1, "yesterday", "when"),
        (2, "1.5", "wait"),
        (3, "%25%25", "blob"),
        (4, "-1", "u64"),
        (4, "18446744073709551616", "u64"),
        (5, "yes", "flag"),
    ],
)
async def test_a_bad_path_value_is_400_naming_the_variable(
    client: httpx.AsyncClient, index: int, value: str, variable: str
) -> None:
    segments = [*TYPED_OK[:index], value, *TYPED_OK[index + 1 :]]
    response = await client.get("/v1/typed/" + "/".join(segments))
    assert refusal(response, 400) == ("INVALID_PATH_PARAMETER", variable)


async def test_a_bad_nested_path_value_names_the_field_path(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nested/v/forty-two")
    assert refusal(response, 400) == ("INVALID_PATH_PARAMETER", "nested.count")


QUERIES: list[tuple[str, dict[str, Any]]] = [
    # Names: proto and lowerCamelCase, nested with dots.
    ("text=a%20b+c", {"text": "a b c"}),
    ("displayName=x", {"displayName": "x"}),
    ("display_name=x", {"displayName": "x"}),
    (
        "nested.displayName=x&nested.inner.value=v",
        {"nested": {"displayName": "x", "inner": {"value": "v"}}},
    ),
    ("nested.display_name=x", {"nested": {"displayName": "x"}}),
    ("child.child.nested.count=3", {"child": {"child": {"nested": {"count": "3"}}}}),
    # Scalars.
    ("flag=true&i32=-2147483648&u32=4294967295", {"flag": True, "i32": -(2**31), "u32": 2**32 - 1}),
    (
        "i64=-9223372036854775808&u64=18446744073709551615",
        {"i64": str(-(2**63)), "u64": str(2**64 - 1)},
    ),
    (
        "s32=-1&s64=-2&f32=3&f64=4&sf32=-5&sf64=-6",
        {"s32": -1, "s64": "-2", "f32": 3, "f64": "4", "sf32": -5, "sf64": "-6"},
    ),
    ("ratio=0.5&value=-1.5e300", {"ratio": 0.5, "value": -1.5e300}),
    ("maybeText=", {"maybeText": ""}),
    # Enums by name and by number.
    ("color=COLOR_BLUE", {"color": "COLOR_BLUE"}),
    ("color=3", {"color": "COLOR_BLUE"}),
    ("nested.color=COLOR_RED", {"nested": {"color": "COLOR_RED"}}),
    # Bytes: standard and URL-safe base64, padded or not.
    ("blob=%2B%2F8%3D", {"blob": "+/8="}),
    ("blob=-_8", {"blob": "+/8="}),
    # Repeated, by repeating the key: scalars, enums, well-known types.
    ("tags=a&tags=b&tags=a", {"tags": ["a", "b", "a"]}),
    ("numbers=1&numbers=-2", {"numbers": ["1", "-2"]}),
    ("colors=COLOR_RED&colors=2", {"colors": ["COLOR_RED", "COLOR_GREEN"]}),
    (
        "times=1970-01-01T00:00:01Z&times=1970-01-01T00:00:02Z",
        {"times": ["1970-01-01T00:00:01Z", "1970-01-01T00:00:02Z"]},
    ),
    ("counts=1&counts=2", {"counts": [1, 2]}),
    # Maps, one key per entry: string, integer and bool keys; scalar, enum and WKT values.
    ("labels%5Ba%5D=x&labels%5Bb%5D=y", {"labels": {"a": "x", "b": "y"}}),
    ("labels[a]=x", {"labels": {"a": "x"}}),
    ("byNumber[-1]=x&by_number[2]=y", {"byNumber": {"-1": "x", "2": "y"}}),
    ("byBigNumber[9223372036854775807]=1", {"byBigNumber": {"9223372036854775807": "1"}}),
    (
        "colorById[3]=COLOR_BLUE&colorById[4]=1",
        {"colorById": {"3": "COLOR_BLUE", "4": "COLOR_RED"}},
    ),
    ("byFlag[true]=y", {"byFlag": {"true": "y"}}),
    ("colorByName[x]=COLOR_GREEN", {"colorByName": {"x": "COLOR_GREEN"}}),
    ("timeByName[t]=2024-01-02T03:04:05Z", {"timeByName": {"t": "2024-01-02T03:04:05Z"}}),
    ("blobByName[b]=aGk", {"blobByName": {"b": "aGk="}}),
    ("nested.labels[k]=v", {"nested": {"labels": {"k": "v"}}}),
    # Well-known types in their JSON string form.
    ("when=2024-01-02T03:04:05.123Z", {"when": "2024-01-02T03:04:05.123Z"}),
    ("when=2024-01-02T03:04:05%2B01:00", {"when": "2024-01-02T02:04:05Z"}),
    ("wait=1.5s", {"wait": "1.5s"}),
    ("updateMask=displayName,nested.inner.value", {"updateMask": "displayName,nested.inner.value"}),
    ("update_mask=display_name,nested.count", {"updateMask": "displayName,nested.count"}),
    ("doubleValue=1.5&floatValue=2.5", {"doubleValue": 1.5, "floatValue": 2.5}),
    ("int64Value=-1&uint64Value=2", {"int64Value": "-1", "uint64Value": "2"}),
    ("int32Value=-3&uint32Value=4", {"int32Value": -3, "uint32Value": 4}),
    ("boolValue=false&stringValue=", {"boolValue": False, "stringValue": ""}),
    ("bytesValue=aGk", {"bytesValue": "aGk="}),
    ('structValue={"a":[1,"b"]}', {"structValue": {"a": [1, "b"]}}),
    ('anyJson="x"&listValue=[true]', {"anyJson": "x", "listValue": [True]}),
    # One member of a oneof.
    ("choiceText=x", {"choiceText": "x"}),
    ("choice_number=5", {"choiceNumber": "5"}),
    ("choiceNested.name=n", {"choiceNested": {"name": "n"}}),
]


@pytest.mark.parametrize(("query", "fields"), QUERIES, ids=[q for q, _ in QUERIES])
async def test_each_query_form_sets_its_field(
    client: httpx.AsyncClient, api: Conformance, query: str, fields: dict[str, Any]
) -> None:
    response = await client.get(f"/v1/query?{query}")
    assert received(api, response, "Query") == message(api, fields)


async def test_64_bit_integers_print_as_strings(client: httpx.AsyncClient) -> None:
    query = (
        "i64=-1&u64=2&s64=3&f64=4&sf64=5&numbers=6&byBigNumber[7]=8"
        "&int64Value=9&uint64Value=10&i32=11&u32=12"
    )
    request = answer(await client.get(f"/v1/query?{query}"))["request"]
    printed = {key: request[key] for key in ("i64", "u64", "s64", "f64", "sf64", "numbers")}
    assert printed == {
        "i64": "-1",
        "u64": "2",
        "s64": "3",
        "f64": "4",
        "sf64": "5",
        "numbers": ["6"],
    }
    assert request["byBigNumber"] == {"7": "8"}
    assert (request["int64Value"], request["uint64Value"]) == ("9", "10")
    assert (request["i32"], request["u32"]) == (11, 12)  # 32-bit ones stay numbers


@pytest.mark.parametrize(
    ("query", "printed"),
    [("value=NaN", "NaN"), ("value=Infinity", "Infinity"), ("ratio=-Infinity", "-Infinity")],
)
async def test_float_words_in_and_out(client: httpx.AsyncClient, query: str, printed: str) -> None:
    request = answer(await client.get(f"/v1/query?{query}"))["request"]
    assert request[query.partition("=")[0]] == printed


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("i32=x", "i32"),
        ("i64=9223372036854775808", "i64"),
        ("u64=-1", "u64"),
        ("flag=yes", "flag"),
        ("color=COLOR_PURPLE", "color"),
        ("blob=%25%25", "blob"),
        ("when=yesterday", "when"),
        ("wait=5", "wait"),
        ("updateMask=a,,b", "updateMask"),
        ("int32Value=1.5", "int32Value"),
        ("structValue=nope", "structValue"),
        ("displayName=a&display_name=b", "display_name"),
        ("labels[a]=1&labels%5Ba%5D=2", "labels[a]"),
        ("byNumber[x]=1", "byNumber[x]"),
        ("colorById[1]=COLOR_PURPLE", "colorById[1]"),
        ("choiceText=a&choiceNumber=1", "choiceNumber"),
        ("nested.inner.value=a&nested.inner.value=b", "nested.inner.value"),
        ("i64=" + "9" * 5000, "i64"),
    ],
)
async def test_a_bad_query_value_is_400_naming_the_key_as_sent(
    client: httpx.AsyncClient, query: str, key: str
) -> None:
    response = await client.get(f"/v1/query?{query}")
    assert refusal(response, 400) == ("INVALID_QUERY_PARAMETER", key)


async def test_keys_that_set_nothing_are_ignored(
    client: httpx.AsyncClient, api: Conformance
) -> None:
    query = "nope=1&nested.nope=2&nested=x&labels=x&text[a]=b&items.name=y&any.x=1&text=kept"
    response = await client.get(f"/v1/query?{query}")
    assert received(api, response, "Query") == message(api, {"text": "kept"})


async def test_the_query_fills_only_what_path_and_body_leave(
    client: httpx.AsyncClient, api: Conformance
) -> None:
    response = await client.post(
        "/v1/query/p1?id=q&nested.name=q&nested.count=7&text=t", json={"name": "b"}
    )
    assert received(api, response, "QueryBeside") == message(
        api, {"id": "p1", "nested": {"name": "b"}, "text": "t"}
    )


async def test_the_query_is_ignored_when_the_body_is_the_whole_request(
    client: httpx.AsyncClient, api: Conformance
) -> None:
    response = await client.post("/v1/things?text=q&i32=1", json={"text": "b"})
    assert received(api, response, "Create") == message(api, {"text": "b"})
