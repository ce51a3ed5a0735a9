"""What kind of JSON a message type has: its own fields, or a well-known type's form."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

TIMESTAMP = "google.protobuf.Timestamp"
TEXT_TYPES = frozenset({"google.protobuf.Duration", "google.protobuf.FieldMask"})
"""Well-known types that are one string and convert themselves (`To/FromJsonString`)."""
JSON_FORMAT_TYPES = frozenset(
    {"google.protobuf.Any", "google.protobuf.Struct", "google.protobuf.Value"}
    | {"google.protobuf.ListValue"}
)
"""Rare here, so left to json_format."""
VALUE = "google.protobuf.Value"
NULL_VALUE = "google.protobuf.NullValue"


def is_wrapper(message: Descriptor) -> bool:
    return message.file.name == "google/protobuf/wrappers.proto"


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def is_plain_message(field: FieldDescriptor) -> bool:
    """A singular field whose JSON is an object of its message's fields (not a map, a list,
    or a well-known type with a JSON form of its own)."""
    message = field.message_type
    return (
        message is not None
        and not field.is_repeated
        and message.full_name != TIMESTAMP
        and message.full_name not in TEXT_TYPES | JSON_FORMAT_TYPES
        and not is_wrapper(message)
    )
