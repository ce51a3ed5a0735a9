"""The parameters of an operation: each path parameter (named by `_paths`, described by
the request field it sets), each field the route's query parser takes (dotted paths; a
recursive message's fields once), and the headers the gateway reads for the route."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.descriptor import FieldDescriptor

from gateway.openapi._jsonschema import FB, JsonSchema, Schemas, field_behaviors
from gateway.openapi._paths import Wildcard
from gateway.routes import Route
from gateway.semantics import Semantics
from gateway.streams import revisions_of

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
            if wildcard.name != wildcard.variable.name:
                sets = f"Sets the request's `{wildcard.variable.name}`."
                comment = f"{sets}\n\n{comment}" if comment else sets
            if comment:
                parameter["description"] = comment
        parameter["schema"] = schema
        parameters.append(parameter)
    return parameters


def query_parameters(route: Route, semantics: Semantics, schemas: Schemas) -> list[JsonSchema]:
    """The query keys the route takes, but for a field that a documented header sets
    (`Idempotency-Key` the request id, `If-Match` the etag): one spelling of each field,
    the header, though the gateway takes either."""
    if route.query is None:
        return []
    bindings = sorted(route.query.bindings(), key=lambda b: tuple(f.index for f in b.fields))
    by_header = {semantics.request_id, ".".join(semantics.etag_in or ())}
    parameters: list[JsonSchema] = []
    for binding in bindings:
        if _recursive(binding.fields) or binding.path in by_header:
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
