"""Where a watch event is made: a changelog row → the service's `<Resource>Event`, built once
and shared, serialized, by every watcher that wants it (see `watch`)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from shop_common.feed.watch import check_layout
from shop_common.storage import Change, ChangeType, Resource, RowCodec

R = TypeVar("R", bound=Resource)


def serialized(change: Change, variant: Hashable, build: Callable[[], Message]) -> bytes:
    """The serialized message `build` makes of `change`: built once per change and variant
    (e.g. with or without the previous value), then shared by every watcher."""
    key = ("serialized", variant)
    found: bytes | None = change.cache.get(key)
    if found is None:
        found = change.cache[key] = build().SerializeToString()
    return found


@dataclass(frozen=True)
class EventKind(Generic[R]):
    """One service's feed messages: its event and response types, the event's resource field
    name, how a row becomes a resource and a resource a message."""

    event: type[Message]
    response: type[Message]
    name: str
    """The resource's field in the event (`user`, beside `prev_user`)."""
    rows: RowCodec[R]
    message: Callable[[R], Message]
    _types: dict[ChangeType, int] = field(init=False)

    def __post_init__(self) -> None:
        check_layout(self.response.DESCRIPTOR)  # type: ignore[arg-type]  # upb's own type
        enum = self.event.DESCRIPTOR.fields_by_name["type"].enum_type
        assert enum is not None, f"{self.event.DESCRIPTOR.full_name}.type is not an enum"
        values = enum.values_by_name
        types = {ChangeType.PUT: values["TYPE_PUT"].number}
        types[ChangeType.DELETE] = values["TYPE_DELETE"].number
        object.__setattr__(self, "_types", types)

    def build(self, change: Change, with_prev: bool) -> Message:
        fields: dict[str, Any] = {
            "type": self._types[change.type],
            self.name: self.message(self.rows.from_row(change.row())),
            "revision": change.revision,
        }
        if with_prev and (prev := change.prev_row()) is not None:
            fields[f"prev_{self.name}"] = self.message(self.rows.from_row(prev))
        return self.event(**fields)


def everything(_change: Change) -> bool:
    return True


class ResourceEvents(Generic[R]):
    """A watch's `Encoder` (see `watch`): the events one request asked for."""

    def __init__(
        self,
        kind: EventKind[R],
        *,
        with_prev: bool,
        wants: Callable[[Change], bool] = everything,
    ) -> None:
        self._kind = kind
        self._prev = with_prev
        self.wants = wants

    def event(self, change: Change) -> bytes:
        return serialized(change, self._prev, lambda: self._kind.build(change, self._prev))

    def compacted(self, compact_revision: int, header_revision: int) -> Message:
        return self._kind.response(
            compact_revision=compact_revision, header_revision=header_revision
        )

    def progress(self, header_revision: int) -> Message:
        return self._kind.response(progress_notify=True, header_revision=header_revision)
