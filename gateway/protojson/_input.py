"""Proto3 JSON → message, merged as `json_format.ParseDict` merges it.

A message type compiles once into a dict from each key it accepts (json name and proto
name) to a store for its field. `ParseDict`'s semantics are kept: null clears a field
(a `Value` becomes null_value); a list replaces a repeated field and an object a map; an
object merges into a message field; two members of one oneof are refused; unknown keys
and unknown enum names are refused, or skipped when unknown fields are ignored. Refused
here but not by json_format: one field under both its names (the last would win) and a
message given as anything but an object (json_format iterates an array or a string as if
it were the object's keys).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.protojson._errors import DecodeError, show
from gateway.protojson._kinds import (
    JSON_FORMAT_TYPES,
    NULL_VALUE,
    TIMESTAMP,
    VALUE,
    is_map,
    is_wrapper,
)
from gateway.protojson._scalars import SKIP, converter, map_key
from gateway.protojson._types import Convert, Merge, Store

MAX_DEPTH = 100
"""Messages nest at most this deep, as json_format's default `max_recursion_depth`."""
_In: TypeAlias = tuple[Store, str | None, str | None]
"""(store, the json name when the key is a different proto name, the oneof when shared)."""
_EXPECTED = {
    TIMESTAMP: 'an RFC 3339 timestamp such as "2024-01-31T09:30:00Z"',
    "google.protobuf.Duration": 'a duration in seconds such as "1.5s"',
    "google.protobuf.FieldMask": 'comma-separated field paths such as "displayName,email"',
}


def _deeper(depth: int) -> int:
    if depth >= MAX_DEPTH:
        raise DecodeError(f"messages nest deeper than {MAX_DEPTH}")
    return depth + 1


def _choose(chosen: dict[str, str] | None, oneof: str, key: str) -> dict[str, str]:
    """Records `key` as the member of `oneof` that is set; a second member is an error."""
    chosen = {} if chosen is None else chosen
    other = chosen.get(oneof)
    if other is not None:
        raise DecodeError(f'"{other}" is already set, and only one field of "{oneof}" may be', key)
    chosen[oneof] = key
    return chosen


class _MessageIn:
    """The input plan of a message with JSON of its own fields."""

    __slots__ = ("fields", "lenient", "name")

    def __init__(self, name: str, *, lenient: bool) -> None:
        self.name = name
        self.lenient = lenient
        self.fields: dict[str, _In] = {}

    def merge(self, value: Any, message: Message, depth: int) -> None:
        if not isinstance(value, dict):
            raise DecodeError(f"expected a JSON object, got {show(value)}")
        fields = self.fields
        chosen: dict[str, str] | None = None
        for key, item in value.items():
            entry = fields.get(key)
            if entry is None:
                if self.lenient:
                    continue
                raise DecodeError(f"no such field in {self.name}", key)
            store, alias, oneof = entry
            if alias is not None and alias in value:
                raise DecodeError(f'the field is given twice, also as "{alias}"', key)
            if oneof is not None and item is not None:
                chosen = _choose(chosen, oneof, key)
            try:
                store(message, item, depth)
            except DecodeError as error:
                error.at(key)
                raise
            except (TypeError, ValueError) as error:  # upb refusing a value
                raise DecodeError(str(error), key) from None


def _scalar(name: str, convert: Convert, null: int | None) -> Store:
    def store(message: Message, value: Any, depth: int) -> None:
        if value is None:
            if null is None:
                message.ClearField(name)
            else:
                setattr(message, name, null)
            return
        converted = convert(value)
        if converted is not SKIP:
            setattr(message, name, converted)

    return store


def _list(value: Any) -> list[Any] | None:
    """A repeated field's JSON: null (the field is cleared) or an array."""
    if value is None or isinstance(value, list):
        return value
    raise DecodeError(f"expected a JSON array, got {show(value)}")


def _scalars(name: str, convert: Convert) -> Store:
    def store(message: Message, value: Any, depth: int) -> None:
        message.ClearField(name)
        values = _list(value)
        if not values:
            return
        items = getattr(message, name)
        for index, item in enumerate(values):
            try:
                converted = convert(item)
            except DecodeError as error:
                error.at_item(index)
                raise
            if converted is not SKIP:
                items.append(converted)

    return store


def _message(name: str, merge: Merge, *, nullable: bool) -> Store:
    def store(message: Message, value: Any, depth: int) -> None:
        if value is None and not nullable:
            message.ClearField(name)
            return
        child = getattr(message, name)
        child.SetInParent()
        merge(value, child, _deeper(depth))

    return store


def _messages(name: str, merge: Merge) -> Store:
    def store(message: Message, value: Any, depth: int) -> None:
        message.ClearField(name)
        values = _list(value)
        if not values:
            return
        depth = _deeper(depth)
        items = getattr(message, name)
        for index, item in enumerate(values):
            try:
                merge(item, items.add(), depth)
            except DecodeError as error:
                error.at_item(index)
                raise

    return store


_Put: TypeAlias = Callable[[Any, Any, Any, int], None]
"""Puts one entry into a map: (the map, its converted key, the JSON value, depth)."""


def _map(name: str, key: Convert, put: _Put) -> Store:
    def store(message: Message, value: Any, depth: int) -> None:
        message.ClearField(name)
        if value is None:
            return
        if not isinstance(value, dict):
            raise DecodeError(f"expected a JSON object, got {show(value)}")
        entries = getattr(message, name)
        for text, item in value.items():
            try:
                put(entries, key(text), item, depth)
            except DecodeError as error:
                error.at_item(text)
                raise

    return store


def _text(message: Descriptor) -> Merge:
    """A well-known type that parses its own one-string form."""
    expected = _EXPECTED[message.full_name]

    def merge(value: Any, target: Any, depth: int) -> None:
        try:
            target.FromJsonString(value)
        except (TypeError, ValueError):
            raise DecodeError(f"expected {expected}, got {show(value)}") from None

    return merge


def _wrapper(convert: Convert) -> Merge:
    def merge(value: Any, target: Message, depth: int) -> None:
        setattr(target, "value", convert(value))  # noqa: B010

    return merge


def _by_json_format(message: Descriptor, *, lenient: bool) -> Merge:
    name = message.name

    def merge(value: Any, target: Message, depth: int) -> None:
        try:
            json_format.ParseDict(
                value,
                target,
                ignore_unknown_fields=lenient,
                max_recursion_depth=MAX_DEPTH + 1 - depth,
            )
        except (json_format.ParseError, KeyError, TypeError, ValueError) as error:
            reason = str(error).split("\n", 1)[0]
            raise DecodeError(f"not a valid {name}: {reason}") from None

    return merge


class Decoders:
    """Input plans, one per message type, refusing or skipping unknown keys (`lenient`)."""

    def __init__(self, *, lenient: bool) -> None:
        self._lenient = lenient
        self._plans: dict[Descriptor, Merge] = {}

    def message(self, message: Descriptor) -> Merge:
        plan = self._plans.get(message)
        if plan is None:
            plan = self._well_known(message)
            if plan is not None:
                self._plans[message] = plan
            else:
                regular = _MessageIn(message.full_name, lenient=self._lenient)
                # Cached before its fields are compiled, so that recursive types find it.
                self._plans[message] = plan = regular.merge
                regular.fields = self._fields(message)
        return plan

    def _fields(self, message: Descriptor) -> dict[str, _In]:
        fields: dict[str, _In] = {}
        by_json: dict[str, _In] = {}
        for field in message.fields:
            store = self.store(field)
            oneof = field.containing_oneof
            shared = oneof.name if oneof is not None and len(oneof.fields) > 1 else None
            # A field sent under both names is found from either; checking from the proto
            # name alone keeps the usual spelling, the json name, free of the check.
            other = field.json_name if field.json_name != field.name else None
            fields[field.name] = (store, other, shared)
            by_json[field.json_name] = (store, None, shared)
        fields.update(by_json)  # json names win, as in json_format
        return fields

    def store(self, field: FieldDescriptor) -> Store:
        """Sets `field` of a message from its JSON value."""
        name = field.name
        if is_map(field):
            return self._map(field)
        message = field.message_type
        if message is not None:
            merge = self.message(message)
            if field.is_repeated:
                return _messages(name, merge)
            return _message(name, merge, nullable=message.full_name == VALUE)
        convert = converter(field, lenient=self._lenient)
        if field.is_repeated:
            return _scalars(name, convert)
        enum = field.enum_type
        return _scalar(
            name, convert, 0 if enum is not None and enum.full_name == NULL_VALUE else None
        )

    def _map(self, field: FieldDescriptor) -> Store:
        assert field.message_type is not None
        entry = field.message_type.fields_by_name
        value = entry["value"]
        if value.message_type is not None:
            merge = self.message(value.message_type)

            def put(entries: Any, key: Any, item: Any, depth: int) -> None:
                merge(item, entries[key], _deeper(depth))

        else:
            convert = converter(value, lenient=self._lenient)

            def put(entries: Any, key: Any, item: Any, depth: int) -> None:
                converted = convert(item)
                if converted is not SKIP:
                    entries[key] = converted

        return _map(field.name, map_key(entry["key"]), put)

    def _well_known(self, message: Descriptor) -> Merge | None:
        if message.full_name in _EXPECTED:
            return _text(message)
        if is_wrapper(message):
            return _wrapper(converter(message.fields_by_name["value"], lenient=False))
        if message.full_name in JSON_FORMAT_TYPES:
            return _by_json_format(message, lenient=self._lenient)
        return None
