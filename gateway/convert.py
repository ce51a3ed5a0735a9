"""Text → the value of a field, as a path variable or a query value gives it: scalars (range
checked), enums by name or number, and the well-known types that have a text form
(Timestamp, Duration, FieldMask, wrappers, Struct as JSON). Built once per field."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from gateway.wellknown import JSON_DOCUMENTS, TEXT, WRAPPERS

Convert = Callable[[str], object]
"""Text → the value a field holds: a Python scalar, or a message for a well-known type."""

_INTEGER = re.compile(r"-?[0-9]+\Z")
_MAX_DIGITS = 20  # 2**64 has 20; longer text is out of range (and `int()` refuses > 4300)
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_FLOAT32_MAX = 3.4028234663852886e38
_BOOLS = {"true": True, "false": False, "1": True, "0": False}
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9:]{5})\Z"
)
_DURATION = re.compile(r"-?[0-9]+(?:\.[0-9]{1,9})?s\Z")
_CAMEL = re.compile(r"[A-Z]")

T = FieldDescriptor
_INT_RANGES: dict[int, tuple[str, int, int]] = {
    T.TYPE_INT32: ("int32", -(2**31), 2**31 - 1),
    T.TYPE_SINT32: ("int32", -(2**31), 2**31 - 1),
    T.TYPE_SFIXED32: ("int32", -(2**31), 2**31 - 1),
    T.TYPE_UINT32: ("uint32", 0, 2**32 - 1),
    T.TYPE_FIXED32: ("uint32", 0, 2**32 - 1),
    T.TYPE_INT64: ("int64", -(2**63), 2**63 - 1),
    T.TYPE_SINT64: ("int64", -(2**63), 2**63 - 1),
    T.TYPE_SFIXED64: ("int64", -(2**63), 2**63 - 1),
    T.TYPE_UINT64: ("uint64", 0, 2**64 - 1),
    T.TYPE_FIXED64: ("uint64", 0, 2**64 - 1),
}


class BindingError(ValueError):
    """The text is not a value of the field's type; the message says why."""


def _shown(text: str, limit: int = 40) -> str:
    """The text as an error message quotes it: no more than `limit` characters of it."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}…"


def is_text_field(field: FieldDescriptor) -> bool:
    """Whether a string can set the field: a scalar, an enum or a one-string well-known type."""
    if field.message_type is None:
        return True
    name = field.message_type.full_name
    return name in TEXT or name in WRAPPERS or name in JSON_DOCUMENTS


def converter(field: FieldDescriptor) -> Convert:
    """Text → the value of a field of the type of `field` (repeated or not)."""
    message = field.message_type
    if message is not None:
        return _message_converter(message)
    kind = field.type
    if kind == T.TYPE_STRING:
        return str
    if kind == T.TYPE_BOOL:
        return _to_bool
    if kind == T.TYPE_BYTES:
        return _to_bytes
    if kind in (T.TYPE_DOUBLE, T.TYPE_FLOAT):
        return _float_converter(single=kind == T.TYPE_FLOAT)
    if kind == T.TYPE_ENUM:
        return _enum_converter(field)
    if kind in _INT_RANGES:
        return _int_converter(*_INT_RANGES[kind])
    raise TypeError(f"{field.full_name}: no text form for field type {kind}")


def _to_bool(text: str) -> bool:
    value = _BOOLS.get(text.lower())
    if value is None:
        raise BindingError(f"not a bool: {_shown(text)} (use true or false)")
    return value


def _to_bytes(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not. A space is a `+` that form decoding of
    the query turned into one (a space is never base64)."""
    padded = text.replace(" ", "+") + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except ValueError:  # binascii.Error, or a character that is not ASCII
        raise BindingError(f"not base64: {_shown(text)}") from None


def _int_converter(name: str, low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        if not _INTEGER.match(text):
            raise BindingError(f"not an integer: {_shown(text)}")
        if len(text) > _MAX_DIGITS + 1:
            raise BindingError(f"out of range for {name}: {_shown(text)}")
        value = int(text)
        if not low <= value <= high:
            raise BindingError(f"out of range for {name}: {text}")
        return value

    return convert


def _float_converter(*, single: bool) -> Convert:
    def convert(text: str) -> float:
        word = _FLOAT_WORDS.get(text)
        if word is not None:
            return word
        if not _FLOAT.match(text):
            raise BindingError(f"not a number: {_shown(text)}")
        value = float(text)
        if math.isinf(value) or (single and abs(value) > _FLOAT32_MAX):
            raise BindingError(
                f"out of range for {'float' if single else 'double'}: {_shown(text)}"
            )
        return value

    return convert


def _enum_converter(field: FieldDescriptor) -> Convert:
    enum = field.enum_type
    assert enum is not None
    by_name = {value.name: value.number for value in enum.values}
    numbers = frozenset(by_name.values())
    names = ", ".join(by_name)
    closed = enum.is_closed
    to_int32 = _int_converter("enum", -(2**31), 2**31 - 1)

    def convert(text: str) -> int:
        number = by_name.get(text)
        if number is not None:
            return number
        if _INTEGER.match(text):
            number = to_int32(text)
            if number in numbers or not closed:
                return number
        raise BindingError(f"not a {enum.name}: {_shown(text)} (one of {names})")

    return convert


def _message_converter(message: Descriptor) -> Callable[[str], Message]:
    """Text → a new message of a well-known type that has a text form."""
    name = message.full_name
    cls = GetMessageClass(message)
    if name in WRAPPERS:
        inner = converter(message.fields_by_name["value"])
        return lambda text: cls(value=inner(text))
    if name in JSON_DOCUMENTS:

        def from_json(text: str) -> Message:
            try:
                return json_format.Parse(text, cls())
            except json_format.ParseError as error:
                raise BindingError(f"not the JSON of a {message.name}: {_shown(text)}") from error

        return from_json
    read = _TEXT_READERS.get(name)
    if read is None:
        raise TypeError(f"a {name} cannot be set from text")

    def from_text(text: str) -> Message:
        value = cls()
        read(text, value)
        return value

    return from_text


def _read_timestamp(text: str, value: Message) -> None:
    # RFC 3339 allows a lower-case t and z; a space before the offset is a `+` that form
    # decoding of the query turned into one.
    normal = text.upper()
    if normal[-6:-5] == " ":
        normal = f"{normal[:-6]}+{normal[-5:]}"
    if not _TIMESTAMP.match(normal):
        raise BindingError(f"not an RFC 3339 timestamp: {_shown(text)} (e.g. 2024-01-02T03:04:05Z)")
    try:
        value.FromJsonString(normal)  # type: ignore[attr-defined]  # well-known type mixin
    except ValueError:
        raise BindingError(f"not a valid timestamp: {_shown(text)}") from None


def _read_duration(text: str, value: Message) -> None:
    if not _DURATION.match(text):
        raise BindingError(f"not a duration: {_shown(text)} (seconds with an s, e.g. 1.5s)")
    try:
        value.FromJsonString(text)  # type: ignore[attr-defined]  # well-known type mixin
    except ValueError:
        raise BindingError(f"out of range for a duration: {_shown(text)}") from None


def _read_field_mask(text: str, value: Message) -> None:
    """Comma-separated paths, each segment in lowerCamelCase or as the proto name."""
    paths: list[str] = []
    for path in text.split(",") if text.strip() else ():
        segments = [part.strip() for part in path.split(".")]
        if not all(segments):
            raise BindingError(f"not a field mask: {_shown(text)} (an empty path or segment)")
        paths.append(".".join(_snake(segment) for segment in segments))
    value.paths.extend(paths)  # type: ignore[attr-defined]  # a FieldMask


def _snake(segment: str) -> str:
    if "_" in segment:
        return segment  # already a proto name
    return _CAMEL.sub(lambda upper: "_" + upper.group().lower(), segment)


_TEXT_READERS: dict[str, Callable[[str, Message], None]] = {
    "google.protobuf.Timestamp": _read_timestamp,
    "google.protobuf.Duration": _read_duration,
    "google.protobuf.FieldMask": _read_field_mask,
}
