"""Proto3 JSON for messages, compiled once per message type from its descriptors.

`json_format` walks the descriptors of every message on every call. Here a message type
compiles once into a plan (`_output`, `_input`, `_mask`), cached by descriptor (two pools
may share a full name), one per message type of the served APIs. The mapping is
`json_format`'s: `MessageToDict` with `always_print_fields_with_no_presence=True` out,
`ParseDict` in (the tests hold them equal; `_input` and `_scalars` list the inputs refused
on purpose); Any and the Struct family go through `json_format` itself. A bad value raises
`DecodeError` with the path of the field as the client spelled it.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.protojson._errors import DecodeError
from gateway.protojson._input import MAX_DEPTH, Decoders
from gateway.protojson._kinds import is_plain_message
from gateway.protojson._mask import Masks
from gateway.protojson._output import Encoders
from gateway.protojson._types import Decode, Encode, Paths

__all__ = [
    "MAX_DEPTH",
    "DecodeError",
    "Encode",
    "decoder",
    "encoder",
    "field_decoder",
    "field_encoder",
    "field_paths",
    "is_plain_message",
]

_ENCODERS = {names: Encoders(proto_names=names) for names in (False, True)}
_DECODERS = {lenient: Decoders(lenient=lenient) for lenient in (False, True)}
_MASKS = Masks()


def encoder(message: Descriptor, *, proto_names: bool = False) -> Encode:
    """A message of this type → its proto3 JSON as Python values, ready for orjson."""
    return _ENCODERS[proto_names].message(message)


def field_encoder(field: FieldDescriptor, *, proto_names: bool = False) -> Encode:
    """A message → the JSON of one of its fields; None when a field with presence is unset."""
    _, name, convert, presence = _ENCODERS[proto_names].field(field)

    def encode(message: Message) -> Any:
        if presence and not message.HasField(name):
            return None
        value = getattr(message, name)
        return value if convert is None else convert(value)

    return encode


def decoder(message: Descriptor, *, ignore_unknown_fields: bool) -> Decode:
    """(JSON value, message of this type) → merges the value into the message, or raises
    `DecodeError` with the path of the bad value. Unknown keys and enum names are refused,
    or skipped when `ignore_unknown_fields`."""
    merge = _DECODERS[ignore_unknown_fields].message(message)

    def decode(value: object, target: Message) -> None:
        merge(value, target, 1)

    return decode


def field_decoder(field: FieldDescriptor, *, ignore_unknown_fields: bool) -> Decode:
    """(JSON value, message) → sets one field of the message from the value; the
    `DecodeError` path is relative to the value (empty when the value itself is bad)."""
    store = _DECODERS[ignore_unknown_fields].store(field)

    def decode(value: object, target: Message) -> None:
        store(target, value, 1)

    return decode


def field_paths(message: Descriptor) -> Paths:
    """JSON object → the proto paths (dotted, relative to `message`) of the fields it sets,
    in the order sent. Use it on a value that decoding accepted, so its depth is bounded."""
    plan = _MASKS.plan(message)

    def paths(value: object) -> list[str]:
        out: list[str] = []
        if isinstance(value, dict):
            plan.collect(value, "", out)
        return list(dict.fromkeys(out))

    return paths
