"""The stream format a request's `Accept` asks for (RFC 9110 §12.5.1), and the writer of
that format, resuming a Server-Sent Events stream after the `Last-Event-ID` it names."""

from __future__ import annotations

from typing import Final

from google.protobuf.message import Message

from gateway.config import Settings
from gateway.errors import RequestError
from gateway.headers import RequestHeaders
from gateway.routes import Route
from gateway.streams._framing import Writer
from gateway.streams._ndjson import Ndjson
from gateway.streams._sse import (
    LAST_EVENT_ID,
    MAX_EVENT_ID,
    EventStream,
    parse_event_id,
    revisions_of,
)

NDJSON_FORMAT: Final = "application/x-ndjson"
SSE_FORMAT: Final = "text/event-stream"
FORMATS: Final = (NDJSON_FORMAT, SSE_FORMAT)
# The media types each format is served for, the default first, and whether only a range
# naming the type exactly counts: NDJSON also goes to a client that asks for JSON by name,
# but `application/*` or `*/*` stand for NDJSON's own type (which the client may refuse).
_OFFERS: Final = (
    (NDJSON_FORMAT, ("application", "x-ndjson"), False),
    (NDJSON_FORMAT, ("application", "json"), True),
    (SSE_FORMAT, ("text", "event-stream"), False),
)


def writer_for(
    route: Route, headers: RequestHeaders, request: Message, settings: Settings
) -> Writer:
    """The writer the request's `Accept` asks for; may adjust `request` to resume a stream.
    Raises `RequestError` for a request it cannot serve."""
    chosen = negotiate(headers.joined(b"accept"))
    if chosen is None:
        raise RequestError(
            "NOT_ACCEPTABLE",
            None,
            f"a stream is sent as {' or '.join(FORMATS)}, which Accept does not allow",
            http=406,
            headers=[(b"vary", b"Accept")],
            metadata={"supported": ", ".join(FORMATS)},
        )
    if chosen == NDJSON_FORMAT:
        return Writer(route.encoder, Ndjson())
    revisions = revisions_of(route.method)
    last = headers.joined(b"last-event-id")
    if revisions is not None and last is not None and last.strip(" \t"):
        event_id = parse_event_id(last)
        if event_id is None:
            raise RequestError(
                "INVALID_LAST_EVENT_ID",
                LAST_EVENT_ID,
                f"{LAST_EVENT_ID} must be a revision from 0 to {MAX_EVENT_ID}, not {last[:40]!r}",
            )
        revisions.resume_after(request, event_id)
    return Writer(route.encoder, EventStream(revisions, settings.sse_heartbeat_seconds))


def negotiate(accept: str | None) -> str | None:
    """The format `accept` prefers (RFC 9110 §12.5.1), or None when it allows neither.

    An offer's quality is that of the most specific range that matches it; the highest
    quality wins, then the offer named more specifically (`text/event-stream, */*` is
    SSE), then NDJSON. Ranges that do not parse are ignored, and an Accept with none
    that does is as good as none.
    """
    ranges = _ranges(accept or "")
    if not ranges:
        return NDJSON_FORMAT
    best: tuple[float, int] = (0.0, 0)
    chosen: str | None = None
    for name, offer, exact in _OFFERS:
        score = _score(offer, ranges)
        if exact and score[1] < 2:
            continue
        if score[0] > 0 and score > best:
            best, chosen = score, name
    return chosen


def _ranges(accept: str) -> list[tuple[str, str, float]]:
    found = []
    for item in accept.split(","):
        media, *params = item.split(";")
        kind, slash, sub = media.strip().lower().partition("/")
        if not slash or not kind or not sub or (kind == "*" and sub != "*"):
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                quality = _quality(value.strip())
                break
        if quality >= 0:
            found.append((kind, sub, quality))
    return found


def _quality(text: str) -> float:
    """A qvalue (0 to 1, at most three decimals); -1 when it is not one."""
    whole, _, decimals = text.partition(".")
    if whole not in ("0", "1") or len(decimals) > 3 or not (decimals or "0").isdigit():
        return -1.0
    value = float(text)
    return value if value <= 1 else -1.0


def _score(offer: tuple[str, str], ranges: list[tuple[str, str, float]]) -> tuple[float, int]:
    """(quality, specificity) of the most specific range matching `offer`."""
    best = (0.0, -1)
    for kind, sub, quality in ranges:
        if (kind, sub) == offer:
            specificity = 2
        elif kind == offer[0] and sub == "*":
            specificity = 1
        elif kind == "*":
            specificity = 0
        else:
            continue
        if specificity > best[1]:
            best = (quality, specificity)
    return best
