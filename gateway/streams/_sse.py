"""Server-Sent Events (`text/event-stream`, WHATWG HTML): a `retry:` line first, a `data:`
line per message (its JSON, with `id:` on a resumable stream), `: heartbeat` comments
while idle, and a last `event: error` whose data is a google.rpc.Status.

Ids come from the descriptors, never from a route's name: a stream is resumable when its
request has an int64 `start_revision` and its response an int64 `header_revision` and one
repeated message field whose element has an int64 `revision` (the change feeds). A
response's id is its last event's revision, or a progress notification's
`header_revision`; a `fragment` of a revision, or a response with `compact_revision`, has
none, so that an EventSource resuming from the last id it saw never skips nor repeats a
revision.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.rpc import status_pb2

from gateway.errors import status_dict
from gateway.metadata import response_headers
from gateway.types import Headers, MetadataPairs

CONTENT_TYPE: Final = b"text/event-stream"
RETRY_MILLISECONDS: Final = 1000
"""The reconnection delay suggested to clients (browsers' own default is about 3 s)."""
LAST_EVENT_ID: Final = "Last-Event-ID"
MAX_EVENT_ID: Final = 2**63 - 2
"""The largest id a client may resume after: `start_revision` (int64) takes id + 1."""

_HEADERS: Final = (
    (b"content-type", CONTENT_TYPE),
    (b"cache-control", b"no-cache"),
    # nginx buffers responses by default: an event would wait for the buffer to fill.
    (b"x-accel-buffering", b"no"),
)


@dataclass(frozen=True, slots=True)
class Revisions:
    """Where a resumable stream keeps its revisions: field names, read from descriptors."""

    start: str
    """The request's int64 field to resume from (`start_revision`)."""
    header: str
    events: str
    revision: str
    """The int64 field of an element of `events`."""
    progress: str | None
    fragment: str | None
    compact: str | None

    def event_id(self, response: Message) -> int | None:
        """The id of `response`: the revision up to which the stream is delivered once it
        is read, or None when resuming after it could lose part of a revision."""
        if self.compact is not None and getattr(response, self.compact):
            return None
        if self.fragment is not None and getattr(response, self.fragment):
            return None
        events = getattr(response, self.events)
        if events:
            revision: int = getattr(events[-1], self.revision)
            return revision
        if self.progress is not None and getattr(response, self.progress):
            header: int = getattr(response, self.header)
            return header
        return None

    def resume_after(self, request: Message, event_id: int) -> None:
        setattr(request, self.start, event_id + 1)


@functools.cache
def revisions_of(method: MethodDescriptor) -> Revisions | None:
    """How `method`'s responses map to event ids (read once per method); None when its
    stream is not resumable."""
    request, response = method.input_type, method.output_type
    start = _field(request, "start_revision", FieldDescriptor.TYPE_INT64)
    header = _field(response, "header_revision", FieldDescriptor.TYPE_INT64)
    lists = [
        field
        for field in response.fields
        if field.is_repeated
        and field.message_type is not None
        and not field.message_type.GetOptions().map_entry
        and _field(field.message_type, "revision", FieldDescriptor.TYPE_INT64) is not None
    ]
    if start is None or header is None or len(lists) != 1:
        return None
    progress = _field(response, "progress_notify", FieldDescriptor.TYPE_BOOL)
    fragment = _field(response, "fragment", FieldDescriptor.TYPE_BOOL)
    compact = _field(response, "compact_revision", FieldDescriptor.TYPE_INT64)
    return Revisions(
        start=start.name,
        header=header.name,
        events=lists[0].name,
        revision="revision",
        progress=None if progress is None else progress.name,
        fragment=None if fragment is None else fragment.name,
        compact=None if compact is None else compact.name,
    )


def _field(message: Descriptor, name: str, kind: int) -> FieldDescriptor | None:
    found = message.fields_by_name.get(name)
    if found is None or found.type != kind or found.is_repeated:
        return None
    return found


def parse_event_id(value: str) -> int | None:
    """A `Last-Event-ID` value as the revision it names; None when it is not a whole
    number from 0 to `MAX_EVENT_ID` (digits only: no sign, no spaces inside)."""
    text = value.strip(" \t")
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    number = int(text)
    return number if number <= MAX_EVENT_ID else None


class EventStream:
    """Frames a stream as Server-Sent Events, ids from `revisions` (None: no ids)."""

    __slots__ = ("heartbeat", "revisions")

    kind = "sse"
    headers: tuple[tuple[bytes, bytes], ...] = _HEADERS
    preamble: bytes = b"retry: %d\n\n" % RETRY_MILLISECONDS
    ping: bytes = b": heartbeat\n\n"

    def __init__(self, revisions: Revisions | None, heartbeat: float) -> None:
        self.revisions = revisions
        self.heartbeat: float | None = heartbeat

    def message(self, response: Message, value: object) -> bytes:
        # orjson escapes every line break inside strings: the JSON is always one line.
        data = orjson.dumps(value)
        event_id = None if self.revisions is None else self.revisions.event_id(response)
        if event_id is None:
            return b"data: " + data + b"\n\n"
        return b"id: %d\ndata: %b\n\n" % (event_id, data)

    def error(self, status: status_pb2.Status, trailing: MetadataPairs) -> bytes:
        return b"event: error\ndata: " + orjson.dumps(status_dict(status)) + b"\n\n"

    def metadata_headers(self, initial: MetadataPairs) -> Headers:
        return response_headers(initial, None)

    def end(self, trailing: MetadataPairs) -> bytes:
        return b""
