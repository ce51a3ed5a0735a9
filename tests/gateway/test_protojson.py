"""gateway.protojson against json_format: the same JSON out, the same messages in, and
errors that name the field as the client spelled it.

`Kinds` (built below, test-only) has every kind of field: each scalar type singular and
repeated, proto3 `optional`, a oneof, an enum, recursion, maps of several key and value
types, and every well-known type. Random messages (fixed seeds) of it and of the product
messages are printed and parsed both ways and compared.
"""

from __future__ import annotations

import base64
import math
import random
import struct
from collections.abc import Callable
from typing import Any, cast

import orjson
import pytest
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    json_format,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from gateway import protojson
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.gateway.sample import SAMPLE

T = FieldDescriptor
_PACKAGE = "gateway.test.protojson.v1"
_SCALARS = {
    "double": T.TYPE_DOUBLE,
    "float": T.TYPE_FLOAT,
    "int32": T.TYPE_INT32,
    "int64": T.TYPE_INT64,
    "uint32": T.TYPE_UINT32,
    "uint64": T.TYPE_UINT64,
    "sint32": T.TYPE_SINT32,
    "sint64": T.TYPE_SINT64,
    "fixed32": T.TYPE_FIXED32,
    "fixed64": T.TYPE_FIXED64,
    "sfixed32": T.TYPE_SFIXED32,
    "sfixed64": T.TYPE_SFIXED64,
    "bool": T.TYPE_BOOL,
    "string": T.TYPE_STRING,
    "bytes": T.TYPE_BYTES,
}
_KINDS = f".{_PACKAGE}.Kinds"
_COLOR = f"{_KINDS}.Color"
_WKT = {
    "timestamp": ".google.protobuf.Timestamp",
    "duration": ".google.protobuf.Duration",
    "mask": ".google.protobuf.FieldMask",
    "empty": ".google.protobuf.Empty",
    "struct": ".google.protobuf.Struct",
    "value": ".google.protobuf.Value",
    "list": ".google.protobuf.ListValue",
    "any": ".google.protobuf.Any",
    **{
        f"{kind.lower()}_value": f".google.protobuf.{kind}Value"
        for kind in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String")
    },
    "bytes_value": ".google.protobuf.BytesValue",
}
_MAPS = {  # name: (key type, value type, value type name)
    "m_string_string": (T.TYPE_STRING, T.TYPE_STRING, ""),
    "m_int32_int64": (T.TYPE_INT32, T.TYPE_INT64, ""),
    "m_int64_string": (T.TYPE_INT64, T.TYPE_STRING, ""),
    "m_uint32_bool": (T.TYPE_UINT32, T.TYPE_BOOL, ""),
    "m_uint64_color": (T.TYPE_UINT64, T.TYPE_ENUM, _COLOR),
    "m_sint64_double": (T.TYPE_SINT64, T.TYPE_DOUBLE, ""),
    "m_fixed32_float": (T.TYPE_FIXED32, T.TYPE_FLOAT, ""),
    "m_bool_bytes": (T.TYPE_BOOL, T.TYPE_BYTES, ""),
    "m_string_kinds": (T.TYPE_STRING, T.TYPE_MESSAGE, _KINDS),
    "m_string_timestamp": (T.TYPE_STRING, T.TYPE_MESSAGE, _WKT["timestamp"]),
    "m_sfixed64_value": (T.TYPE_SFIXED64, T.TYPE_MESSAGE, _WKT["value"]),
    "m_string_int32_value": (T.TYPE_STRING, T.TYPE_MESSAGE, _WKT["int32_value"]),
}


def _kinds_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="gateway/test/protojson/v1/kinds.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[
            f"google/protobuf/{name}.proto"
            for name in ("timestamp", "duration", "field_mask", "empty", "struct", "any")
        ]
        + ["google/protobuf/wrappers.proto"],
    )
    kinds = file.message_type.add(name="Kinds")
    kinds.enum_type.add(name="Color").value.extend(
        descriptor_pb2.EnumValueDescriptorProto(name=name, number=number)
        for number, name in enumerate(("COLOR_UNSPECIFIED", "RED", "GREEN"))
    )
    single, repeated = T.LABEL_OPTIONAL, T.LABEL_REPEATED

    def add(name: str, kind: int, label: int = single, type_name: str = "", **more: Any) -> None:
        field = kinds.field.add(name=name, number=len(kinds.field) + 1, type=kind, label=label)
        if type_name:
            field.type_name = type_name
        for key, value in more.items():
            setattr(field, key, value)

    for name, kind in _SCALARS.items():
        add(f"f_{name}", kind)
        add(f"r_{name}", kind, repeated)
    add("f_color", T.TYPE_ENUM, type_name=_COLOR)
    add("r_color", T.TYPE_ENUM, repeated, _COLOR)
    add("f_kinds", T.TYPE_MESSAGE, type_name=_KINDS)
    add("r_kinds", T.TYPE_MESSAGE, repeated, _KINDS)
    add("renamed", T.TYPE_STRING, json_name="otherName")
    kinds.oneof_decl.add(name="choice")
    for name, kind, type_name in (
        ("c_string", T.TYPE_STRING, ""),
        ("c_int64", T.TYPE_INT64, ""),
        ("c_kinds", T.TYPE_MESSAGE, _KINDS),
        ("c_color", T.TYPE_ENUM, _COLOR),
        ("c_null", T.TYPE_ENUM, ".google.protobuf.NullValue"),
    ):
        add(name, kind, type_name=type_name, oneof_index=0)
    for name, type_name in _WKT.items():
        add(f"w_{name}", T.TYPE_MESSAGE, type_name=type_name)
    for name in ("timestamp", "value", "int64_value", "duration"):
        add(f"rw_{name}", T.TYPE_MESSAGE, repeated, _WKT[name])
    add("w_null", T.TYPE_ENUM, type_name=".google.protobuf.NullValue")
    for name, kind, type_name in (
        ("o_int32", T.TYPE_INT32, ""),
        ("o_string", T.TYPE_STRING, ""),
        ("o_color", T.TYPE_ENUM, _COLOR),
        ("o_double", T.TYPE_DOUBLE, ""),
    ):
        kinds.oneof_decl.add(name=f"_{name}")
        add(name, kind, type_name=type_name, oneof_index=len(kinds.oneof_decl) - 1)
        kinds.field[-1].proto3_optional = True
    for name, (key, value, type_name) in _MAPS.items():
        entry = kinds.nested_type.add(name=f"{name.title().replace('_', '')}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=key, label=single)
        entry.field.add(name="value", number=2, type=value, label=single)
        if type_name:
            entry.field[1].type_name = type_name
        add(name, T.TYPE_MESSAGE, repeated, f"{_KINDS}.{entry.name}")
    return file


def _add_kinds() -> Descriptor:
    dependencies = (timestamp_pb2, duration_pb2, field_mask_pb2, empty_pb2, struct_pb2)
    for module in (*dependencies, any_pb2, wrappers_pb2):
        assert module.DESCRIPTOR  # the dependencies are in the pool
    pool = descriptor_pool.Default()
    pool.Add(_kinds_file())
    return pool.FindMessageTypeByName(f"{_PACKAGE}.Kinds")


KINDS = _add_kinds()
Kinds: type[Message] = GetMessageClass(KINDS)
_FLOAT32 = struct.Struct("<f")
FLOAT32_MAX = float.fromhex("0x1.fffffep+127")


def f32(value: float) -> float:
    return float(_FLOAT32.unpack(_FLOAT32.pack(value))[0])


# --- random messages -------------------------------------------------------------------

_INTS = {
    T.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    T.CPPTYPE_UINT32: (0, 2**32 - 1),
    T.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    T.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_DOUBLES = [0.0, -0.0, 1.5, -2.25, 3.0, 1e308, -1e-308, 5e-324, math.nan, math.inf, -math.inf]
# Not the largest float32: json_format cannot read back what it prints for it.
_FLOATS = [0.0, -0.0, f32(0.1), f32(1e-45), f32(3.0e38), math.nan, math.inf, -math.inf, 7.0]
_STRINGS = ["", "a", "héllo", "日本語", "emoji 🎉", 'quote " \\ slash', "nul \x00", "line\nbreak"]


class RandomMessages:
    """Messages of any type with random fields set, extremes included (a seeded generator)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def message(self, descriptor: Descriptor, depth: int = 0) -> Message:
        message = GetMessageClass(descriptor)()
        self.fill(message, depth)
        return message

    def fill(self, message: Message, depth: int) -> None:
        descriptor = cast(Descriptor, message.DESCRIPTOR)
        filler = _WKT_FILLERS.get(descriptor.full_name)
        if filler is not None:
            filler(self, message)
            return
        rng = self.rng
        chosen_oneofs: set[str] = set()
        for field in descriptor.fields:
            if rng.random() < 0.4:
                continue
            oneof = field.containing_oneof
            if oneof is not None:
                if oneof.name in chosen_oneofs:
                    continue
                chosen_oneofs.add(oneof.name)
            nested = field.message_type
            if nested is not None and depth >= 2 and not field.is_repeated:
                continue
            self._set(message, field, depth)

    def _set(self, message: Message, field: FieldDescriptor, depth: int) -> None:
        rng = self.rng
        name = field.name
        nested = field.message_type
        if nested is not None and nested.GetOptions().map_entry:
            key_field, value_field = nested.fields_by_name["key"], nested.fields_by_name["value"]
            entries = getattr(message, name)
            for _ in range(rng.randint(0, 3)):
                key = self.scalar(key_field)
                if value_field.message_type is not None:
                    if depth < 2 or value_field.message_type.full_name != KINDS.full_name:
                        self.fill(entries[key], depth + 1)
                else:
                    entries[key] = self.scalar(value_field)
        elif nested is not None:
            if field.is_repeated:
                items = getattr(message, name)
                for _ in range(rng.randint(0, 2 if depth < 2 else 0)):
                    self.fill(items.add(), depth + 1)
            else:
                child = getattr(message, name)
                child.SetInParent()
                self.fill(child, depth + 1)
        elif field.is_repeated:
            getattr(message, name).extend(self.scalar(field) for _ in range(rng.randint(0, 3)))
        else:
            setattr(message, name, self.scalar(field))

    def scalar(self, field: FieldDescriptor) -> Any:
        rng = self.rng
        kind = field.type
        if kind == T.TYPE_DOUBLE:
            return rng.choice([*_DOUBLES, rng.uniform(-1e6, 1e6), float(rng.randint(-99, 99))])
        if kind == T.TYPE_FLOAT:
            return rng.choice([*_FLOATS, f32(rng.uniform(-1e6, 1e6)), f32(rng.uniform(-1, 1))])
        if kind == T.TYPE_BOOL:
            return rng.random() < 0.5
        if kind == T.TYPE_STRING:
            return rng.choice([*_STRINGS, "".join(rng.choices("abcXYZ_-. 09", k=8))])
        if kind == T.TYPE_BYTES:
            return rng.choice([b"", b"\x00", b"\xff\xfe\xfd", rng.randbytes(rng.randint(1, 9))])
        if field.enum_type is not None:
            if field.enum_type.full_name == "google.protobuf.NullValue":
                return 0
            return rng.choice([0, 1, 2, 7, -5])  # 7 and -5: numbers the (open) enum lacks
        low, high = _INTS[field.cpp_type]
        return rng.choice([0, 1, low, high, rng.randint(low, high), rng.randint(-99, 99) % high])

    def json_like(self, depth: int = 0) -> Any:
        """A random JSON value for Struct, Value and ListValue (numbers are doubles)."""
        rng = self.rng
        kinds = ["null", "bool", "number", "string"] + (["list", "object"] if depth < 2 else [])
        kind = rng.choice(kinds)
        if kind == "null":
            return None
        if kind == "bool":
            return rng.random() < 0.5
        if kind == "number":
            return rng.choice([0.0, 1.0, -2.5, 1e300, rng.uniform(-100, 100)])
        if kind == "string":
            return rng.choice(_STRINGS)
        if kind == "list":
            return [self.json_like(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice("abcde"): self.json_like(depth + 1) for _ in range(rng.randint(0, 3))}


def _timestamp(random_: RandomMessages, message: Any) -> None:
    rng = random_.rng
    message.seconds = rng.choice(
        [-62135596800, 253402300799, 0, -1, rng.randint(-(10**10), 10**10)]
    )
    message.nanos = rng.choice([0, 999_999_999, 5_000_000, 123_000, rng.randint(0, 999_999_999)])


def _duration(random_: RandomMessages, message: Any) -> None:
    rng = random_.rng
    seconds = rng.choice([0, 1, -1, 315576000000, -315576000000, rng.randint(-(10**6), 10**6)])
    nanos = rng.choice([0, 500_000_000, 1_000, 7, 999_999_999])
    message.seconds = seconds
    message.nanos = -nanos if seconds < 0 or (seconds == 0 and rng.random() < 0.5) else nanos


def _mask(random_: RandomMessages, message: Any) -> None:
    paths = ["a", "display_name", "user.display_name", "x.y_z", "items"]
    message.paths.extend(random_.rng.sample(paths, random_.rng.randint(0, 3)))


def _any(random_: RandomMessages, message: Any) -> None:
    rng = random_.rng
    choice = rng.randint(0, 3)
    if choice == 1:
        message.Pack(wrappers_pb2.Int64Value(value=rng.randint(-(2**63), 2**63 - 1)))
    elif choice == 2:
        message.Pack(timestamp_pb2.Timestamp(seconds=rng.randint(0, 10**9)))
    elif choice == 3:
        message.Pack(random_.message(order_pb2.LineItem.DESCRIPTOR, depth=2))


def _json_value(message: Any, value: Any) -> None:
    message.CopyFrom(json_format.ParseDict(value, type(message)()))


_WKT_FILLERS: dict[str, Callable[[RandomMessages, Any], None]] = {
    "google.protobuf.Timestamp": _timestamp,
    "google.protobuf.Duration": _duration,
    "google.protobuf.FieldMask": _mask,
    "google.protobuf.Any": _any,
    "google.protobuf.Empty": lambda random_, message: None,
    "google.protobuf.Struct": lambda r, m: _json_value(m, {"k": r.json_like(), "l": r.json_like()}),
    "google.protobuf.Value": lambda r, m: _json_value(m, r.json_like()),
    "google.protobuf.ListValue": lambda r, m: _json_value(m, [r.json_like(), r.json_like()]),
}


# --- comparing --------------------------------------------------------------------------


def json_bytes(value: Any) -> bytes:
    """Canonical JSON, so that -0.0 differs from 0.0 and 1 from 1.0 (== would not tell)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def reference_dict(message: Message, *, proto_names: bool = False) -> Any:
    return json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, preserving_proto_field_name=proto_names
    )


def wire(message: Message) -> bytes:
    """Messages compared by their bytes: NaN != NaN would fail ==."""
    return message.SerializeToString(deterministic=True)


def parse_ours(descriptor: Descriptor, value: Any, *, lenient: bool = False) -> Message:
    message = GetMessageClass(descriptor)()
    protojson.decoder(descriptor, ignore_unknown_fields=lenient)(value, message)
    return message


def parse_reference(descriptor: Descriptor, value: Any, *, lenient: bool = False) -> Message:
    return json_format.ParseDict(value, GetMessageClass(descriptor)(), lenient)


PRODUCT_TYPES = [
    user_pb2.User.DESCRIPTOR,
    user_pb2.ListUsersResponse.DESCRIPTOR,
    user_pb2.WatchUsersResponse.DESCRIPTOR,
    user_pb2.UpdateUserRequest.DESCRIPTOR,
    order_pb2.Order.DESCRIPTOR,
    order_pb2.CreateOrderRequest.DESCRIPTOR,
    order_pb2.WatchOrdersResponse.DESCRIPTOR,
    SAMPLE,
]


# --- output -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(300))
@pytest.mark.parametrize("proto_names", [False, True], ids=["json_names", "proto_names"])
def test_random_messages_print_as_json_format_prints_them(seed: int, proto_names: bool) -> None:
    message = RandomMessages(seed).message(KINDS)
    ours = protojson.encoder(KINDS, proto_names=proto_names)(message)
    assert json_bytes(ours) == json_bytes(reference_dict(message, proto_names=proto_names))


@pytest.mark.parametrize("descriptor", PRODUCT_TYPES, ids=lambda d: d.name)
def test_product_messages_print_as_json_format_prints_them(descriptor: Descriptor) -> None:
    random_ = RandomMessages(len(descriptor.full_name))
    for _ in range(40):
        message = random_.message(descriptor)
        for proto_names in (False, True):
            ours = protojson.encoder(descriptor, proto_names=proto_names)(message)
            assert json_bytes(ours) == json_bytes(reference_dict(message, proto_names=proto_names))


def test_an_empty_message_prints_every_field_without_presence_at_its_default() -> None:
    printed = protojson.encoder(KINDS)(Kinds())
    assert json_bytes(printed) == json_bytes(reference_dict(Kinds()))
    assert printed["fInt64"] == "0"
    assert printed["fColor"] == "COLOR_UNSPECIFIED"
    assert printed["rKinds"] == []
    assert printed["mStringKinds"] == {}
    assert printed["otherName"] == ""
    assert "fKinds" not in printed
    assert "oInt32" not in printed
    assert "cString" not in printed


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"f_int64": -(2**63)}, {"fInt64": "-9223372036854775808"}),
        ({"f_uint64": 2**64 - 1}, {"fUint64": "18446744073709551615"}),
        ({"f_double": math.nan}, {"fDouble": "NaN"}),
        ({"f_double": -math.inf}, {"fDouble": "-Infinity"}),
        ({"f_float": f32(0.1)}, {"fFloat": 0.1}),
        ({"f_float": FLOAT32_MAX}, {"fFloat": 3.4028235e38}),
        ({"f_bytes": b"\xfb\xff"}, {"fBytes": "+/8="}),
        ({"f_color": 7}, {"fColor": 7}),
        ({"o_int32": 0}, {"oInt32": 0}),
        ({"c_null": 0}, {"cNull": None}),
        ({"w_int64_value": wrappers_pb2.Int64Value(value=5)}, {"wInt64Value": "5"}),
        ({"w_timestamp": timestamp_pb2.Timestamp(seconds=-62135596800)}, {}),
        ({"w_duration": duration_pb2.Duration(nanos=-500_000_000)}, {"wDuration": "-0.500s"}),
        ({"w_mask": field_mask_pb2.FieldMask(paths=["a.b_c", "d"])}, {"wMask": "a.bC,d"}),
        ({"w_empty": empty_pb2.Empty()}, {"wEmpty": {}}),
    ],
)
def test_extremes_print_as_json_format_prints_them(
    fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    message = Kinds(**fields)
    printed = protojson.encoder(KINDS)(message)
    assert json_bytes(printed) == json_bytes(reference_dict(message))
    assert printed.items() >= expected.items()


@pytest.mark.parametrize(
    ("seconds", "nanos", "text"),
    [
        (-62135596800, 0, "0001-01-01T00:00:00Z"),
        (253402300799, 999_999_999, "9999-12-31T23:59:59.999999999Z"),
        (-1, 500_000_000, "1969-12-31T23:59:59.500Z"),
        (951782400, 1_000, "2000-02-29T00:00:00.000001Z"),
    ],
)
def test_timestamps_print_with_the_fewest_exact_fractional_digits(
    seconds: int, nanos: int, text: str
) -> None:
    timestamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    assert protojson.encoder(timestamp.DESCRIPTOR)(timestamp) == text == timestamp.ToJsonString()


def test_an_invalid_timestamp_fails_as_json_format_fails() -> None:
    timestamp = timestamp_pb2.Timestamp(seconds=253402300800)
    with pytest.raises(ValueError, match="Timestamp is not valid"):
        protojson.encoder(timestamp.DESCRIPTOR)(timestamp)


def test_a_field_encoder_prints_one_field_and_none_for_an_unset_one() -> None:
    message = Kinds(r_int64=[1, 2])
    assert protojson.field_encoder(KINDS.fields_by_name["r_int64"])(message) == ["1", "2"]
    assert protojson.field_encoder(KINDS.fields_by_name["o_string"])(message) is None


# --- input ------------------------------------------------------------------------------


def respell(descriptor: Descriptor, value: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The same message in other spellings ParseDict accepts: proto or json names, 64-bit
    integers as numbers, integers as strings or integral floats, enums by number, bytes
    in URL-safe base64 without padding, floats as strings, and nulls for absent fields."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        field = descriptor.fields_by_name.get(key) or _by_json_name(descriptor, key)
        if field.containing_oneof is None and rng.random() < 0.1 and not _repeated_value(field):
            out[field.name] = None  # null: the field is cleared
            continue
        out[rng.choice([field.name, field.json_name])] = _respell_field(field, item, rng)
    return out


def _repeated_value(field: FieldDescriptor) -> bool:
    """json_format trips over null for a repeated Value (AttributeError), so it is not sent."""
    nested = field.message_type
    return field.is_repeated and nested is not None and nested.full_name == "google.protobuf.Value"


def _by_json_name(descriptor: Descriptor, key: str) -> FieldDescriptor:
    return next(field for field in descriptor.fields if field.json_name == key)


def _respell_field(field: FieldDescriptor, value: Any, rng: random.Random) -> Any:
    nested = field.message_type
    if nested is not None and nested.GetOptions().map_entry:
        inner = nested.fields_by_name["value"]
        return {key: _respell_single(inner, item, rng) for key, item in value.items()}
    if field.is_repeated:
        return [_respell_single(field, item, rng) for item in value]
    return _respell_single(field, value, rng)


def _respell_single(field: FieldDescriptor, value: Any, rng: random.Random) -> Any:
    nested = field.message_type
    if nested is not None:
        if nested.full_name.startswith("google.protobuf."):
            if nested.file.name == "google/protobuf/wrappers.proto":
                return _respell_single(nested.fields_by_name["value"], value, rng)
            return value
        return respell(nested, value, rng)
    if field.enum_type is not None and isinstance(value, str):
        number = field.enum_type.values_by_name[value].number
        return rng.choice([value, number, str(number)])
    if field.cpp_type in _INTS:
        number = int(value)
        spellings = [number, str(number)]
        if abs(number) < 2**53:
            spellings += [float(number), f"{number}.0", f"{number}e0"]
        return rng.choice(spellings)
    if field.type == T.TYPE_BYTES:
        raw = base64.b64decode(value)
        return rng.choice([value, base64.urlsafe_b64encode(raw).decode().rstrip("=")])
    if isinstance(value, float):
        return rng.choice([value, repr(value)] + ([int(value)] if value.is_integer() else []))
    return value


@pytest.mark.parametrize("seed", range(300))
def test_random_json_parses_as_json_format_parses_it(seed: int) -> None:
    rng = random.Random(seed)
    message = RandomMessages(seed).message(KINDS)
    printed = reference_dict(message, proto_names=rng.random() < 0.5)
    for value in (printed, respell(KINDS, printed, rng)):
        assert wire(parse_ours(KINDS, value)) == wire(parse_reference(KINDS, value))
    assert wire(parse_ours(KINDS, printed)) == wire(message)


@pytest.mark.parametrize("descriptor", PRODUCT_TYPES, ids=lambda d: d.name)
def test_product_json_parses_as_json_format_parses_it(descriptor: Descriptor) -> None:
    random_ = RandomMessages(len(descriptor.full_name))
    for _ in range(40):
        printed = reference_dict(random_.message(descriptor))
        value = respell(descriptor, printed, random_.rng)
        assert wire(parse_ours(descriptor, value)) == wire(parse_reference(descriptor, value))


@pytest.mark.parametrize(
    "value",
    [
        {"fInt32": "1e2", "fUint32": 7.0, "fInt64": 5, "fSint64": "-0"},
        {"fDouble": "NaN", "fFloat": "-Infinity", "rDouble": ["Infinity", 1, "1e-3"]},
        {"fDouble": "1e400"},  # a string past double's range: Infinity, as json_format reads it
        {"fBytes": "-_8", "rBytes": ["+/8=", "", "AAAA"]},
        {"fColor": 1, "rColor": ["GREEN", 0, "2"], "oColor": "RED"},
        {"fKinds": {}, "rKinds": [{}], "fString": None, "rInt64": None, "mStringString": None},
        {"mInt32Int64": {"-1": "2", "7": 3}, "mBoolBytes": {"true": "", "false": "AA"}},
        {"mUint64Color": {"18446744073709551615": "GREEN"}, "mSfixed64Value": {"1": None}},
        {"cNull": None, "wNull": None, "wValue": None, "rwValue": [None, 1, "x"]},
        {"cString": None, "cInt64": "5"},  # a null member does not take the oneof
        {"wStruct": {"a": [1, {"b": None}]}, "wList": [True], "wValue": {"x": 1}},
        {"wAny": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1s"}},
        {"wInt64Value": 5, "wUint64Value": "7", "wBoolValue": False, "wBytesValue": "AA=="},
        {"wTimestamp": "2024-01-31T09:30:00.5+01:00", "wDuration": "-1.000000001s"},
        {"wMask": "displayName,user.etag", "wEmpty": {}, "rwInt64Value": [1, "2"]},
        {"otherName": "x"},
    ],
)
def test_accepted_spellings_parse_as_json_format_parses_them(value: dict[str, Any]) -> None:
    assert wire(parse_ours(KINDS, value)) == wire(parse_reference(KINDS, value))


def test_json_names_win_over_proto_names_and_both_are_taken() -> None:
    assert parse_ours(KINDS, {"renamed": "a"}) == Kinds(renamed="a")
    assert parse_ours(KINDS, {"otherName": "a"}) == Kinds(renamed="a")


def test_parsing_merges_into_a_message_as_json_format_does() -> None:
    ours, reference = Kinds(f_int32=1, r_int32=[1], f_kinds=Kinds(f_bool=True)), Kinds()
    reference.CopyFrom(ours)
    value = {"rInt32": [2], "fKinds": {"fString": "s"}, "fInt32": None}
    protojson.decoder(KINDS, ignore_unknown_fields=False)(value, ours)
    assert ours == json_format.ParseDict(value, reference)


def test_unknown_keys_and_enum_names_are_skipped_when_lenient_as_json_format_does() -> None:
    value = {
        "nope": {"deep": 1},
        "fColor": "BLUE",
        "rColor": ["RED", "BLUE", "GREEN"],
        "mUint64Color": {"1": "BLUE", "2": "RED"},
        "fKinds": {"alsoNope": [], "fInt32": 3},
    }
    ours = parse_ours(KINDS, value, lenient=True)
    assert wire(ours) == wire(parse_reference(KINDS, value, lenient=True))
    assert list(ours.r_color) == [1, 2]  # type: ignore[attr-defined]


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"fKinds": value}
    return value


def test_messages_nest_as_deep_as_json_format_allows() -> None:
    deepest = _nested(protojson.MAX_DEPTH)
    assert wire(parse_ours(KINDS, deepest)) == wire(parse_reference(KINDS, deepest))
    too_deep = _nested(protojson.MAX_DEPTH + 1)
    with pytest.raises(json_format.ParseError, match="too deep"):
        parse_reference(KINDS, too_deep)
    with pytest.raises(protojson.DecodeError, match="nest deeper than 100"):
        parse_ours(KINDS, too_deep)


# A bad value: its path as the client spelled it, and a word of the description.
BAD_VALUES: list[tuple[dict[str, Any], str, str]] = [
    ({"fInt32": "x"}, "fInt32", 'expected an integer, got "x"'),
    ({"fInt32": 1.5}, "fInt32", "expected an integer, got 1.5"),
    ({"fInt32": " 1"}, "fInt32", "expected an integer"),
    ({"fInt32": True}, "fInt32", "expected an integer, got true"),
    ({"fInt32": 2**31}, "fInt32", "out of range for int32: 2147483648"),
    ({"f_sfixed32": "-2147483649"}, "f_sfixed32", "out of range for int32"),
    ({"fUint32": -1}, "fUint32", "out of range for uint32: -1"),
    ({"fInt64": "9223372036854775808"}, "fInt64", "out of range for int64"),
    ({"fUint64": "-1"}, "fUint64", "out of range for uint64: -1"),
    ({"fInt64": "1e400"}, "fInt64", 'expected an integer, got "1e400"'),
    ({"fInt32": "1.5"}, "fInt32", 'expected an integer, got "1.5"'),
    ({"fBool": "true"}, "fBool", 'expected true or false, got "true"'),
    ({"fBool": 1}, "fBool", "expected true or false"),
    ({"fString": 5}, "fString", "expected a string, got 5"),
    ({"fString": ["a"]}, "fString", "expected a string"),
    ({"fBytes": "a"}, "fBytes", "expected base64"),
    ({"fBytes": 5}, "fBytes", "expected base64"),
    ({"fDouble": "nan"}, "fDouble", 'expected a number, got "nan"'),
    ({"fDouble": "x"}, "fDouble", "expected a number"),
    ({"fDouble": math.nan}, "fDouble", 'quote "NaN"'),
    ({"fDouble": {}}, "fDouble", "expected a number"),
    ({"fFloat": 1e39}, "fFloat", "out of range for float"),
    ({"fColor": "BLUE"}, "fColor", 'not a Color: "BLUE" (one of COLOR_UNSPECIFIED, RED'),
    ({"fColor": [1]}, "fColor", "expected a Color name or number"),
    ({"fKinds": 5}, "fKinds", "expected a JSON object, got 5"),
    ({"fKinds": {"fInt32": "x"}}, "fKinds.fInt32", "expected an integer"),
    ({"f_kinds": {"f_kinds": {"rBool": [1]}}}, "f_kinds.f_kinds.rBool[0]", "true or false"),
    ({"rInt32": 5}, "rInt32", "expected a JSON array, got 5"),
    ({"rInt32": {"a": 1}}, "rInt32", "expected a JSON array"),
    ({"rInt32": [1, "x"]}, "rInt32[1]", "expected an integer"),
    ({"rInt32": [None]}, "rInt32[0]", "expected an integer, got null"),
    ({"rKinds": [{}, {"fBool": 1}]}, "rKinds[1].fBool", "expected true or false"),
    ({"rKinds": [None]}, "rKinds[0]", "expected a JSON object, got null"),
    ({"mInt32Int64": {"x": "1"}}, "mInt32Int64[x]", 'map key: expected an integer, got "x"'),
    ({"mUint32Bool": {"-1": True}}, "mUint32Bool[-1]", "map key: out of range for uint32"),
    ({"mBoolBytes": {"yes": ""}}, "mBoolBytes[yes]", 'map key: expected "true" or "false"'),
    ({"mStringString": {"a": 5}}, "mStringString[a]", "expected a string"),
    ({"mStringString": {"a": None}}, "mStringString[a]", "expected a string, got null"),
    ({"mStringString": ["a"]}, "mStringString", "expected a JSON object"),
    ({"mStringKinds": {"k": {"fInt32": "x"}}}, "mStringKinds[k].fInt32", "an integer"),
    ({"mStringKinds": {"k": None}}, "mStringKinds[k]", "expected a JSON object"),
    ({"wTimestamp": "yesterday"}, "wTimestamp", "expected an RFC 3339 timestamp"),
    ({"wTimestamp": 5}, "wTimestamp", "expected an RFC 3339 timestamp"),
    ({"wTimestamp": "0000-01-01T00:00:00Z"}, "wTimestamp", "RFC 3339"),
    ({"wDuration": "5"}, "wDuration", 'a duration in seconds such as "1.5s", got "5"'),
    ({"wMask": "a_b"}, "wMask", "comma-separated field paths"),
    ({"wInt32Value": {"value": 1}}, "wInt32Value", "expected an integer"),
    ({"wInt64Value": "x"}, "wInt64Value", "expected an integer"),
    ({"rwTimestamp": ["x"]}, "rwTimestamp[0]", "RFC 3339"),
    ({"rwInt64Value": [None]}, "rwInt64Value[0]", "expected an integer, got null"),
    ({"wStruct": [1]}, "wStruct", "not a valid Struct"),
    ({"wAny": {"@type": "type.googleapis.com/nope.Nope"}}, "wAny", "not a valid Any"),
    ({"cString": "a", "cInt64": "1"}, "cInt64", '"cString" is already set'),
    ({"cKinds": {}, "c_color": "RED"}, "c_color", 'only one field of "choice"'),
    ({"nope": 1}, "nope", f"no such field in {_PACKAGE}.Kinds"),
    ({"fKinds": {"nope": 1}}, "fKinds.nope", "no such field"),
    ({"rKinds": [{"fKinds": {"x": 1}}]}, "rKinds[0].fKinds.x", "no such field"),
]


@pytest.mark.parametrize(("value", "path", "description"), BAD_VALUES)
def test_bad_values_are_refused_as_json_format_refuses_them_naming_the_path(
    value: dict[str, Any], path: str, description: str
) -> None:
    with pytest.raises(json_format.ParseError):
        parse_reference(KINDS, value)
    with pytest.raises(protojson.DecodeError) as raised:
        parse_ours(KINDS, value)
    assert raised.value.path == path
    assert description in raised.value.description


@pytest.mark.parametrize(
    ("value", "path", "description"),
    [
        ({"fInt32": 1, "f_int32": 2}, "f_int32", 'given twice, also as "fInt32"'),
        ({"fColor": 2**32 + 1}, "fColor", "not a Color: 4294967297"),
        ({"fFloat": "1e39"}, "fFloat", 'out of range for float: "1e39"'),
        ({"fKinds": []}, "fKinds", "expected a JSON object, got []"),
        ({"fKinds": "fInt32"}, "fKinds", 'expected a JSON object, got "fInt32"'),
    ],
)
def test_values_json_format_would_change_or_misread_are_refused(
    value: dict[str, Any], path: str, description: str
) -> None:
    """json_format takes these (the last name wins, upb truncates the enum number or
    rounds the float to Infinity, a list or string is iterated as keys) when it ignores
    unknown fields; refusing them is the clearer answer."""
    parse_reference(KINDS, value, lenient=True)
    with pytest.raises(protojson.DecodeError) as raised:
        parse_ours(KINDS, value, lenient=True)
    assert raised.value.path == path
    assert description in raised.value.description


def test_a_null_repeated_value_field_is_cleared_though_json_format_trips_over_it() -> None:
    with pytest.raises(AttributeError):
        parse_reference(KINDS, {"rwValue": None})
    assert parse_ours(KINDS, {"rwValue": None}) == Kinds()


def test_the_largest_float32_reads_back_though_json_format_refuses_it() -> None:
    printed = reference_dict(Kinds(f_float=FLOAT32_MAX))
    with pytest.raises(json_format.ParseError, match="too large"):
        parse_reference(KINDS, printed)
    assert parse_ours(KINDS, printed) == Kinds(f_float=FLOAT32_MAX)


def test_a_field_decoder_sets_one_field_from_its_value() -> None:
    message = Kinds()
    decode = protojson.field_decoder(KINDS.fields_by_name["r_int32"], ignore_unknown_fields=False)
    decode([1, "2"], message)
    assert message == Kinds(r_int32=[1, 2])
    with pytest.raises(protojson.DecodeError) as raised:
        decode([1, "x"], message)
    assert raised.value.path == "[1]"


def test_public_members() -> None:
    assert sorted(protojson.__all__) == [
        "DecodeError",
        "Encode",
        "MAX_DEPTH",
        "decoder",
        "encoder",
        "field_decoder",
        "field_encoder",
        "field_paths",
        "is_plain_message",
    ]


# --- field paths ------------------------------------------------------------------------


def test_field_paths_follow_nested_messages_and_stop_at_other_kinds() -> None:
    paths = protojson.field_paths(KINDS)
    value = {
        "fString": "x",
        "fKinds": {"f_int32": 1, "fKinds": {"rInt32": []}, "nope": 1},
        "rKinds": [{"fInt32": 1}],
        "mStringKinds": {"k": {"fInt32": 1}},
        "wTimestamp": "2024-01-31T09:30:00Z",
        "wStruct": {"a": 1},
        "c_kinds": {},
        "oInt32": None,
        "nope": {"fInt32": 1},
    }
    assert paths(value) == [
        "f_string",
        "f_kinds.f_int32",
        "f_kinds.f_kinds.r_int32",
        "r_kinds",
        "m_string_kinds",
        "w_timestamp",
        "w_struct",
        "c_kinds",
        "o_int32",
    ]


def test_field_paths_of_anything_but_an_object_are_none() -> None:
    paths = protojson.field_paths(KINDS)
    assert paths(None) == paths([1]) == paths("x") == []
