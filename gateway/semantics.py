"""HTTP semantics from the AIPs, read once per route from the descriptors:

- the success status: 201 for a standard Create (AIP-133), 204 for an empty response;
- `ETag` from the resource's `etag` field, `If-Match` into the request's `etag` (a
  mismatch is then 412, not 409), `If-None-Match` on a read answered 304;
- `Idempotency-Key` into the request's `request_id` (AIP-155);
- `Location` of a created resource, from the route that reads it back;
- PATCH without a mask: the FieldMask filled from the JSON keys sent (AIP-134).

Nothing here knows the product's messages: it goes by field names and types.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

import grpc
from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.codec import BodyDecoder
from gateway.errors import RequestError
from gateway.headers import RequestHeaders, invalid_header
from gateway.routes import Route
from gateway.wellknown import FIELD_MASK

_OUTPUT_ONLY = field_behavior_pb2.OUTPUT_ONLY
_IDENTIFIER = field_behavior_pb2.IDENTIFIER
_VARIABLE = re.compile(r"\{([^}=]+)(=[^}]*)?\}")
_ETAG_CHARS = re.compile(r"[\x21\x23-\x7e]*\Z")  # RFC 9110 etagc, without obs-text


def precondition_failed(description: str) -> RequestError:
    """An `If-Match` that cannot hold, whatever the resource is now (RFC 9110 13.1.1)."""
    return RequestError(
        "PRECONDITION_FAILED", None, description, code=grpc.StatusCode.FAILED_PRECONDITION, http=412
    )


def response_type(route: Route) -> Descriptor:
    """The message the HTTP body carries: the response, or its `response_body` field's type."""
    output = route.method.output_type
    if route.response_body:
        field = output.fields_by_name[route.response_body]
        if field.message_type is not None and not field.is_repeated:
            return field.message_type
    return output


def success_status(route: Route) -> int:
    """201 for a standard Create (AIP-133: `POST` to `CreateX`), 204 when the response has
    no fields (`google.protobuf.Empty` or an empty message), else 200."""
    if not route.server_streaming and not response_type(route).fields:
        return 204
    if route.http_method == "POST" and route.method.name.startswith("Create"):
        return 201
    return 200


@dataclass(frozen=True, slots=True)
class Semantics:
    """What one route does with the AIP headers; each part is None where it does not apply."""

    status: int
    etag_in: tuple[str, ...] | None
    """Request field path that `If-Match` sets: `etag`, or `etag` inside the body's message."""
    request_id: str | None
    """Top-level request field that `Idempotency-Key` sets."""
    etag_out: bool
    """Whether the resource the body carries has an `etag` to send as `ETag`."""
    location: tuple[str, tuple[str, ...]] | None
    """For a create: the template of the route that reads the resource, and the resource
    fields that fill its variables."""
    writes: bool
    """Whether the route changes something (not GET or HEAD): `If-Match` applies."""
    mask: str | None
    """For a PATCH: the FieldMask field that the body's keys fill when the client sent none."""
    unmasked: frozenset[str] = frozenset()
    """Body keys that never go into that mask: the path's, the output-only, the etag."""

    def mask_paths(self, body: BodyDecoder, sent: object) -> list[str]:
        """The mask of a PATCH: the proto paths of the JSON keys sent, as AIP-134 asks."""
        return [p for p in body.field_paths(sent) if p.split(".", 1)[0] not in self.unmasked]

    def apply_headers(self, headers: RequestHeaders, request: Message) -> bool:
        """Sets the request's etag from `If-Match` and request id from `Idempotency-Key`;
        says whether an `If-Match` was applied (a mismatch is then 412). An `If-Match` on a
        create cannot hold (nothing exists yet); on another write without an etag to check
        it is refused rather than ignored; reads ignore it."""
        conditional = False
        if not self.writes and self.request_id is None:
            return conditional
        for name, value in headers.request_fields:
            if name == b"if-match" and self.writes:
                tag = _single_etag("If-Match", value)
                if self.status == 201:
                    raise precondition_failed("If-Match on a create: nothing exists yet to match")
                if self.etag_in is None:
                    raise invalid_header("If-Match", "this route has no etag to make conditional")
                if tag is not None:
                    _set_text(request, self.etag_in, tag, "If-Match")
                    conditional = True
            elif name == b"idempotency-key" and self.request_id is not None:
                key = _text("Idempotency-Key", value).strip('"')
                if not key:
                    raise invalid_header("Idempotency-Key", "must not be empty")
                _set_text(request, (self.request_id,), key, "Idempotency-Key")
        return conditional

    def etag_of(self, resource: Message) -> bytes | None:
        """The `ETag` header value of a resource, quoted; None when it has none."""
        if not self.etag_out:
            return None
        tag: str = getattr(resource, "etag", "")
        if not tag or not _ETAG_CHARS.match(tag):
            return None
        return f'"{tag}"'.encode()

    def location_of(self, resource: Message) -> bytes | None:
        if self.location is None:
            return None
        template, names = self.location
        values = [str(getattr(resource, name)) for name in names]
        if not all(values):
            return None
        filled = iter(values)
        path = _VARIABLE.sub(
            lambda match: quote(next(filled), safe="/" if match.group(2) else ""), template
        )
        return path.encode()


def not_modified(headers: RequestHeaders, etag: bytes) -> bool:
    """Whether a read's `If-None-Match` names `etag` (weak comparison, RFC 9110 13.1.2);
    repeated header lines count as one list."""
    if headers.get(b"if-none-match") is None:
        return False  # the usual case, without walking lines
    for value in headers.lines(b"if-none-match"):
        if any(tag.strip() in (b"*", etag, b"W/" + etag) for tag in value.split(b",")):
            return True
    return False


def semantics_table(routes: Iterable[Route]) -> Mapping[Route, Semantics]:
    routes = list(routes)
    return {route: _semantics(route, routes) for route in routes}


def _semantics(route: Route, routes: list[Route]) -> Semantics:
    request = route.method.input_type
    resource = response_type(route)
    status = success_status(route)
    mask = _mask_field(route, request)
    return Semantics(
        status=status,
        # A create has no current version to compare with.
        etag_in=None if status == 201 else _etag_path(route, request),
        request_id="request_id" if _is_string(request.fields_by_name.get("request_id")) else None,
        etag_out=_is_string(resource.fields_by_name.get("etag")),
        location=_location(resource, routes) if status == 201 else None,
        writes=route.http_method not in ("GET", "HEAD"),
        mask=mask,
        unmasked=_unmasked(route, request) if mask is not None else frozenset(),
    )


def _is_string(field: FieldDescriptor | None) -> bool:
    return field is not None and field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated


def _etag_path(route: Route, request: Descriptor) -> tuple[str, ...] | None:
    if _is_string(request.fields_by_name.get("etag")):
        return ("etag",)
    body = request.fields_by_name.get(route.body_field)
    inner = None if body is None or body.is_repeated else body.message_type
    if body is not None and inner is not None and _is_string(inner.fields_by_name.get("etag")):
        return (body.name, "etag")
    return None


def _location(resource: Descriptor, routes: list[Route]) -> tuple[str, tuple[str, ...]] | None:
    """The GET route that returns this resource type, and the resource fields its path
    variables name (`/v1/users/{id}` → `id`; `/v1/{name=shelves/*}` → `name`)."""
    for other in routes:
        if other.http_method != "GET" or other.server_streaming or not other.pattern.variables:
            continue
        if other.pattern.verb or response_type(other).full_name != resource.full_name:
            continue
        names = tuple(v.field_path[-1] for v in other.pattern.variables)
        if all(_is_string(resource.fields_by_name.get(name)) for name in names):
            return other.pattern.template, names
    return None


def _mask_field(route: Route, request: Descriptor) -> str | None:
    """The FieldMask a PATCH's body keys fill: only for a body that is one resource field
    (with `body: "*"` the keys are the request's, not the resource's), `update_mask` first."""
    if route.http_method != "PATCH" or route.body_field in ("", "*"):
        return None
    bound = {v.field_path[0] for v in route.pattern.variables}
    masks = [
        f.name
        for f in request.fields
        if _is_mask(f) and f.name not in bound and f.name != route.body_field
    ]
    return "update_mask" if "update_mask" in masks else next(iter(masks), None)


def _unmasked(route: Route, request: Descriptor) -> frozenset[str]:
    """Keys of the body's resource that a PATCH's mask leaves out: those the path binds,
    the output-only and identifier fields, and the etag (a precondition, not a change)."""
    body = request.fields_by_name[route.body_field]
    if body.message_type is None:
        return frozenset()
    names = {"etag"}
    for variable in route.pattern.variables:
        path = variable.field_path
        if path[0] == body.name and len(path) > 1:
            names.add(path[1])
    for field in body.message_type.fields:
        behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
        if _OUTPUT_ONLY in behaviors or _IDENTIFIER in behaviors:
            names.add(field.name)
    return frozenset(names)


def _is_mask(field: FieldDescriptor) -> bool:
    message = field.message_type
    return message is not None and message.full_name == FIELD_MASK and not field.is_repeated


def _text(header: str, value: bytes) -> str:
    try:
        text = value.decode("ascii").strip()
    except UnicodeDecodeError:
        raise invalid_header(header, "must be ASCII") from None
    if not text.isprintable():
        raise invalid_header(header, "must be printable")
    return text


def _single_etag(header: str, value: bytes) -> str | None:
    """The one entity tag an `If-Match` names; None for `*` (any current resource)."""
    text = _text(header, value)
    if text == "*":
        return None
    if "," in text:
        raise invalid_header(header, "name exactly one entity tag")
    if text.startswith("W/"):
        raise precondition_failed("a weak entity tag never matches for a write (RFC 9110 13.1.1)")
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        raise invalid_header(header, 'an entity tag is quoted, e.g. "42"')
    return text[1:-1]


def _set_text(request: Message, path: tuple[str, ...], value: str, header: str) -> None:
    target = request
    for name in path[:-1]:
        target = getattr(target, name)
    current: str = getattr(target, path[-1])
    if current and current != value:
        field = ".".join(path)
        raise invalid_header(header, f"differs from the {field} given in the request")
    setattr(target, path[-1], value)
