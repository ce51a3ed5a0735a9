"""Proto3 JSON both ways for a route (gateway.protojson, bytes by orjson), with the
`body` and `response_body` selectors of its rule applied.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway import protojson
from gateway.errors import RequestError


def _top_field(message: Descriptor, name: str, role: str) -> FieldDescriptor:
    field = message.fields_by_name.get(name)
    if field is None:
        raise ValueError(f"{role} {name!r}: {message.full_name} has no such field")
    return field


class BodyDecoder:
    """Decodes a request body into the request message, whole (`*`) or into one field."""

    def __init__(self, message: Descriptor, body: str, *, ignore_unknown_fields: bool) -> None:
        field = None if body == "*" else _top_field(message, body, "body")
        self._field = field
        # A plain message field takes the body as its own JSON object; any other field (a
        # scalar, a list, a map, a well-known type) is set as if the body were its value.
        target = message if field is None else field.message_type
        self._into_message = field is None or protojson.is_plain_message(field)
        if self._into_message and target is not None:
            self._decode = protojson.decoder(target, ignore_unknown_fields=ignore_unknown_fields)
            self._paths = protojson.field_paths(target)
        else:
            assert field is not None
            self._decode = protojson.field_decoder(
                field, ignore_unknown_fields=ignore_unknown_fields
            )
            self._paths = _no_paths

    def decode(self, data: bytes, message: Message) -> object:
        """Merges the JSON body into `message` and returns the parsed JSON (None for an empty
        body). Bad JSON or values raise `RequestError` naming the field as the client spelled
        it: keys joined by `.`, `[n]` for a list element, `[key]` for a map value."""
        field = self._field
        if not data.strip():
            if field is not None and self._into_message:
                getattr(message, field.name).SetInParent()
            return None
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise RequestError("INVALID_JSON", "", f"the body is not JSON: {error}") from None
        target = message
        if self._into_message:
            if not isinstance(value, dict):
                raise RequestError("INVALID_JSON", "", "the body must be a JSON object")
            if field is not None:
                target = getattr(message, field.name)
                target.SetInParent()
        try:
            self._decode(value, target)
        except protojson.DecodeError as error:
            if not self._into_message:
                assert field is not None
                error.at(field.json_name)  # the body is that field's value
            raise RequestError("INVALID_FIELD", error.path, error.description) from None
        return value

    def field_paths(self, value: object) -> list[str]:
        """The proto paths, relative to the body's message, of the fields a decoded body
        sets: nested message objects are followed, maps, lists and well-known types are
        leaves (grpc-gateway's FieldMaskFromRequestBody). Empty when the body is no message."""
        return self._paths(value)


def _no_paths(value: object) -> list[str]:
    return []


class ResponseEncoder:
    """Encodes a response message, or its `response_body` field, as proto3 JSON."""

    def __init__(
        self, message: Descriptor, response_body: str = "", *, proto_names: bool = False
    ) -> None:
        field = _top_field(message, response_body, "response_body") if response_body else None
        if field is None:
            self._encode = protojson.encoder(message, proto_names=proto_names)
        elif field.message_type is not None and not field.is_repeated:
            self._encode = _inner_message(field, proto_names=proto_names)
        else:
            self._encode = protojson.field_encoder(field, proto_names=proto_names)

    def to_dict(self, message: Message) -> Any:
        """The proto3 JSON as Python values (for framings that wrap it, like NDJSON)."""
        return self._encode(message)

    def encode(self, message: Message) -> bytes:
        return orjson.dumps(self.to_dict(message))


def _inner_message(field: FieldDescriptor, *, proto_names: bool) -> protojson.Encode:
    """The field's message printed whole, defaults included, even when it is unset."""
    assert field.message_type is not None
    inner = protojson.encoder(field.message_type, proto_names=proto_names)
    name = field.name

    def encode(response: Message) -> Any:
        return inner(getattr(response, name))

    return encode


def to_dict(message: Message) -> Any:
    """Proto3 JSON as Python values: camelCase names, 64-bit integers as strings, and fields
    without presence printed even when unset (clients see every field of the contract)."""
    # The stubs type DESCRIPTOR as upb's Descriptor or the Python one; both are one type here.
    return protojson.encoder(cast(Descriptor, message.DESCRIPTOR))(message)
