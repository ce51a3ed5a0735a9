"""Message → proto3 JSON values, as `json_format.MessageToDict` with
`always_print_fields_with_no_presence=True` prints them.

A message type compiles once into a tuple of (key, attribute, conversion, presence):
fields without presence are always printed, fields with presence only when set. The
conversion is None where upb's Python value already is the JSON (strings, bools, 32-bit
integers), so most fields cost one getattr.
"""

from __future__ import annotations

import binascii
import functools
import struct
from datetime import date
from typing import Any, TypeAlias

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.protojson._kinds import (
    JSON_FORMAT_TYPES,
    NULL_VALUE,
    TEXT_TYPES,
    TIMESTAMP,
    is_map,
    is_wrapper,
)
from gateway.protojson._types import Convert, Encode

T = FieldDescriptor
_Out: TypeAlias = tuple[str, str, Convert | None, bool]
"""(JSON key, attribute, conversion or None when the value is its own JSON, presence)."""
_TIMESTAMP_SECONDS = (-62135596800, 253402300799)
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_FLOAT32 = struct.Struct("<f")
_TWO = tuple(f"{number:02d}" for number in range(60))


def _double(value: float) -> float | str:
    if value - value == 0.0:  # finite
        return value
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _float(value: float) -> float | str:
    """The shortest decimal that reads back as the same float32 (json_format's rule)."""
    if value - value != 0.0:
        return _double(value)
    precision = 6
    rounded = float(f"{value:.{precision}g}")
    while _FLOAT32.unpack(_FLOAT32.pack(rounded))[0] != value:
        precision += 1
        rounded = float(f"{value:.{precision}g}")
    return rounded


def _bytes(value: bytes) -> str:
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _bool_key(key: bool) -> str:
    return "true" if key else "false"


def _enum(enum: EnumDescriptor) -> Convert:
    """By name; a number the enum does not know stays a number."""
    if enum.full_name == NULL_VALUE:
        return lambda number: None
    names = {number: value.name for number, value in enum.values_by_number.items()}
    return lambda number: names.get(number, number)


def _fraction(nanos: int) -> str:
    """0, 3, 6 or 9 fractional digits: the fewest that are exact, as json_format writes."""
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1_000 == 0:
        return f".{nanos // 1_000:06d}"
    return f".{nanos:09d}"


@functools.lru_cache(maxsize=1024)
def _day(days: int) -> str:
    """The date of a day since 1970-01-01; the timestamps of one response share few days."""
    return date.fromordinal(_EPOCH_DAY + days).isoformat()


def _timestamp(message: Any) -> str:
    """RFC 3339 in UTC as `Timestamp.ToJsonString` writes it, without its datetime work
    (a third of the time)."""
    seconds, nanos = message.seconds, message.nanos
    low, high = _TIMESTAMP_SECONDS
    if not (low <= seconds <= high and 0 <= nanos < 1_000_000_000):
        return str(message.ToJsonString())  # raises json_format's ValueError
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, rest = divmod(rest, 60)
    return f"{_day(days)}T{_TWO[hours]}:{_TWO[minutes]}:{_TWO[rest]}{_fraction(nanos)}Z"


def _unwrap(convert: Convert | None) -> Encode:
    """A wrapper type prints as its bare value."""
    if convert is None:
        return lambda wrapper: getattr(wrapper, "value")  # noqa: B009
    return lambda wrapper: convert(getattr(wrapper, "value"))  # noqa: B009


def _json_string(message: Any) -> str:
    return str(message.ToJsonString())


_CONVERSIONS: dict[int, Convert] = {
    T.TYPE_DOUBLE: _double,
    T.TYPE_FLOAT: _float,
    T.TYPE_BYTES: _bytes,
}


class _MessageOut:
    """The output plan of a message with JSON of its own fields, in declaration order."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: tuple[_Out, ...] = ()

    def encode(self, message: Message) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, name, convert, presence in self.fields:
            if presence and not message.HasField(name):
                continue
            value = getattr(message, name)
            out[key] = value if convert is None else convert(value)
        return out


class Encoders:
    """Output plans, one per message type, for one naming of keys (json or proto names)."""

    def __init__(self, *, proto_names: bool) -> None:
        self._proto_names = proto_names
        self._plans: dict[Descriptor, Encode] = {}

    def message(self, message: Descriptor) -> Encode:
        plan = self._plans.get(message)
        if plan is None:
            plan = self._well_known(message)
            if plan is not None:
                self._plans[message] = plan
            else:
                regular = _MessageOut()
                # Cached before its fields are compiled, so that recursive types find it.
                self._plans[message] = plan = regular.encode
                regular.fields = tuple(self.field(field) for field in message.fields)
        return plan

    def field(self, field: FieldDescriptor) -> _Out:
        key = field.name if self._proto_names else field.json_name
        return key, field.name, self._convert(field), field.has_presence

    def _convert(self, field: FieldDescriptor) -> Convert | None:
        if is_map(field):
            return self._map(field)
        single = self._single(field)
        if not field.is_repeated:
            return single
        if single is None:
            return list
        return lambda values: [single(value) for value in values]

    def _map(self, field: FieldDescriptor) -> Convert:
        assert field.message_type is not None
        entry = field.message_type.fields_by_name
        keys: Convert = _bool_key if entry["key"].type == T.TYPE_BOOL else str
        values = self._single(entry["value"])
        if values is None:
            return lambda pairs: {keys(key): value for key, value in pairs.items()}
        return lambda pairs: {keys(key): values(value) for key, value in pairs.items()}

    def _single(self, field: FieldDescriptor) -> Convert | None:
        if field.message_type is not None:
            return self.message(field.message_type)
        if field.enum_type is not None:
            return _enum(field.enum_type)
        if field.cpp_type in (T.CPPTYPE_INT64, T.CPPTYPE_UINT64):
            return str
        return _CONVERSIONS.get(field.type)

    def _well_known(self, message: Descriptor) -> Encode | None:
        name = message.full_name
        if name == TIMESTAMP:
            return _timestamp
        if name in TEXT_TYPES:
            return _json_string
        if is_wrapper(message):
            return _unwrap(self._single(message.fields_by_name["value"]))
        if name in JSON_FORMAT_TYPES:
            proto_names = self._proto_names
            return lambda value: json_format.MessageToDict(
                value,
                always_print_fields_with_no_presence=True,
                preserving_proto_field_name=proto_names,
            )
        return None
