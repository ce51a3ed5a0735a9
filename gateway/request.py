"""Building a route's request message from an HTTP request: the body first, then the path
variables, then the query; and a PATCH's field mask from the body's keys."""

from __future__ import annotations

import re

from google.protobuf.message import Message

from gateway.body import has_body, read_body
from gateway.config import Settings
from gateway.errors import RequestError
from gateway.headers import RequestHeaders
from gateway.routes import Route
from gateway.semantics import Semantics
from gateway.types import Receive

_JSON_TYPE = re.compile(rb"\s*application/(?:[\w.+-]+\+)?json\s*(?:;|\Z)", re.I)


async def build_request(
    route: Route,
    semantics: Semantics,
    captures: list[str],
    query: bytes,
    headers: RequestHeaders,
    receive: Receive,
    settings: Settings,
) -> Message:
    """The request message; `RequestError` names what the client got wrong."""
    request = route.request_class()
    strict = settings.strict
    sent: object = None
    if route.body is not None:
        data = await read_body(headers, receive, settings.max_body_bytes)
        if data and (strict or headers.get(b"origin") is not None):
            _require_json(headers)
        sent = route.body.decode(data, request)
    elif strict and has_body(headers):
        raise RequestError("BODY_NOT_ALLOWED", "", f"{route.http_method} takes no body here")
    if captures:
        twice = route.bound_in(request) if strict and sent is not None else None
        if twice is not None:
            raise RequestError(
                "FIELD_IN_PATH_AND_BODY",
                twice,
                f"{twice} is given by the path; leave it out of the body",
            )
        route.bind_path(request, captures)
    if query and route.query is not None:
        route.query.parse(query, request)
    mask = semantics.mask
    if mask is not None and sent is not None and not request.HasField(mask):
        assert route.body is not None
        getattr(request, mask).paths.extend(semantics.mask_paths(route.body, sent))
    return request


def _require_json(headers: RequestHeaders) -> None:
    """A body from a browser (or in strict mode) must say it is JSON: a page may send
    `text/plain` or a form to any origin without a preflight, so that is what CSRF uses."""
    for value in headers.lines(b"content-type"):
        if _JSON_TYPE.match(value):
            return
    raise RequestError(
        "UNSUPPORTED_MEDIA_TYPE",
        "content-type",
        "the body must be sent as Content-Type: application/json",
        http=415,
    )
