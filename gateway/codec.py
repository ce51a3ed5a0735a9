"""Proto3 JSON both ways (google.protobuf.json_format, bytes by orjson), with the
`body` and `response_body` selectors of a rule applied.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.fields import TEXT_MESSAGES, WRAPPERS


class CodecError(ValueError):
    """A body that does not decode: `field` is the path as the client spelled it."""

    def __init__(self, reason: str, field: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.field = field
        self.description = description


def _top_field(message: Descriptor, name: str, role: str) -> FieldDescriptor:
    field = message.fields_by_name.get(name)
    if field is None:
        raise ValueError(f"{role} {name!r}: {message.full_name} has no such field")
    return field


class BodyDecoder:
    """Decodes a request body into the request message, whole (`*`) or into one field."""

    def __init__(self, message: Descriptor, body: str, *, ignore_unknown_fields: bool) -> None:
        self._ignore_unknown = ignore_unknown_fields
        self._field = None if body == "*" else _top_field(message, body, "body")
        field = self._field
        # A message field (not a map, not a list, not a one-value well-known type) takes the
        # body as its own JSON object; any other field is set as if the body were its value.
        self._into_message = field is None or (
            field.message_type is not None
            and not field.is_repeated
            and field.message_type.full_name not in TEXT_MESSAGES | WRAPPERS
            and field.message_type.full_name != "google.protobuf.Value"
        )

    def decode(self, data: bytes, message: Message) -> None:
        """Merges the JSON body into `message`; raises `CodecError` on bad JSON or values."""
        field = self._field
        if not data.strip():
            if field is not None and self._into_message:
                getattr(message, field.name).SetInParent()
            return
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise CodecError("INVALID_JSON", "", f"the body is not JSON: {error}") from None
        try:
            if field is None:
                self._merge_object(value, message)
            elif self._into_message:
                target = getattr(message, field.name)
                target.SetInParent()
                self._merge_object(value, target)
            else:
                self._merge({field.json_name: value}, message)
        except json_format.ParseError as error:
            raise CodecError("INVALID_FIELD", field_path(error), _first_line(error)) from None

    def _merge_object(self, value: object, message: Message) -> None:
        if not isinstance(value, dict):
            raise CodecError("INVALID_JSON", "", "the body must be a JSON object")
        self._merge(value, message)

    def _merge(self, value: dict[str, object], message: Message) -> None:
        json_format.ParseDict(value, message, ignore_unknown_fields=self._ignore_unknown)


class ResponseEncoder:
    """Encodes a response message, or its `response_body` field, as proto3 JSON."""

    def __init__(self, message: Descriptor, response_body: str = "") -> None:
        self._field = _top_field(message, response_body, "response_body") if response_body else None
        field = self._field
        self._submessage = (
            field is not None and field.message_type is not None and not field.is_repeated
        )

    def to_dict(self, message: Message) -> Any:
        field = self._field
        if field is None:
            return to_dict(message)
        if self._submessage:
            return to_dict(getattr(message, field.name))
        return to_dict(message).get(field.json_name)

    def encode(self, message: Message) -> bytes:
        return orjson.dumps(self.to_dict(message))


def to_dict(message: Message) -> Any:
    """Proto3 JSON as Python values: camelCase names, 64-bit integers as strings, and fields
    without presence printed even when unset (clients see every field of the contract)."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


_FAILED = re.compile(r"Failed to parse (\S+) field: ")
_AT = re.compile(r' at "?[A-Za-z_]\w*((?:\.\w+|\[\d+\])*)"?\.*$')
_UNKNOWN = re.compile(r'has no field named "([^"]+)"')
_INDEX = re.compile(r"\[\d+\]")


def field_path(error: BaseException) -> str:
    """The path of the field a json_format error is about, as the client spelled it.

    json_format says it two ways: nested "Failed to parse <key> field:" prefixes (keys as
    sent, no list indices) and, sometimes, an "at <Message>.<path>" suffix with indices.
    """
    names: list[str] = []
    located = ""
    unknown = ""
    current: BaseException | None = error
    while current is not None:
        text = str(current).split("\n", 1)[0]
        prefix = _FAILED.match(text)
        if prefix:
            names.append(prefix.group(1))
        at = _AT.search(text)
        if at and len(at.group(1)) > len(located):
            located = at.group(1).lstrip(".")
        missing = _UNKNOWN.search(text)
        if missing:
            unknown = missing.group(1)
        current = current.__cause__
    if unknown:
        names.append(unknown)
        located = f"{located}.{unknown}" if located else unknown
    path = ".".join(names)
    # Prefer the located form when it is the same path with its list indices.
    return located if _INDEX.sub("", located) == path else path


def _first_line(error: BaseException) -> str:
    """The innermost reason, without json_format's "Failed to parse x field:" chain."""
    text = str(error).split("\n", 1)[0]
    while prefix := _FAILED.match(text):
        text = text[prefix.end() :]
    return text.rstrip(".")
