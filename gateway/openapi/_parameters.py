"""The parameters of an operation: its path as OpenAPI writes it (`{user.id}`; a variable
with segments of its own is one parameter with the `pattern` of what it captures), each
path variable, each field the route's query parser takes (dotted paths; a recursive
message's fields once), and the headers the gateway reads for the route."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor

from gateway.openapi._jsonschema import FB, JsonSchema, Schemas, field_behaviors
from gateway.pattern import Kind, Pattern, Segment, Variable
from gateway.routes import Route
from gateway.semantics import Semantics
from gateway.streams import revisions_of

_REGEX_SPECIALS = frozenset("\\.^$*+?()[]{}|")

HEADERS: dict[str, JsonSchema] = {
    "Grpc-Timeout": {
        "description": "The call's deadline as gRPC writes it: 1 to 8 digits and a unit (H, M, "
        "S, m, u, n), e.g. `500m`. The gateway caps it; without it a unary call gets the "
        "gateway's default deadline and a stream none.",
        "schema": {"type": "string", "pattern": "^[0-9]{1,8}[HMSmun]$"},
    },
    "If-Match": {
        "description": 'The resource\'s ETag (quoted, e.g. `"42"`): the call goes through only '
        "if nobody changed the resource since (it sets `etag`); else 412.",
        "schema": {"type": "string", "pattern": '^(\\*|"[\\x21\\x23-\\x7e]*")$'},
    },
    "If-None-Match": {
        "description": "The ETag of the copy the client has: 304 while it is still current.",
        "schema": {"type": "string"},
    },
    "Idempotency-Key": {
        "description": "Makes the call idempotent: a retry with the same key and request "
        "returns the first result (it sets `request_id`).",
        "schema": {"type": "string", "minLength": 1},
    },
    "Last-Event-ID": {
        "description": "Resumes a Server-Sent Events stream after the event with this id "
        "(a revision), as an EventSource does when it reconnects.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
}
"""The request headers the gateway reads for a route, as `components/parameters`."""


@dataclass(frozen=True, slots=True)
class Wildcard:
    """A path parameter: a template variable, or a bare `*`/`**` (variable None)."""

    name: str
    variable: Variable | None
    pattern: str | None
    """The regex of what a multi-segment capture matches; None: one segment, any text."""


def openapi_path(pattern: Pattern) -> tuple[str, list[Wildcard]]:
    """The template as an OpenAPI path, and its parameters in order."""
    starts = {variable.start: variable for variable in pattern.variables}
    segments = pattern.segments
    parts: list[str] = []
    wildcards: list[Wildcard] = []
    i = 0
    while i < len(segments):
        variable = starts.get(i)
        if variable is not None:
            end = len(segments) if variable.end is None else variable.end
            inner = segments[i:end]
            single = len(inner) == 1 and inner[0].kind is Kind.ANY
            wildcards.append(Wildcard(variable.name, variable, None if single else _regex(inner)))
            parts.append(f"{{{variable.name}}}")
            i = end
            continue
        segment = segments[i]
        if segment.kind is Kind.LITERAL:
            parts.append(segment.literal)
        else:  # a bare wildcard: the request must have it, no field takes it
            name = f"_wildcard{sum(w.variable is None for w in wildcards) + 1}"
            wildcards.append(Wildcard(name, None, _regex((segment,))))
            parts.append(f"{{{name}}}")
        i += 1
    verb = f":{pattern.verb}" if pattern.verb else ""
    return "/" + "/".join(parts) + verb, wildcards


def _regex(segments: Sequence[Segment]) -> str:
    """An ECMA-262 regex of the captured text: segments joined by `/`."""
    out = ""
    for i, segment in enumerate(segments):
        if segment.kind is Kind.DEEP:  # zero or more segments, always last
            out += ".*" if i == 0 else "(/.*)?"
            continue
        if segment.kind is Kind.ANY:
            piece = "[^/]+"
        else:
            piece = "".join(f"\\{c}" if c in _REGEX_SPECIALS else c for c in segment.literal)
        out += piece if i == 0 else f"/{piece}"
    return f"^{out}$"


def path_parameters(
    route: Route, wildcards: Sequence[Wildcard], schemas: Schemas
) -> list[JsonSchema]:
    fields = {binding.path: binding.field for binding in route.path_bindings}
    parameters: list[JsonSchema] = []
    for wildcard in wildcards:
        parameter: JsonSchema = {"name": wildcard.name, "in": "path", "required": True}
        if wildcard.variable is None:
            parameter["description"] = "Any text: no field takes it."
            schema: JsonSchema = {"type": "string", "pattern": wildcard.pattern}
        else:
            field = fields[wildcard.variable.name]
            if wildcard.pattern is None:
                schema = schemas.value(field)
                if schema.get("type") == "string":
                    schema["minLength"] = 1
            else:
                schema = {"type": "string", "pattern": wildcard.pattern}
            comment = schemas.comments.of(field)
            if comment:
                parameter["description"] = comment
        parameter["schema"] = schema
        parameters.append(parameter)
    return parameters


def query_parameters(route: Route, schemas: Schemas) -> list[JsonSchema]:
    if route.query is None:
        return []
    bindings = sorted(route.query.bindings(), key=lambda b: tuple(f.index for f in b.fields))
    parameters: list[JsonSchema] = []
    for binding in bindings:
        if _recursive(binding.fields):
            continue
        field = binding.field
        schema = schemas.value(field)
        parameter: JsonSchema = {
            "name": ".".join(schemas.name(f) for f in binding.fields),
            "in": "query",
        }
        comment = schemas.comments.of(field)
        if comment:
            parameter["description"] = comment
        if all(FB.REQUIRED in field_behaviors(f) for f in binding.fields):
            parameter["required"] = True
        if binding.repeated:
            parameter.update(style="form", explode=True)
            schema = {"type": "array", "items": schema}
        parameter["schema"] = schema
        parameters.append(parameter)
    return parameters


def _recursive(fields: Sequence[FieldDescriptor]) -> bool:
    """Whether the path goes through a message type twice (`child.child.name`)."""
    types = [field.containing_type.full_name for field in fields if field.containing_type]
    return len(set(types)) != len(types)


def header_parameters(route: Route, semantics: Semantics) -> list[JsonSchema]:
    headers = ["Grpc-Timeout"]
    if semantics.etag_in is not None:
        headers.append("If-Match")
    if answers_not_modified(route, semantics):
        headers.append("If-None-Match")
    if semantics.request_id is not None:
        headers.append("Idempotency-Key")
    if route.server_streaming and revisions_of(route.method) is not None:
        headers.append("Last-Event-ID")
    return [{"$ref": f"#/components/parameters/{name}"} for name in headers]


def answers_not_modified(route: Route, semantics: Semantics) -> bool:
    return route.http_method == "GET" and semantics.etag_out and not route.server_streaming
