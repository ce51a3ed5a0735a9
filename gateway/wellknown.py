"""The well-known types whose JSON is not an object of their fields, by full name: the one
table that the query, the path and the JSON codec read."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"
FIELD_MASK = "google.protobuf.FieldMask"
ANY = "google.protobuf.Any"
STRUCT = "google.protobuf.Struct"
VALUE = "google.protobuf.Value"
LIST_VALUE = "google.protobuf.ListValue"
NULL_VALUE = "google.protobuf.NullValue"

TEXT = frozenset({TIMESTAMP, DURATION, FIELD_MASK})
"""One string in JSON, and in a path or query value."""
WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
"""The bare value they wrap."""
JSON_DOCUMENTS = frozenset({STRUCT, VALUE, LIST_VALUE})
"""Any JSON; in a query, JSON text (`filter={"a":1}`), as grpc-gateway takes."""


def is_wrapper(message: Descriptor) -> bool:
    return message.full_name in WRAPPERS


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry
