"""JSON value → Python value of a scalar or enum field.

Each accepts what `json_format.ParseDict` accepts, to the same value: integers as JSON
numbers, integral floats (`1.0`, `1e2`) or strings of either; floats as numbers or strings,
with "NaN", "Infinity" and "-Infinity"; bytes as standard or URL-safe base64, padded or
not; enums by name or number. It refuses, with a description, what `ParseDict` refuses,
and also two values upb would silently change: an enum number outside int32 and a finite
number too large for a float32.
"""

from __future__ import annotations

import base64
import contextlib
import struct
from typing import Any

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor

from gateway.protojson._errors import DecodeError, show
from gateway.protojson._types import Convert

T = FieldDescriptor
SKIP: Any = object()
"""What an enum conversion returns for a name it does not know when unknown fields are
ignored: the value is dropped, as `ParseDict(ignore_unknown_fields=True)` drops it."""
_RANGES = {
    T.CPPTYPE_INT32: ("int32", -(2**31), 2**31 - 1),
    T.CPPTYPE_UINT32: ("uint32", 0, 2**32 - 1),
    T.CPPTYPE_INT64: ("int64", -(2**63), 2**63 - 1),
    T.CPPTYPE_UINT64: ("uint64", 0, 2**64 - 1),
}
_FLOAT32 = struct.Struct("<f")
_BOOL_KEYS = {"true": True, "false": False}


def converter(field: FieldDescriptor, *, lenient: bool) -> Convert:
    """The conversion of a field's JSON values; `lenient` drops unknown enum names."""
    kind = field.type
    if kind == T.TYPE_STRING:
        return string
    if kind == T.TYPE_BOOL:
        return boolean
    if kind == T.TYPE_BYTES:
        return base64_bytes
    if kind == T.TYPE_DOUBLE:
        return double
    if kind == T.TYPE_FLOAT:
        return float32
    if field.enum_type is not None:
        return enum(field.enum_type, lenient=lenient)
    return integer(*_RANGES[field.cpp_type])


def map_key(field: FieldDescriptor) -> Convert:
    """The conversion of a map's JSON keys (always strings) to the key type."""
    convert = _bool_key if field.type == T.TYPE_BOOL else converter(field, lenient=False)

    def convert_key(key: str) -> Any:
        try:
            return convert(key)
        except DecodeError as error:
            raise DecodeError(f"map key: {error.description}") from None

    return convert_key


def string(value: object) -> str:
    if type(value) is str:
        return value
    raise DecodeError(f"expected a string, got {show(value)}")


def boolean(value: object) -> bool:
    if value is True or value is False:
        return value
    raise DecodeError(f"expected true or false, got {show(value)}")


def _bool_key(key: str) -> bool:
    value = _BOOL_KEYS.get(key)
    if value is None:
        raise DecodeError(f'expected "true" or "false", got {show(key)}')
    return value


def base64_bytes(value: object) -> bytes:
    """Standard or URL-safe alphabet, padding optional; like json_format, characters
    outside the alphabet are skipped."""
    if type(value) is str:
        try:
            encoded = value.encode()
            return base64.urlsafe_b64decode(encoded + b"=" * (4 - len(encoded) % 4))
        except ValueError:  # binascii.Error, or a lone surrogate
            pass
    raise DecodeError(f"expected base64, got {show(value)}")


def _integral(value: object) -> int:
    """An integer as json_format reads one: a JSON integer, an integral float, or a string
    of either without spaces."""
    if type(value) is int:
        return value
    number = value
    if type(value) is str and " " not in value:
        try:
            return int(value)  # int64 travels as a string: the usual case first
        except ValueError:
            pass
        with contextlib.suppress(ValueError):
            number = float(value)  # json_format takes "1e2" and "1.0" too
    if type(number) is float and number.is_integer():
        return int(number)
    raise DecodeError(f"expected an integer, got {show(value)}")


def integer(kind: str, low: int, high: int) -> Convert:
    def convert(value: object) -> int:
        number = _integral(value)
        if low <= number <= high:
            return number
        raise DecodeError(f"out of range for {kind}: {number}")

    return convert


def double(value: object) -> float:
    if type(value) is float:
        if value - value == 0.0:  # finite
            return value
        raise DecodeError(f'expected a number, got {value} (quote "NaN" and "Infinity")')
    if type(value) is int or type(value) is bool:
        try:
            return float(value)
        except OverflowError:
            pass
    elif type(value) is str and value != "nan":  # json_format asks for "NaN"
        try:
            return float(value)
        except ValueError:
            pass
    raise DecodeError(f"expected a number, got {show(value)}")


def float32(value: object) -> float:
    number = double(value)
    if number - number == 0.0:
        try:
            _FLOAT32.pack(number)  # rounds to the nearest float32; fails only past its range
        except OverflowError:
            raise DecodeError(f"out of range for float: {show(value)}") from None
    return number


def enum(enum: EnumDescriptor, *, lenient: bool) -> Convert:
    by_name = {value.name: value.number for value in enum.values}
    known = frozenset(by_name.values())
    closed = enum.is_closed
    expected = f"not a {enum.name}: {{}} (one of {', '.join(by_name)})"

    def convert(value: Any) -> Any:
        if type(value) is str:
            number = by_name.get(value)
            if number is not None:
                return number
        try:
            number = int(value)  # json_format's rule: numbers, numeric strings, even bools
        except ValueError:  # a name this enum does not have
            if lenient:
                return SKIP
            raise DecodeError(expected.format(show(value))) from None
        except (TypeError, OverflowError):
            raise DecodeError(f"expected a {enum.name} name or number, got {show(value)}") from None
        if -(2**31) <= number < 2**31 and (not closed or number in known):
            return number
        raise DecodeError(expected.format(show(value)))

    return convert
