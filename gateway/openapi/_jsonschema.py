"""JSON Schemas (the OpenAPI 3.1 dialect) of proto messages as proto3 JSON carries them.

Each message becomes one component, `#/components/schemas/<full.name>`, referred to by
`$ref`; well-known types are inlined in their JSON form (a Timestamp is a date-time
string). 64-bit integers are strings, as the gateway prints them (it also accepts JSON
numbers); enums are their value names (it also accepts numbers). `google.api.field_behavior`
gives `required` (REQUIRED), `readOnly` (OUTPUT_ONLY, and IDENTIFIER: a resource's name is
assigned by the server and, on update, comes in the path) and `writeOnly` (INPUT_ONLY).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway.openapi._comments import Comments

JsonSchema = dict[str, Any]

REF_PREFIX = "#/components/schemas/"
INT64_PATTERN = r"^-?[0-9]+$"
UINT64_PATTERN = r"^[0-9]+$"
DURATION_PATTERN = r"^-?[0-9]+(\.[0-9]{1,9})?s$"

T = FieldDescriptor
_INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1}
_INT64 = {"type": "string", "format": "int64", "pattern": INT64_PATTERN}
_UINT64 = {"type": "string", "format": "uint64", "pattern": UINT64_PATTERN}
_SCALARS: Mapping[int, JsonSchema] = {
    T.TYPE_INT32: _INT32,
    T.TYPE_SINT32: _INT32,
    T.TYPE_SFIXED32: _INT32,
    T.TYPE_UINT32: _UINT32,
    T.TYPE_FIXED32: _UINT32,
    T.TYPE_INT64: _INT64,
    T.TYPE_SINT64: _INT64,
    T.TYPE_SFIXED64: _INT64,
    T.TYPE_UINT64: _UINT64,
    T.TYPE_FIXED64: _UINT64,
    T.TYPE_FLOAT: {"type": "number", "format": "float"},
    T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    T.TYPE_BOOL: {"type": "boolean"},
    T.TYPE_STRING: {"type": "string"},
    T.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
_SIGNED = frozenset(
    {T.TYPE_INT32, T.TYPE_SINT32, T.TYPE_SFIXED32, T.TYPE_INT64, T.TYPE_SINT64, T.TYPE_SFIXED64}
)
_UNSIGNED = frozenset({T.TYPE_UINT32, T.TYPE_FIXED32, T.TYPE_UINT64, T.TYPE_FIXED64})
_MAP_KEYS: Mapping[int, JsonSchema] = {
    **{kind: {"pattern": INT64_PATTERN} for kind in _SIGNED},
    **{kind: {"pattern": UINT64_PATTERN} for kind in _UNSIGNED},
    T.TYPE_BOOL: {"enum": ["true", "false"]},
}
"""Map keys are JSON object keys, so strings: of an integer or bool key, its text."""
_WELL_KNOWN: Mapping[str, JsonSchema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": DURATION_PATTERN,
        "description": "Seconds with up to 9 decimals and an `s`, e.g. `1.5s`.",
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths, e.g. `displayName,email`.",
    },
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
    **{
        f"google.protobuf.{name}Value": _SCALARS[kind]
        for name, kind in (
            ("Double", T.TYPE_DOUBLE),
            ("Float", T.TYPE_FLOAT),
            ("Int64", T.TYPE_INT64),
            ("UInt64", T.TYPE_UINT64),
            ("Int32", T.TYPE_INT32),
            ("UInt32", T.TYPE_UINT32),
            ("Bool", T.TYPE_BOOL),
            ("String", T.TYPE_STRING),
            ("Bytes", T.TYPE_BYTES),
        )
    },
}
ANY = "google.protobuf.Any"
_ANY_SCHEMA: JsonSchema = {
    "type": "object",
    "description": "A message of any type, named by `@type`; its fields beside it.",
    "properties": {"@type": {"type": "string", "description": "type.googleapis.com/<full.name>"}},
    "required": ["@type"],
}

FB = field_behavior_pb2.FieldBehavior
Exclusions = Iterable[Sequence[str]]
"""Field paths (proto names) left out of a schema: those a route binds from its path."""


class Schemas:
    """Builds schemas and collects the components they refer to."""

    def __init__(self, *, proto_names: bool = False, comments: Comments | None = None) -> None:
        self.proto_names = proto_names
        self.comments = comments or Comments()
        self.components: dict[str, JsonSchema] = {}

    def name(self, field: FieldDescriptor) -> str:
        """The field's name in JSON: its lowerCamelCase JSON name, or its proto name."""
        return field.name if self.proto_names else field.json_name

    def message(
        self, message: Descriptor, exclude: Exclusions = (), *, partial: bool = False
    ) -> JsonSchema:
        """A message value: a `$ref`, its JSON form for a well-known type, or, when some
        fields are excluded or it is `partial` (none of its own fields required: a PATCH
        body), an inline object."""
        paths = [tuple(path) for path in exclude]
        well_known = _WELL_KNOWN.get(message.full_name)
        if well_known is not None:
            return dict(well_known)
        if paths or partial:
            return self._object(message, paths, partial=partial)
        name = message.full_name
        if name not in self.components:
            self.components[name] = {}  # placed first: a recursive message refers to itself
            self.components[name] = dict(_ANY_SCHEMA) if name == ANY else self._object(message, [])
        return {"$ref": REF_PREFIX + name}

    def field(
        self, field: FieldDescriptor, exclude: Exclusions = (), *, partial: bool = False
    ) -> JsonSchema:
        """A field's value (an array for a repeated field, an object for a map), with its
        comment and the annotations of its `field_behavior`."""
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            schema: JsonSchema = {"type": "object", "additionalProperties": self.value(value)}
            names = _MAP_KEYS.get(key.type)
            if names:
                schema["propertyNames"] = dict(names)
        elif field.is_repeated:
            schema = {"type": "array", "items": self.value(field)}
        else:
            schema = self.value(field, exclude, partial=partial)
        behaviors = field_behaviors(field)
        if FB.OUTPUT_ONLY in behaviors or FB.IDENTIFIER in behaviors:
            schema["readOnly"] = True
        if FB.INPUT_ONLY in behaviors:
            schema["writeOnly"] = True
        return describe(schema, self.comments.of(field))

    def value(
        self, field: FieldDescriptor, exclude: Exclusions = (), *, partial: bool = False
    ) -> JsonSchema:
        """One value of the field's type (an element, for a repeated field)."""
        if field.message_type is not None:
            return self.message(field.message_type, exclude, partial=partial)
        if field.enum_type is not None:
            return self.enum(field.enum_type)
        return dict(_SCALARS[field.type])

    def enum(self, enum: EnumDescriptor) -> JsonSchema:
        schema = {"type": "string", "enum": [value.name for value in enum.values]}
        return describe(schema, self.comments.of(enum))

    def _object(
        self, message: Descriptor, exclude: list[tuple[str, ...]], *, partial: bool = False
    ) -> JsonSchema:
        properties: dict[str, JsonSchema] = {}
        required: list[str] = []
        for field in message.fields:
            below = [path[1:] for path in exclude if path[0] == field.name]
            if () in below:
                continue
            properties[self.name(field)] = self.field(field, below)
            if FB.REQUIRED in field_behaviors(field) and not partial:
                required.append(self.name(field))
        schema: JsonSchema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return describe(schema, self.comments.of(message))


def field_behaviors(field: FieldDescriptor) -> frozenset[int]:
    return frozenset(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


def describe(schema: JsonSchema, text: str) -> JsonSchema:
    if text:
        schema["description"] = text
    return schema
