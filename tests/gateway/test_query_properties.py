"""Properties of query parsing, over the conformance API's `Everything` (every kind of
field, maps of every key type, oneofs, well-known types): any query string is either
parsed or refused with a `RequestError` (400) naming the key as the client sent it, never
another exception, strict or not; and values written the way the gateway reads them come
back as they were."""

from __future__ import annotations

import base64
import functools
import math
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.errors import RequestError
from gateway.query import INVALID, QueryParser
from tests.gateway.conformance.protos import Conformance, load

SETTINGS = settings(max_examples=300, derandomize=True, deadline=None, database=None)
T = FieldDescriptor


@functools.cache
def api() -> Conformance:
    return load()


@functools.cache
def parser(*, strict: bool) -> QueryParser:
    return QueryParser(api().everything, ("id",), strict=strict)


def keys() -> list[str]:
    """Every key the parser takes, in both spellings, and keys near them."""
    found = {"id", "nope", "", ".", "child.", "child.child.child.child.child.child.child.text"}
    for binding in parser(strict=False).bindings():
        found.add(binding.path)
        found.add(".".join(field.json_name for field in binding.fields))
    for entries in parser(strict=False).maps():
        found.update({f"{entries.path}[k]", f"{entries.path}[", f"{entries.path}[1]", entries.path})
    found.update({"nested", "items", "items.name", "labels]", "labels[[a]]", "nestedByName[k]"})
    return sorted(found)


VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1.5",
            "1e999",
            "-0",
            "NaN",
            "Infinity",
            "true",
            "FALSE",
            "yes",
            "9" * 40,
            "-9223372036854775809",
            "18446744073709551616",
            "COLOR_RED",
            "COLOR_X",
            "2024-01-02T03:04:05Z",
            "2024-02-30T00:00:00Z",
            "1.5s",
            "-1s",
            "a,,b",
            "a..b",
            '{"a":1}',
            "[1]",
            "null",
            "aGk=",
            "%%%",
            "%zz",
            "%C3",
            "%FF",
            "%2B",
            "é",
            "\x00",
        ]
    ),
    st.text(max_size=20),
)


@st.composite
def queries(draw: st.DrawFn) -> bytes:
    """Pairs of known and unknown keys and nasty values, each part percent-encoded or
    sent raw (a raw `%` may start a bad escape), and now and then bytes as they come."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=60))
    pairs = draw(st.lists(st.tuples(st.sampled_from(keys()), VALUES), max_size=6))
    encode = draw(st.booleans())
    parts = [
        f"{quote(key) if encode else key}={quote(value) if encode else value}"
        for key, value in pairs
    ]
    return "&".join(parts).encode("utf-8", "surrogatepass")


def sent_keys(query: bytes) -> set[str]:
    """The keys of the query as sent (decoded, a bad byte replaced)."""
    text = query.decode(errors="replace")
    return {key for key, _ in parse_qsl(text, keep_blank_values=True, errors="replace")}


def is_utf8(query: bytes) -> bool:
    try:
        parse_qsl(query.decode(), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


@SETTINGS
@given(query=queries(), strict=st.booleans())
@example(query="blob=é".encode(), strict=False)  # was a ValueError, not a 400
@example(query=b"i32=1&i32=2", strict=False)
@example(query=b"labels%5Bk=v", strict=True)
@example(query=b"text=%ff", strict=False)  # names `text` now, not the whole query
@example(query=b"\xff=1", strict=False)
@example(query=b"a=1&%ff=2&text=%ff", strict=True)
@example(query=b"i64=" + b"9" * 5000, strict=False)
@example(query=b"child." * 20 + b"text=x", strict=True)
@example(query=b"choiceText=a&choiceNested.name=b", strict=False)
@example(query=b"byFlag[maybe]=x&colorById[-1]=COLOR_RED", strict=False)
def test_any_query_is_parsed_or_refused_naming_the_key(query: bytes, strict: bool) -> None:
    message = api().Everything()
    try:
        parser(strict=strict).parse(query, message)
    except RequestError as error:
        refused = error
    else:
        return
    assert refused.reason == INVALID
    assert refused.description
    # The key as sent; none where a key is not UTF-8.
    assert refused.field in sent_keys(query) or (refused.field == "" and not is_utf8(query))


# Round trip: a field of each text kind, its value written as the gateway reads it.
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "text": st.text(),
    "display_name": st.text(),
    "flag": st.booleans(),
    "i32": st.integers(-(2**31), 2**31 - 1),
    "i64": st.integers(-(2**63), 2**63 - 1),
    "u32": st.integers(0, 2**32 - 1),
    "u64": st.integers(0, 2**64 - 1),
    "s64": st.integers(-(2**63), 2**63 - 1),
    "f64": st.integers(0, 2**64 - 1),
    "value": st.floats(allow_nan=False),
    "blob": st.binary(max_size=20),
    "color": st.sampled_from(["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_GREEN", "COLOR_BLUE"]),
    "maybe_text": st.text(),
    "tags": st.lists(st.text(), max_size=3),
    "numbers": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3),
    "nested.name": st.text(),
    "nested.inner.notes": st.lists(st.text(), max_size=3),
    "child.child.text": st.text(),
    "labels": st.dictionaries(st.text(), st.text(), max_size=3),
    "by_number": st.dictionaries(st.integers(-(2**31), 2**31 - 1), st.text(), max_size=3),
    "by_flag": st.dictionaries(st.booleans(), st.text(), max_size=2),
}


def written(value: Any) -> str:
    """A value as a query writes it: JSON's words for a bool, base64 for bytes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    return str(value)


def spelled(path: str, *, json_names: bool) -> str:
    """A field path in proto names, or in lowerCamelCase JSON names."""
    if not json_names:
        return path
    message: Descriptor | None = api().everything
    names = []
    for part in path.split("."):
        assert message is not None
        field = message.fields_by_name[part]
        names.append(field.json_name)
        message = field.message_type
    return ".".join(names)


def expected(values: dict[str, Any]) -> Message:
    message = api().Everything()
    for path, value in values.items():
        if value in ([], {}):
            continue  # no key in the query: nothing set, not even its parents
        *outer, name = path.split(".")
        target = message
        for part in outer:
            target = getattr(target, part)
        field = target.DESCRIPTOR.fields_by_name[name]
        if isinstance(value, dict):
            getattr(target, name).update(value)
        elif isinstance(value, list):
            getattr(target, name).extend(value)
        elif field.enum_type is not None:
            setattr(target, name, field.enum_type.values_by_name[value].number)
        else:
            setattr(target, name, value)
    return message


@SETTINGS
@given(values=st.fixed_dictionaries({}, optional=SCALARS), json_names=st.booleans())
def test_values_written_as_the_gateway_reads_them_come_back(
    values: dict[str, Any], json_names: bool
) -> None:
    pairs: list[tuple[str, str]] = []
    for path, value in values.items():
        key = spelled(path, json_names=json_names)
        if isinstance(value, dict):
            pairs += [(f"{key}[{written(k)}]", written(v)) for k, v in value.items()]
        elif isinstance(value, list):
            pairs += [(key, written(item)) for item in value]
        else:
            pairs.append((key, written(value)))
    message = api().Everything()
    parser(strict=True).parse(urlencode(pairs).encode(), message)
    assert message == expected(values)
