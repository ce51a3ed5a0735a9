"""What kind of JSON a message type has: its own fields, or a well-known type's form."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor

from gateway.wellknown import (
    ANY,
    DURATION,
    FIELD_MASK,
    JSON_DOCUMENTS,
    NULL_VALUE,
    TIMESTAMP,
    VALUE,
    is_map,
    is_wrapper,
)

TEXT_TYPES = frozenset({DURATION, FIELD_MASK})
"""Well-known types that are one string and convert themselves (`To/FromJsonString`)."""
JSON_FORMAT_TYPES = JSON_DOCUMENTS | {ANY}
"""Rare here, so left to json_format."""

__all__ = [
    "JSON_FORMAT_TYPES",
    "NULL_VALUE",
    "TEXT_TYPES",
    "TIMESTAMP",
    "VALUE",
    "is_map",
    "is_plain_message",
    "is_wrapper",
]


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
