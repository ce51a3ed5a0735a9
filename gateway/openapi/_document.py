"""The OpenAPI 3.1 document of the routes: an operation per route (tagged by its service,
described by the protos' comments), its parameters (`_parameters`), its request body
without what the path binds (a PATCH body requires nothing), and its responses: the
success status of `gateway.semantics` with the body's schema and its `ETag`/`Location`
headers (NDJSON lines and Server-Sent Events for a stream), 304 and 412 where conditional
headers apply, and a `default` google.rpc.Status for errors.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor
from google.rpc import status_pb2

from gateway.openapi._comments import Comments
from gateway.openapi._jsonschema import JsonSchema, Schemas
from gateway.openapi._parameters import (
    HEADERS,
    answers_not_modified,
    header_parameters,
    path_parameters,
    query_parameters,
)
from gateway.openapi._paths import openapi_paths
from gateway.routes import Route
from gateway.semantics import Semantics, response_type, semantics_table

# The subpackage's modules are private: it logs under its own name.
log = logging.getLogger(__package__)

OPENAPI_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
JSON = "application/json"
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
_VERSION = re.compile(r"v[0-9]+(?:(?:alpha|beta)[0-9]*)?\Z")

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
    located = openapi_paths(served)
    for route in served:
        path, wildcards = located[route]
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
            *path_parameters(route, wildcards, schemas),
            *query_parameters(route, schemas),
            *header_parameters(route, semantics[route]),
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
        "components": _components(schemas, error),
    }


def _components(schemas: Schemas, error: JsonSchema) -> dict[str, Any]:
    """The schemas the operations refer to, the headers, and the error response."""
    return {
        "schemas": dict(sorted(schemas.components.items())),
        "parameters": {
            name: {"name": name, "in": "header", **header} for name, header in HEADERS.items()
        },
        "responses": {
            ERROR: {
                "description": "An error: a google.rpc.Status, with the HTTP status of its code.",
                "content": {JSON: {"schema": error}},
            }
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
    if answers_not_modified(route, semantics):
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
