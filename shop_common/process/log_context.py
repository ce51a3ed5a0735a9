"""The request a line of log belongs to: its request id, held in a context variable that the
entry points set (the gateway for each HTTP request, the services' boundary for each call)
and the log formatters read.

Setting it is the only work per request (a context variable set, ~50 ns). A service sets it
to the call's metadata, not to the id: the `x-request-id` is looked up and checked only when
something asks for it (a line is logged, a call to another service forwards it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextvars import ContextVar, Token

REQUEST_ID_KEY = "x-request-id"
"""The header (HTTP) and metadata key (gRPC) that carries a request's id across the hops."""

_VALID = re.compile(r"[\x21-\x7e]{1,128}\Z")
"""1 to 128 visible ASCII characters, as the gateway accepts from its clients: no space, no
control character, nothing that could forge a line or a field of the log."""

Metadata = Iterable[tuple[str, str | bytes]]
RequestIdSource = str | Metadata
"""The request id itself, or the call's metadata to find it in when asked."""

_current: ContextVar[RequestIdSource | None] = ContextVar("shop_request_id", default=None)


def valid_request_id(value: object) -> str | None:
    """`value` if it is a usable request id, else None (a value from another process is
    never trusted: too long, not ASCII, a line break in it, and it is ignored)."""
    if type(value) is str and _VALID.match(value):
        return value
    return None


def request_id_in(metadata: Metadata) -> str | None:
    """The valid `x-request-id` of a call's metadata, if it has one."""
    for key, value in metadata:
        if key == REQUEST_ID_KEY:
            return valid_request_id(value)
    return None


def set_request_id(source: RequestIdSource | None) -> Token[RequestIdSource | None]:
    """This task's (and the tasks it starts) request: its id, or the call's metadata where
    its id is looked up when needed; `reset_request_id(token)` restores the one before."""
    return _current.set(source)


def reset_request_id(token: Token[RequestIdSource | None]) -> None:
    _current.reset(token)


def current_request_id() -> str | None:
    """The request id of the request being served here, if known."""
    source = _current.get()
    if source is None or isinstance(source, str):
        return source
    return request_id_in(source)
