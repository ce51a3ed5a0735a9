"""Query parameters → request fields: scalars of every kind, nested fields with dots,
proto and lowerCamelCase names, repeated keys, maps, well-known types, oneofs, strict mode,
and bad values. The older tests use `sample.py`; the newer ones the conformance API."""

from __future__ import annotations

import math

import pytest
from google.protobuf import duration_pb2, field_mask_pb2, json_format, timestamp_pb2, wrappers_pb2
from google.protobuf.message import Message

from gateway.errors import RequestError
from gateway.query import QueryParser
from tests.gateway.conformance.protos import Conformance, load
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


def test_a_map_without_an_entry_key_is_ignored() -> None:
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
        ("blob=%C3%A9", "blob"),  # not ASCII: was a ValueError (a 500), not a 400
        ("inner.innerName=ok&inner.count=many", "inner.count"),
        ("when=yesterday", "when"),
        ("wait=forever", "wait"),
        ("maybe=x", "maybe"),
        ("text=a&text=b", "text"),
    ],
)
def test_bad_values_name_the_key_as_sent(query: str, key: str) -> None:
    with pytest.raises(RequestError) as raised:
        parsed(query)
    assert raised.value.field == key
    assert raised.value.description


def test_a_query_that_is_not_utf8_is_refused_naming_the_key_where_it_can() -> None:
    with pytest.raises(RequestError) as raised:
        QueryParser(SAMPLE).parse(b"i32=1&text=%ff", Sample())
    assert (raised.value.field, raised.value.description) == ("text", "the value is not UTF-8")
    with pytest.raises(RequestError) as raised:
        QueryParser(SAMPLE).parse(b"text=a&%ff=1", Sample())
    assert (raised.value.field, raised.value.description) == ("", "the query string is not UTF-8")


# The conformance API's `Everything`: every kind of field, maps of every key type, oneofs.


@pytest.fixture(scope="module")
def api() -> Conformance:
    return load()


def everything(
    api: Conformance, query: str, exclude: tuple[str, ...] = (), *, strict: bool = False
) -> Message:
    message = api.Everything()
    QueryParser(api.everything, exclude, strict=strict).parse(query.encode(), message)
    return message


def expected(api: Conformance, value: dict[str, object]) -> Message:
    """The message that `value`, in proto3 JSON, stands for."""
    return json_format.ParseDict(value, api.Everything())


def refused(
    api: Conformance, query: str, exclude: tuple[str, ...] = (), *, strict: bool = False
) -> RequestError:
    with pytest.raises(RequestError) as raised:
        everything(api, query, exclude, strict=strict)
    assert raised.value.reason == "INVALID_QUERY_PARAMETER"
    return raised.value


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("labels[a]=x&labels[b]=y", {"labels": {"a": "x", "b": "y"}}),
        ("labels[]=empty", {"labels": {"": "empty"}}),
        ("labels[a]=", {"labels": {"a": ""}}),
        ("labels%5Ba.b%5D=dotted", {"labels": {"a.b": "dotted"}}),
        ("labels[a[b]]=brackets", {"labels": {"a[b]": "brackets"}}),
        ("byNumber[-1]=neg&by_number[7]=x", {"byNumber": {"-1": "neg", "7": "x"}}),
        (
            "byBigNumber[9223372036854775807]=-9223372036854775808",
            {"byBigNumber": {"9223372036854775807": "-9223372036854775808"}},
        ),
        ("colorById[3]=COLOR_BLUE&color_by_id[4]=2", {"colorById": {"3": 3, "4": 2}}),
        ("byFlag[true]=y&byFlag[false]=n", {"byFlag": {"true": "y", "false": "n"}}),
        ("colorByName[x]=COLOR_RED", {"colorByName": {"x": "COLOR_RED"}}),
        ("timeByName[t]=2024-01-02T03:04:05Z", {"timeByName": {"t": "2024-01-02T03:04:05Z"}}),
        ("blobByName[b]=aGk", {"blobByName": {"b": "aGk="}}),
        ("nested.labels[k]=v", {"nested": {"labels": {"k": "v"}}}),
        ("child.nested.labels[k]=v", {"child": {"nested": {"labels": {"k": "v"}}}}),
    ],
)
def test_map_entries_take_key_in_brackets(
    api: Conformance, query: str, value: dict[str, object]
) -> None:
    assert everything(api, query) == expected(api, value)


@pytest.mark.parametrize(
    ("query", "key", "description"),
    [
        ("byNumber[x]=y", "byNumber[x]", "bad map key: not an integer: 'x'"),
        ("byNumber[2147483648]=y", "byNumber[2147483648]", "bad map key: out of range"),
        ("colorById[-1]=COLOR_RED", "colorById[-1]", "bad map key: out of range for uint32"),
        ("byFlag[yes]=y", "byFlag[yes]", "bad map key: not a bool"),
        ("colorById[1]=COLOR_PURPLE", "colorById[1]", "not a Color"),
        ("timeByName[t]=never", "timeByName[t]", "not an RFC 3339 timestamp"),
        ("labels[a]=1&labels[a]=2", "labels[a]", "given more than once"),
        ("byNumber[1]=a&by_number[01]=b", "by_number[01]", "given more than once"),
    ],
)
def test_bad_map_entries_name_the_key_as_sent(
    api: Conformance, query: str, key: str, description: str
) -> None:
    error = refused(api, query)
    assert (error.field, error.description[: len(description)]) == (key, description)


def test_maps_lists_each_settable_map_once(api: Conformance) -> None:
    paths = {m.path for m in QueryParser(api.everything).maps()}
    assert {"labels", "by_number", "color_by_id", "time_by_name", "nested.labels"} <= paths
    assert "nested_by_name" not in paths  # a map of messages


# (query, key as sent, what the strict error says beyond "unknown query parameter")
SETS_NOTHING = [
    ("nope=1", "nope", ""),
    ("nested.nope=1", "nested.nope", ""),
    ("nested=x", "nested", "nested is a message"),
    ("labels=x", "labels", "a map takes one labels[key]=value per entry"),
    ("byNumber=x", "byNumber", "a map takes one byNumber[key]=value per entry"),
    ("text[a]=x", "text[a]", "text is not a map"),
    ("labels[a=x", "labels[a", "a map entry is labels[key]"),
    ("items.name=x", "items.name", ""),
    ("items=x", "items", "items is a list of messages"),
    ("nestedByName[k]=x", "nestedByName[k]", "nested_by_name is a map of messages"),
    ("any.typeUrl.x=1", "any.typeUrl.x", ""),
    ("=x", "", ""),
]


@pytest.mark.parametrize(("query", "key", "why"), SETS_NOTHING)
def test_strict_refuses_a_key_that_sets_nothing(
    api: Conformance, query: str, key: str, why: str
) -> None:
    error = refused(api, f"text=ok&{query}", strict=True)
    assert error.field == key
    assert error.description.startswith("unknown query parameter")
    assert why in error.description


@pytest.mark.parametrize(("query", "key", "why"), SETS_NOTHING)
def test_lenient_ignores_a_key_that_sets_nothing(
    api: Conformance, query: str, key: str, why: str
) -> None:
    assert everything(api, f"text=ok&{query}") == api.Everything(text="ok")


@pytest.mark.parametrize(
    ("query", "exclude", "key", "why"),
    [
        ("display_name=x", ("display_name",), "display_name", "display_name is bound by"),
        ("displayName=x", ("display_name",), "displayName", "display_name is bound by"),
        ("nested.name=x", ("nested",), "nested.name", "nested is bound by the path or the body"),
        ("nested.inner.value=x", ("nested.inner.value",), "nested.inner.value", "bound by"),
        ("text=x", ("*",), "text", "the body is the whole request"),
    ],
)
def test_strict_refuses_fields_bound_by_path_or_body(
    api: Conformance, query: str, exclude: tuple[str, ...], key: str, why: str
) -> None:
    error = refused(api, query, exclude, strict=True)
    assert error.field == key
    assert error.description.startswith("unknown query parameter: ")
    assert why in error.description
    assert everything(api, query, exclude) == api.Everything()


def test_strict_takes_every_key_that_sets_a_field(api: Conformance) -> None:
    query = "displayName=a&nested.inner.value=b&labels[k]=v&tags=x&tags=y&when=1970-01-01T00:00:01Z"
    assert everything(api, query, strict=True) == expected(
        api,
        {
            "displayName": "a",
            "nested": {"inner": {"value": "b"}},
            "labels": {"k": "v"},
            "tags": ["x", "y"],
            "when": "1970-01-01T00:00:01Z",
        },
    )


def test_a_route_may_skip_a_parser_that_can_neither_set_nor_refuse(api: Conformance) -> None:
    assert QueryParser(api.everything, ("*",)).empty
    assert not QueryParser(api.everything, ("*",), strict=True).empty
    assert not QueryParser(api.everything).empty


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("when=2024-01-02T03:04:05.5Z", {"when": "2024-01-02T03:04:05.500Z"}),
        ("when=2024-01-02t03:04:05z", {"when": "2024-01-02T03:04:05Z"}),
        ("when=2024-01-02T03:04:05%2B01:00", {"when": "2024-01-02T02:04:05Z"}),
        ("when=2024-01-02T03:04:05+01:00", {"when": "2024-01-02T02:04:05Z"}),  # `+` → space
        ("when=2024-01-02T03:04:05-01:30", {"when": "2024-01-02T04:34:05Z"}),
        ("when=0001-01-01T00:00:00Z", {"when": "0001-01-01T00:00:00Z"}),
        ("wait=1.5s", {"wait": "1.500s"}),
        ("wait=-0.5s", {"wait": "-0.500s"}),
        ("wait=315576000000s", {"wait": "315576000000s"}),
        (
            "updateMask=displayName,nested.inner.value",
            {"updateMask": "displayName,nested.inner.value"},
        ),
        ("update_mask=display_name,nested.count", {"updateMask": "displayName,nested.count"}),
        ("updateMask=displayName, nested.count", {"updateMask": "displayName,nested.count"}),
        ("updateMask=", {"updateMask": ""}),
        ("doubleValue=1.5", {"doubleValue": 1.5}),
        ("floatValue=0.25", {"floatValue": 0.25}),
        ("int64Value=-9223372036854775808", {"int64Value": "-9223372036854775808"}),
        ("uint64Value=18446744073709551615", {"uint64Value": "18446744073709551615"}),
        ("int32_value=-5", {"int32Value": -5}),
        ("uint32Value=7", {"uint32Value": 7}),
        ("boolValue=false", {"boolValue": False}),
        ("stringValue=", {"stringValue": ""}),
        ("bytesValue=aGk", {"bytesValue": "aGk="}),
        ('structValue={"a":[1,"b"]}', {"structValue": {"a": [1, "b"]}}),
        ('anyJson="x"', {"anyJson": "x"}),
        ("anyJson=null", {"anyJson": None}),
        ("anyJson=2.5", {"anyJson": 2.5}),
        ('listValue=[1,{"a":true}]', {"listValue": [1, {"a": True}]}),
        ("maybeText=", {"maybeText": ""}),
        ("blob=%2B%2F8%3D", {"blob": "+/8="}),
        ("blob=+/8=", {"blob": "+/8="}),  # an unencoded `+` arrives as a space
        ("blob=-_8", {"blob": "+/8="}),
        (
            "times=1970-01-01T00:00:01Z&times=1970-01-01T00:00:02Z",
            {"times": ["1970-01-01T00:00:01Z", "1970-01-01T00:00:02Z"]},
        ),
        ("counts=1&counts=-2", {"counts": [1, -2]}),
        ("colors=COLOR_RED&colors=3&colors=COLOR_RED", {"colors": [1, 3, 1]}),
        (
            "f32=4294967295&sf64=-9223372036854775808",
            {"f32": 4294967295, "sf64": "-9223372036854775808"},
        ),
        ("s64=-1&f64=18446744073709551615", {"s64": "-1", "f64": "18446744073709551615"}),
        ("choiceNested.name=n", {"choiceNested": {"name": "n"}}),
        ("child.child.text=deep", {"child": {"child": {"text": "deep"}}}),
        ("nested.inner.notes=a&nested.inner.notes=b", {"nested": {"inner": {"notes": ["a", "b"]}}}),
    ],
)
def test_well_known_and_other_values(
    api: Conformance, query: str, value: dict[str, object]
) -> None:
    assert everything(api, query) == expected(api, value)


@pytest.mark.parametrize(
    ("query", "printed"),
    [("value=NaN", "NaN"), ("ratio=NaN", "NaN"), ("value=-Infinity", "-Infinity")],
)
def test_float_words(api: Conformance, query: str, printed: str) -> None:
    field = query.partition("=")[0]
    assert json_format.MessageToDict(everything(api, query))[field] == printed


@pytest.mark.parametrize(
    ("query", "description"),
    [
        ("when=2024-01-02", "not an RFC 3339 timestamp"),
        ("when=1704164645", "not an RFC 3339 timestamp"),
        ("when=2024-02-30T00:00:00Z", "not a valid timestamp"),
        ("when=10000-01-01T00:00:00Z", "not an RFC 3339 timestamp"),
        ("wait=1.5", "not a duration"),
        ("wait=+1s", "not a duration"),
        ("wait=%201s", "not a duration"),
        ("wait=1.0000000001s", "not a duration"),
        ("wait=1m", "not a duration"),
        ("wait=315576000001s", "out of range for a duration"),
        ("updateMask=a,,b", "not a field mask"),
        ("updateMask=a..b", "not a field mask"),
        ("structValue=[1]", "not the JSON of a Struct"),
        ("anyJson=hello", "not the JSON of a Value"),
        ("listValue={}", "not the JSON of a ListValue"),
        ("boolValue=maybe", "not a bool"),
        ("uint32Value=-1", "out of range for uint32"),
        ("times=1970-01-01T00:00:01Z&times=later", "not an RFC 3339 timestamp"),
        ("i64=" + "9" * 5000, "out of range for int64"),
        ("byNumber[" + "9" * 5000 + "]=x", "bad map key: out of range for int32"),
        ("color=" + "1" * 5000, "out of range for enum"),
    ],
)
def test_bad_well_known_and_other_values(api: Conformance, query: str, description: str) -> None:
    error = refused(api, query)
    assert error.field == query.partition("=")[0]
    assert error.description.startswith(description), error.description


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("choiceText=a&choiceNumber=1", "choiceNumber"),
        ("choiceNumber=1&choice_text=a", "choice_text"),
        ("choiceText=a&choiceNested.name=x", "choiceNested.name"),
    ],
)
def test_two_members_of_one_oneof_are_refused(api: Conformance, query: str, key: str) -> None:
    error = refused(api, query)
    assert error.field == key
    assert "oneof choice" in error.description


def test_a_oneof_member_set_before_the_query_is_not_switched(api: Conformance) -> None:
    """The body and the path fill the request first."""
    message = api.Everything(choice_number=5)
    with pytest.raises(RequestError) as raised:
        QueryParser(api.everything).parse(b"choiceText=a", message)
    assert raised.value.description == (
        "choice_number is already set, and choice_text is in the same oneof choice"
    )
    QueryParser(api.everything).parse(b"choiceNumber=6", message)
    assert message == api.Everything(choice_number=6)
