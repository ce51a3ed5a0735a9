"""OpenAPI 3.1 of the routes the gateway serves, built from its live routing table (so it
cannot drift from what is routed), and a small browser page to read it.

- Paths are the rules' templates: `{user.id}` stays; a variable with segments of its own
  (`{name=shelves/*}`, `{path=**}`) is one parameter whose schema has the `pattern` of what
  it captures; a custom verb (`:cancel`) stays as written.
- Parameters: each path variable; each field the route's query parser takes (dotted paths
  for nested fields; a recursive message's fields once, not at every depth); the headers
  the gateway reads: `Grpc-Timeout` everywhere, and where `gateway.semantics` (or, for
  `Last-Event-ID`, `gateway.streams`) applies them `If-Match`, `If-None-Match`,
  `Idempotency-Key` and `Last-Event-ID`.
- A request body never repeats what the path binds: those fields are left out of it (and a
  PATCH body requires nothing: it carries the fields to change).
- Responses: the success status of `gateway.semantics` with the body's schema and its
  `ETag`/`Location` headers (NDJSON lines and Server-Sent Events for a stream), 304 and 412
  where conditional headers apply, and a `default` google.rpc.Status for errors.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from google.protobuf.descriptor import FieldDescriptor, ServiceDescriptor
from google.rpc import status_pb2

from gateway.pattern import Kind, Pattern, Segment, Variable
from gateway.routes import Route
from gateway.schema import FB, Comments, JsonSchema, Schemas, field_behaviors
from gateway.semantics import Semantics, response_type, semantics_table
from gateway.streams import revisions_of

log = logging.getLogger(__name__)

OPENAPI_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
JSON = "application/json"
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
_VERSION = re.compile(r"v[0-9]+(?:(?:alpha|beta)[0-9]*)?\Z")
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
ERROR = "Error"


def document(routes: Sequence[Route], *, proto_names: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`; field names are proto names if `proto_names`
    (as the gateway then prints them), else lowerCamelCase JSON names."""
    comments = Comments()
    schemas = Schemas(proto_names=proto_names, comments=comments)
    served = [route for route in routes if _servable(route)]
    services: dict[str, ServiceDescriptor] = {}
    for route in served:
        service = route.method.containing_service
        services.setdefault(service.full_name, service)
    short = Counter(service.name for service in services.values())
    tags = {
        name: service.name if short[service.name] == 1 else name
        for name, service in services.items()
    }
    operation_ids = _Unique()
    semantics = semantics_table(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in served:
        path, wildcards = openapi_path(route.pattern)
        item = paths.setdefault(path, {})
        verb = route.http_method.lower()
        if verb in item:
            log.warning("OpenAPI: %s has the path and method of another route; left out", route)
            continue
        service = route.method.containing_service
        operation: dict[str, Any] = {
            "operationId": operation_ids.take(f"{service.name}_{route.method.name}"),
            "tags": [tags[service.full_name]],
        }
        _describe_operation(operation, comments.of(route.method))
        operation["parameters"] = [
            *_path_parameters(route, wildcards, schemas),
            *_query_parameters(route, schemas),
            *_header_parameters(route, semantics[route]),
        ]
        body = _request_body(route, schemas)
        if body is not None:
            operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
        operation["responses"] = _responses(route, semantics[route], schemas)
        item[verb] = operation
    error = _error(schemas)
    return {
        "openapi": "3.1.0",
        "info": _info(services.values()),
        "tags": [
            {"name": tags[name], "description": comments.of(service) or name}
            for name, service in services.items()
        ],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "parameters": {
                name: {"name": name, "in": "header", **header} for name, header in HEADERS.items()
            },
            "responses": {
                ERROR: {
                    "description": "An error: a google.rpc.Status, with the HTTP status of its "
                    "code.",
                    "content": {JSON: {"schema": error}},
                }
            },
        },
    }


def _servable(route: Route) -> bool:
    if route.http_method.lower() in OPENAPI_METHODS:
        return True
    log.warning("OpenAPI: %s uses a method OpenAPI 3.1 has no place for; left out", route)
    return False


class _Unique:
    """Operation ids: `Service_Method`, then `_1`, `_2`... for its other bindings."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def take(self, base: str) -> str:
        name, count = base, 0
        while name in self._taken:
            count += 1
            name = f"{base}_{count}"
        self._taken.add(name)
        return name


def _describe_operation(operation: dict[str, Any], comment: str) -> None:
    if not comment:
        return
    flat = " ".join(comment.split())
    sentence = re.match(r"(.+?[.!?])(?:\s|\Z)", flat)
    operation["summary"] = sentence.group(1) if sentence else flat
    operation["description"] = comment


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


def _path_parameters(
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


def _query_parameters(route: Route, schemas: Schemas) -> list[JsonSchema]:
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


def _header_parameters(route: Route, semantics: Semantics) -> list[JsonSchema]:
    headers = ["Grpc-Timeout"]
    if semantics.etag_in is not None:
        headers.append("If-Match")
    if _answers_not_modified(route, semantics):
        headers.append("If-None-Match")
    if semantics.request_id is not None:
        headers.append("Idempotency-Key")
    if route.server_streaming and revisions_of(route.method) is not None:
        headers.append("Last-Event-ID")
    return [{"$ref": f"#/components/parameters/{name}"} for name in headers]


def _answers_not_modified(route: Route, semantics: Semantics) -> bool:
    return route.http_method == "GET" and semantics.etag_out and not route.server_streaming


def _request_body(route: Route, schemas: Schemas) -> JsonSchema | None:
    if not route.body_field:
        return None
    bound = [binding.path.split(".") for binding in route.path_bindings]
    request = route.method.input_type
    partial = route.http_method == "PATCH"  # the fields sent are the ones to change
    if route.body_field == "*":
        return schemas.message(request, bound, partial=partial)
    inside = [path[1:] for path in bound if path[0] == route.body_field and len(path) > 1]
    return schemas.field(request.fields_by_name[route.body_field], inside, partial=partial)


def _response_schema(route: Route, schemas: Schemas) -> JsonSchema:
    if route.response_body:
        field = route.method.output_type.fields_by_name[route.response_body]
        if field.message_type is None or field.is_repeated:  # no message of its own
            return schemas.field(field)
    return schemas.message(response_type(route))


def _responses(route: Route, semantics: Semantics, schemas: Schemas) -> dict[str, Any]:
    status = semantics.status
    success: dict[str, Any] = {"description": HTTPStatus(status).phrase}
    if route.server_streaming:
        result = _response_schema(route, schemas)
        success["description"] = "A stream of messages, until it ends or fails."
        success["content"] = {
            NDJSON: {
                "schema": {
                    "description": 'One line per message, `{"result": ...}`, and, if the '
                    'stream fails once started, a last `{"error": ...}`.',
                    "oneOf": [_line("result", result), _line("error", _error(schemas))],
                }
            },
            SSE: {
                "schema": {
                    "type": "string",
                    "description": "Server-Sent Events: a `data:` line per message, its JSON "
                    "(with the revision as `id:` on a resumable stream); heartbeat comments "
                    "while idle; a last `event: error` whose data is a google.rpc.Status.",
                }
            },
        }
    elif status != HTTPStatus.NO_CONTENT and route.http_method != "HEAD":
        success["content"] = {JSON: {"schema": _response_schema(route, schemas)}}
    headers: dict[str, Any] = {}
    if semantics.etag_out and not route.server_streaming:
        headers["ETag"] = {
            "description": "The resource's `etag`, quoted: send it back as `If-Match`.",
            "schema": {"type": "string"},
        }
    if semantics.location is not None:
        headers["Location"] = {
            "description": "The path that reads the created resource.",
            "schema": {"type": "string"},
        }
    if headers:
        success["headers"] = headers
    responses: dict[str, Any] = {str(status): success}
    if _answers_not_modified(route, semantics):
        responses["304"] = {"description": "Not Modified: `If-None-Match` names the ETag."}
    if semantics.etag_in is not None:
        responses["412"] = {
            "description": "Precondition Failed: `If-Match` is not the resource's ETag.",
            "content": {JSON: {"schema": _error(schemas)}},
        }
    responses["default"] = {"$ref": f"#/components/responses/{ERROR}"}
    return responses


def _error(schemas: Schemas) -> JsonSchema:
    return schemas.message(status_pb2.Status.DESCRIPTOR)


def _line(name: str, schema: JsonSchema) -> JsonSchema:
    return {
        "type": "object",
        "properties": {name: schema},
        "required": [name],
        "additionalProperties": False,
    }


def _info(services: Iterable[ServiceDescriptor]) -> dict[str, str]:
    """Title and version from the services' packages (`shop.user.v1`, `shop.order.v1`:
    `shop`, `v1`)."""
    listed = list(services)
    packages = sorted({service.file.package for service in listed})
    versions = sorted({v for p in packages if _VERSION.match(v := p.rpartition(".")[2])})
    names = [[part for part in p.split(".") if not _VERSION.match(part)] for p in packages]
    common = names[0] if names else []
    for other in names[1:]:
        length = 0
        while length < min(len(common), len(other)) and common[length] == other[length]:
            length += 1
        common = common[:length]
    served = ", ".join(service.full_name for service in listed) or "no service"
    return {
        "title": ".".join(common) or ", ".join(packages) or "gateway",
        "version": ", ".join(versions) or "unversioned",
        "description": f"JSON over HTTP for {served}, by the gateway's routes.",
    }
