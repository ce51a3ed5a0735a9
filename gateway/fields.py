"""Setting one field of a request message from a string: path variables and query values.

A `Binding` is built once per field path at start-up: the descriptors to walk, the
conversion of the text, and how to store it (assign, append, or a well-known type's own
parser). At request time it only walks and stores.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

Convert = Callable[[str], object]

_INTEGER = re.compile(r"-?[0-9]+\Z")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_FLOAT32_MAX = 3.4028234663852886e38
_BOOLS = {"true": True, "false": False, "1": True, "0": False}

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

# Well-known types that travel as one string (proto3 JSON form) and parse themselves.
TEXT_MESSAGES = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)
WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)


class BindingError(ValueError):
    """The text is not a value of the field's type; the message says why."""


def is_text_field(field: FieldDescriptor) -> bool:
    """Whether a string can set the field: a scalar, an enum or a one-string well-known type."""
    if field.message_type is None:
        return True
    name = field.message_type.full_name
    return name in TEXT_MESSAGES or name in WRAPPERS


def converter(field: FieldDescriptor) -> Convert:
    """Text → the Python value of a scalar or enum field."""
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
        raise BindingError(f"not a bool: {text!r} (use true or false)")
    return value


def _to_bytes(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except binascii.Error:
        raise BindingError(f"not base64: {text!r}") from None


def _int_converter(name: str, low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        if not _INTEGER.match(text):
            raise BindingError(f"not an integer: {text!r}")
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
            raise BindingError(f"not a number: {text!r}")
        value = float(text)
        if math.isinf(value) or (single and abs(value) > _FLOAT32_MAX):
            raise BindingError(f"out of range for {'float' if single else 'double'}: {text}")
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
        raise BindingError(f"not a {enum.name}: {text!r} (one of {names})")

    return convert


Store = Callable[[Message, str], None]


def _store(field: FieldDescriptor) -> Store:
    """How the last field of a path takes its text."""
    name = field.name
    repeated = field.is_repeated
    message = field.message_type
    if message is None:
        convert = converter(field)
        if repeated:
            return lambda parent, text: getattr(parent, name).append(convert(text))
        return lambda parent, text: setattr(parent, name, convert(text))
    if message.full_name in TEXT_MESSAGES:

        def parse_text(parent: Message, text: str) -> None:
            target = getattr(parent, name).add() if repeated else getattr(parent, name)
            try:
                target.FromJsonString(text)
            except ValueError as error:
                raise BindingError(str(error)) from None

        return parse_text
    if message.full_name in WRAPPERS:
        convert = converter(message.fields_by_name["value"])

        def set_wrapped(parent: Message, text: str) -> None:
            value = convert(text)
            target = getattr(parent, name).add() if repeated else getattr(parent, name)
            target.value = value

        return set_wrapped
    raise TypeError(f"{field.full_name}: a {message.full_name} cannot be set from text")


@dataclass(frozen=True, slots=True)
class Binding:
    """A field path of a request message that text can set, e.g. `user.id`."""

    path: str
    """The path with proto field names, dot-separated."""
    fields: tuple[FieldDescriptor, ...]
    store: Store

    @property
    def field(self) -> FieldDescriptor:
        return self.fields[-1]

    @property
    def repeated(self) -> bool:
        return self.fields[-1].is_repeated

    def set(self, message: Message, text: str) -> None:
        """Sets the field; raises `BindingError` when the text is not a value of its type."""
        for field in self.fields[:-1]:
            message = getattr(message, field.name)
        self.store(message, text)


def resolve(message: Descriptor, path: Sequence[str]) -> tuple[FieldDescriptor, ...]:
    """The descriptors along a path of proto field names; `KeyError` names a missing one."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = message
    for part in path:
        if current is None:
            raise KeyError(f"{'.'.join(path)}: {fields[-1].name} is not a message")
        field = current.fields_by_name.get(part)
        if field is None:
            raise KeyError(f"{'.'.join(path)}: {current.full_name} has no field {part!r}")
        if fields and fields[-1].is_repeated:
            raise KeyError(f"{'.'.join(path)}: {fields[-1].name} is repeated")
        fields.append(field)
        current = field.message_type
    return tuple(fields)


def binding(fields: tuple[FieldDescriptor, ...]) -> Binding:
    """A binding for a path of fields; `TypeError` when text cannot set its last field."""
    if fields[-1].message_type is not None and fields[-1].message_type.GetOptions().map_entry:
        raise TypeError(f"{fields[-1].full_name}: maps cannot be set from text yet")
    return Binding(".".join(f.name for f in fields), fields, _store(fields[-1]))
