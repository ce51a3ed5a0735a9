"""The OpenAPI 3.1 document of the routes: an operation per route (tagged by its service,
described by the protos' comments) under its path (`_paths`), its parameters
(`_parameters`), its request body without what the path binds (a PATCH body requires
nothing), its responses (`_responses`: the success, and each error status it may get),
and the links from a create to the operations on what it created (`_links`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor

from gateway.openapi._comments import Comments
from gateway.openapi._jsonschema import JsonSchema, Schemas
from gateway.openapi._links import links
from gateway.openapi._parameters import (
    HEADERS,
    header_parameters,
    path_parameters,
    query_parameters,
)
from gateway.openapi._paths import Wildcard, openapi_paths
from gateway.openapi._responses import JSON, error_responses, responses
from gateway.routes import Route
from gateway.semantics import semantics_table

# The subpackage's modules are private: it logs under its own name.
log = logging.getLogger(__package__)

OPENAPI_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_VERSION = re.compile(r"v[0-9]+(?:(?:alpha|beta)[0-9]*)?\Z")


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
    unique = _Unique()
    operations: dict[Route, dict[str, Any]] = {}
    semantics = semantics_table(routes)
    paths: dict[str, dict[str, Any]] = {}
    located = openapi_paths(served)
    chosen = _one_per_operation(served, located)
    for route in served:
        path, wildcards = located[route]
        item = paths.setdefault(path, {})
        verb = route.http_method.lower()
        if chosen[path, verb] is not route:
            log.warning("OpenAPI: %s has the path and method of another route; left out", route)
            continue
        service = route.method.containing_service
        operation: dict[str, Any] = {
            "operationId": unique.take(f"{service.name}_{route.method.name}"),
            "tags": [tags[service.full_name]],
        }
        _describe_operation(operation, comments.of(route.method))
        operation["parameters"] = [
            *path_parameters(route, wildcards, schemas),
            *query_parameters(route, semantics[route], schemas),
            *header_parameters(route, semantics[route]),
        ]
        body = _request_body(route, schemas)
        if body is not None:
            operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
        operation["responses"] = responses(route, semantics[route], schemas)
        item[verb] = operations[route] = operation
    ids = {route: operation["operationId"] for route, operation in operations.items()}
    for create, linked in links(served, located, ids, semantics, schemas).items():
        success = operations[create]["responses"][str(semantics[create].status)]
        success["links"] = linked
    return {
        "openapi": "3.1.0",
        "info": _info(services.values()),
        "tags": [
            {"name": tags[name], "description": comments.of(service) or name}
            for name, service in services.items()
        ],
        "paths": paths,
        "components": _components(schemas),
    }


def _components(schemas: Schemas) -> dict[str, Any]:
    """The schemas the operations refer to, the headers, and the error responses."""
    errors = error_responses(schemas)  # first: it adds google.rpc.Status to the schemas
    return {
        "schemas": dict(sorted(schemas.components.items())),
        "parameters": {
            name: {"name": name, "in": "header", **header} for name, header in HEADERS.items()
        },
        "responses": errors,
    }


def _one_per_operation(
    routes: Sequence[Route], located: Mapping[Route, tuple[str, list[Wildcard]]]
) -> dict[tuple[str, str], Route]:
    """The route documented for each path and method that several share (`/v1/{id}` and
    `/v1/{path=**}`): the one the router tries first, the most specific."""
    chosen: dict[tuple[str, str], Route] = {}
    for route in routes:
        key = located[route][0], route.http_method.lower()
        other = chosen.get(key)
        if other is None or route.pattern.specificity < other.pattern.specificity:
            chosen[key] = route
    return chosen


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
