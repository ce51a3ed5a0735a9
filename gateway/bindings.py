"""Setting one field of a request message from a string: path variables and query values.

A `Binding` is built once per field path at start-up: the descriptors to walk, the
conversion of the text (`gateway.convert`), and how to store it (assign, append, or copy
a well-known type). A `MapBinding` does the same for the entries of a map field
(`labels[key]=value`). At request time they only convert, walk and store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.convert import BindingError, Convert, converter, is_text_field
from gateway.wellknown import is_map

Store = Callable[[Message, str], None]


def _store(field: FieldDescriptor) -> Store:
    """How the last field of a path takes its text."""
    name = field.name
    convert = converter(field)
    if field.message_type is not None:
        if field.is_repeated:
            return lambda parent, text: getattr(parent, name).append(convert(text))
        return lambda parent, text: getattr(parent, name).CopyFrom(convert(text))
    if field.is_repeated:
        return lambda parent, text: getattr(parent, name).append(convert(text))
    return lambda parent, text: setattr(parent, name, convert(text))


def _real_oneof(field: FieldDescriptor) -> str | None:
    """The oneof the field belongs to, unless it is the synthetic one of a proto3 `optional`
    (whose only member is the field, so no other member can be set)."""
    oneof = field.containing_oneof
    if oneof is None or len(oneof.fields) == 1:
        return None
    return oneof.name


def _walk(
    message: Message, fields: tuple[FieldDescriptor, ...], oneofs: tuple[str | None, ...]
) -> Message:
    """The message holding the last field, each step refusing to switch a oneof that the
    body, the path or an earlier key already set to another member."""
    last = len(fields) - 1
    for i, (field, oneof) in enumerate(zip(fields, oneofs, strict=True)):
        if oneof is not None:
            chosen = message.WhichOneof(oneof)
            if chosen is not None and chosen != field.name:
                raise BindingError(
                    f"{chosen} is already set, and {field.name} is in the same oneof {oneof}"
                )
        if i < last:
            message = getattr(message, field.name)
    return message


@dataclass(frozen=True, slots=True)
class Binding:
    """A field path of a request message that text can set, e.g. `user.id`."""

    path: str
    """The path with proto field names, dot-separated."""
    fields: tuple[FieldDescriptor, ...]
    store: Store
    oneofs: tuple[str | None, ...]
    """Per field of the path: its (real) oneof, or None."""

    @property
    def field(self) -> FieldDescriptor:
        return self.fields[-1]

    @property
    def repeated(self) -> bool:
        return self.fields[-1].is_repeated

    def set(self, message: Message, text: str) -> None:
        """Sets the field; raises `BindingError` when the text is not a value of its type."""
        self.store(_walk(message, self.fields, self.oneofs), text)


@dataclass(frozen=True, slots=True)
class MapBinding:
    """A map field that text sets entry by entry: the key's text, then the value's."""

    path: str
    fields: tuple[FieldDescriptor, ...]
    oneofs: tuple[str | None, ...]
    _key: Convert
    _value: Convert
    _message_values: bool

    @property
    def field(self) -> FieldDescriptor:
        return self.fields[-1]

    def key(self, text: str) -> object:
        """The entry key the text names; `BindingError` when it is not of the key type."""
        try:
            return self._key(text)
        except BindingError as error:
            raise BindingError(f"bad map key: {error}") from None

    def set(self, message: Message, key: object, text: str) -> None:
        """Sets the entry `key` (from `key()`); raises `BindingError` for a bad value."""
        value = self._value(text)
        entries = getattr(_walk(message, self.fields, self.oneofs), self.fields[-1].name)
        if self._message_values:
            entries[key].CopyFrom(value)
        else:
            entries[key] = value


def resolve(message: Descriptor, path: Sequence[str]) -> tuple[FieldDescriptor, ...]:
    """The descriptors along a path of proto field names; `KeyError` names a missing one."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = message
    for part in path:
        if current is None:
            raise KeyError(f"{'.'.join(path)}: {fields[-1].name} is not a message")
        field = current.fields_by_name.get(part)
        if field is None:
            raise KeyError(f"{'.'.join(path)}: {current.full_name} has no field {part!r}")
        if fields and fields[-1].is_repeated:
            raise KeyError(f"{'.'.join(path)}: {fields[-1].name} is repeated")
        fields.append(field)
        current = field.message_type
    return tuple(fields)


def binding(fields: tuple[FieldDescriptor, ...]) -> Binding:
    """A binding for a path of fields; `TypeError` when text cannot set its last field."""
    if is_map(fields[-1]):
        raise TypeError(f"{fields[-1].full_name}: a map is set entry by entry (map_binding)")
    if not is_text_field(fields[-1]):
        raise TypeError(f"{fields[-1].full_name}: this message type cannot be set from text")
    path = ".".join(f.name for f in fields)
    return Binding(path, fields, _store(fields[-1]), tuple(_real_oneof(f) for f in fields))


def map_binding(fields: tuple[FieldDescriptor, ...]) -> MapBinding:
    """A binding for the entries of a map field; `TypeError` when text cannot set them."""
    if not is_map(fields[-1]):
        raise TypeError(f"{fields[-1].full_name} is not a map")
    entry = fields[-1].message_type
    assert entry is not None
    key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
    if not is_text_field(value):
        raise TypeError(f"{fields[-1].full_name}: map values of this type cannot be set from text")
    return MapBinding(
        ".".join(f.name for f in fields),
        fields,
        tuple(_real_oneof(f) for f in fields),
        converter(key),
        converter(value),
        value.message_type is not None,
    )
