"""Query parameters → request fields: scalars of every kind, nested fields with dots,
proto and lowerCamelCase names, repeated keys, well-known types, and bad values."""

from __future__ import annotations

import math

import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2, wrappers_pb2
from google.protobuf.message import Message

from gateway.query import QueryError, QueryParser
from tests.gateway.sample import SAMPLE, Sample


def parsed(query: str, exclude: tuple[str, ...] = ()) -> Message:
    message = Sample()
    QueryParser(SAMPLE, exclude).parse(query.encode(), message)
    return message


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("text=hello%20world", {"text": "hello world"}),
        ("text=a+b", {"text": "a b"}),
        ("text=", {}),
        ("i32=-2147483648", {"i32": -(2**31)}),
        ("i64=9223372036854775807", {"i64": 2**63 - 1}),
        ("u32=4294967295", {"u32": 2**32 - 1}),
        ("u64=18446744073709551615", {"u64": 2**64 - 1}),
        ("s32=-5", {"s32": -5}),
        ("flag=true", {"flag": True}),
        ("flag=FALSE", {"flag": False}),
        ("flag=1", {"flag": True}),
        ("ratio=0.5", {"ratio": 0.5}),
        ("value=-1.25e3", {"value": -1250.0}),
        ("value=Infinity", {"value": math.inf}),
        ("blob=aGk", {"blob": b"hi"}),
        ("blob=_-8%3D", {"blob": b"\xff\xef"}),
        ("color=GREEN", {"color": 2}),
        ("color=1", {"color": 1}),
        ("color=9", {"color": 9}),  # proto3 enums are open, as in proto3 JSON
        ("inner.inner_name=x", {"inner": {"inner_name": "x"}}),
        ("inner.innerName=x&inner.count=3", {"inner": {"inner_name": "x", "count": 3}}),
        ("displayName=Lin", {"display_name": "Lin"}),
        ("display_name=Lin", {"display_name": "Lin"}),
        ("tags=a&tags=b", {"tags": ["a", "b"]}),
        ("numbers=1&numbers=-2", {"numbers": [1, -2]}),
        ("child.text=deep", {"child": {"text": "deep"}}),
        ("child.inner.count=4", {"child": {"inner": {"count": 4}}}),
    ],
)
def test_values(query: str, expected: dict[str, object]) -> None:
    assert parsed(query) == Sample(**expected)


def test_well_known_types_take_their_json_string_form() -> None:
    message = parsed("when=2024-01-02T03:04:05Z&wait=1.5s&maybe=7&mask=displayName,inner.count")
    assert message == Sample(
        when=timestamp_pb2.Timestamp(seconds=1704164645),
        wait=duration_pb2.Duration(seconds=1, nanos=500_000_000),
        maybe=wrappers_pb2.Int32Value(value=7),
        mask=field_mask_pb2.FieldMask(paths=["display_name", "inner.count"]),
    )


def test_unknown_keys_are_ignored() -> None:
    assert parsed("nope=1&inner.nope=2&text=x") == Sample(text="x")


def test_maps_are_not_taken_yet() -> None:
    assert parsed("labels=x") == Sample()


def test_excluded_fields_are_not_taken() -> None:
    assert parsed("text=x&inner.count=2&i32=1", exclude=("text", "inner")) == Sample(i32=1)
    assert parsed("inner.count=2&inner.innerName=n", exclude=("inner.count",)) == Sample(
        inner={"inner_name": "n"}
    )


def test_star_excludes_everything() -> None:
    parser = QueryParser(SAMPLE, ("*",))
    assert parser.empty
    assert parsed("text=x", exclude=("*",)) == Sample()


def test_bindings_list_each_field_once() -> None:
    paths = {b.path for b in QueryParser(SAMPLE).bindings()}
    assert {"text", "display_name", "inner.inner_name", "child.text", "when"} <= paths
    assert "labels" not in paths


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("i32=abc", "i32"),
        ("i32=1.5", "i32"),
        ("i32=2147483648", "i32"),
        ("u32=-1", "u32"),
        ("i64=9223372036854775808", "i64"),
        ("i64=1_000", "i64"),
        ("i64=+1", "i64"),
        ("i64= 1", "i64"),
        ("flag=yes", "flag"),
        ("ratio=1e39", "ratio"),
        ("value=1e999", "value"),
        ("value=fast", "value"),
        ("color=PURPLE", "color"),
        ("color=2147483648", "color"),
        ("blob=%%%", "blob"),
        ("inner.innerName=ok&inner.count=many", "inner.count"),
        ("when=yesterday", "when"),
        ("wait=forever", "wait"),
        ("maybe=x", "maybe"),
        ("text=a&text=b", "text"),
    ],
)
def test_bad_values_name_the_key_as_sent(query: str, key: str) -> None:
    with pytest.raises(QueryError) as raised:
        parsed(query)
    assert raised.value.key == key
    assert raised.value.description


def test_a_query_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(QueryError):
        QueryParser(SAMPLE).parse(b"text=%ff", Sample())
