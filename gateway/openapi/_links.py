"""OpenAPI links from each create to the operations on the resource it created, so that a
client (or a stateful fuzzer) can follow them: `POST /v1/users` → `GET`, `PATCH` and
`DELETE /v1/users/{id}`, with `id` from the created resource's body.

Derived from the routes alone, nothing per route: a create (201, AIP-133) whose path is
a collection of literal segments links to every other unary route under that collection
whose path variables are all fields of the created resource: a request field of the same
name (`{id}`) or the resource's own field inside the request (`{user.id}`). A target that
`If-Match` makes conditional gets the create's `ETag` for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor

from gateway.openapi._jsonschema import Schemas
from gateway.openapi._paths import Wildcard
from gateway.pattern import Kind
from gateway.routes import Route
from gateway.semantics import Semantics, response_type


def links(
    routes: Sequence[Route],
    located: Mapping[Route, tuple[str, list[Wildcard]]],
    operation_ids: Mapping[Route, str],
    semantics: Mapping[Route, Semantics],
    schemas: Schemas,
) -> dict[Route, dict[str, Any]]:
    """The links of each create's success response, by route (creates with none left out)."""
    found: dict[Route, dict[str, Any]] = {}
    for create in routes:
        if semantics[create].status != 201 or not _is_collection(create):
            continue
        resource = response_type(create)
        linked: dict[str, Any] = {}
        for target in routes:
            if target is create or target not in operation_ids or target.server_streaming:
                continue
            parameters = _parameters(create, target, located[target][1], resource, schemas)
            if parameters is None:
                continue
            if semantics[target].etag_in is not None and semantics[create].etag_out:
                parameters["header.If-Match"] = "$response.header.ETag"
            name = operation_ids[target]
            linked[name] = {
                "operationId": name,
                "description": f"The {resource.name} this call created.",
                "parameters": parameters,
            }
        if linked:
            found[create] = linked
    return found


def _is_collection(route: Route) -> bool:
    pattern = route.pattern
    return not pattern.verb and all(s.kind is Kind.LITERAL for s in pattern.segments)


def _parameters(
    create: Route,
    target: Route,
    wildcards: Sequence[Wildcard],
    resource: Descriptor,
    schemas: Schemas,
) -> dict[str, str] | None:
    """The target's path parameters as expressions on the create's response, or None when
    the target is not under the create's collection or takes something else."""
    collection = create.pattern.segments
    if target.pattern.segments[: len(collection)] != collection or not wildcards:
        return None
    bound = {binding.path: binding.fields for binding in target.path_bindings}
    parameters: dict[str, str] = {}
    for wildcard in wildcards:
        variable = wildcard.variable
        if variable is None or variable.start < len(collection):
            return None
        fields = bound[variable.name]
        own = resource.fields_by_name.get(fields[-1].name)
        if own is None or own.type != fields[-1].type:
            return None
        holder = fields[-2].message_type if len(fields) > 1 else None
        if len(fields) > 1 and (holder is None or holder.full_name != resource.full_name):
            return None
        parameters[f"path.{wildcard.name}"] = f"$response.body#/{_pointer(schemas.name(own))}"
    return parameters


def _pointer(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")
