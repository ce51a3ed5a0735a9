"""Server streaming in the format the request's `Accept` asks for: newline-delimited JSON
(the default) or Server-Sent Events, one `Framing` each, chosen before the backend is called
(406 when `Accept` allows neither) and relayed until the stream ends or the client leaves.

`Last-Event-ID` (what an EventSource sends when it reconnects) resumes an SSE stream after
the revision it names, overriding `start_revision`; NDJSON, which sends no ids, ignores it.
A watch from "now" (`startRevision` 0) has no id to resume from until its first event:
`progressNotify=true` gives it one at once.
"""

from gateway.streams._framing import Writer
from gateway.streams._negotiation import NDJSON_FORMAT, SSE_FORMAT, negotiate, writer_for
from gateway.streams._relay import relay, stopping_error
from gateway.streams._sse import Revisions, revisions_of

__all__ = [
    "NDJSON_FORMAT",
    "SSE_FORMAT",
    "Revisions",
    "Writer",
    "negotiate",
    "relay",
    "revisions_of",
    "stopping_error",
    "writer_for",
]
