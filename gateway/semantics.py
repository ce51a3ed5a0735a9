"""HTTP semantics from the AIPs, read from a route's descriptors: which status a success
answers with (201 for a standard Create, 204 for an empty response, else 200)."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor

from gateway.routes import Route


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
