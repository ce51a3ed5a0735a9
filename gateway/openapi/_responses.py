"""The responses of an operation: the success status of `gateway.semantics` with the body's
schema and its `ETag`/`Location` headers (NDJSON lines and Server-Sent Events for a
stream), 304 where `If-None-Match` applies, and each error status the gateway may answer
for the route, with the google.rpc.Status it carries.

The error statuses are those of the one gRPC code → HTTP table (`gateway.errors`), which
any backend error goes through, and the gateway's own refusals where they apply: 406 (a
stream's `Accept`), 412 (a write's `If-Match`), 413 and 415 (a body), 431 (headers to
forward). No `default`: a status the document does not list is a fault a conformance
check should find.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import grpc
from google.rpc import status_pb2

from gateway.errors import HTTP_STATUS
from gateway.openapi._jsonschema import JsonSchema, Schemas
from gateway.openapi._parameters import answers_not_modified
from gateway.routes import Route
from gateway.semantics import Semantics, response_type

JSON = "application/json"
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"

_OWN: Mapping[int, str] = {
    406: "Not Acceptable: `Accept` allows neither of the stream's formats.",
    412: "Precondition Failed: `If-Match` does not hold (the resource changed since it "
    "was read), or cannot (a weak entity tag, or a create).",
    413: "Content Too Large: the body is over the gateway's limit.",
    415: "Unsupported Media Type: a body from a browser (or in strict mode) must be "
    "`application/json`.",
    431: "Request Header Fields Too Large: more header bytes to forward as gRPC metadata "
    "than the gateway allows.",
}
"""The statuses the gateway answers of its own accord, beside the code table's."""


def _codes_by_status() -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    for code, status in HTTP_STATUS.items():
        if code is not grpc.StatusCode.OK:
            found[status].append(code.name)
    return dict(sorted(found.items()))


_BY_CODE = _codes_by_status()


def error_name(status: int) -> str:
    """The name of an error status's entry in `components/responses`."""
    return f"Error{status}"


def error_responses(schemas: Schemas) -> dict[str, Any]:
    """Every error status an operation may refer to, as `components/responses`."""
    content = {JSON: {"schema": error_schema(schemas)}}
    found = dict(_OWN)  # none of them is in the code table
    for status, codes in _BY_CODE.items():
        named = " or ".join(f"`{code}`" for code in codes)
        found[status] = f"{_phrase(status)}: a google.rpc.Status with code {named}."
    return {
        error_name(status): {"description": found[status], "content": content}
        for status in sorted(found)
    }


def responses(route: Route, semantics: Semantics, schemas: Schemas) -> dict[str, Any]:
    """The operation's responses, by status."""
    found: dict[str, Any] = {str(semantics.status): _success(route, semantics, schemas)}
    if answers_not_modified(route, semantics):
        found["304"] = {"description": "Not Modified: `If-None-Match` names the ETag."}
    for status in sorted(_error_statuses(route, semantics)):
        found[str(status)] = {"$ref": f"#/components/responses/{error_name(status)}"}
    return found


def _error_statuses(route: Route, semantics: Semantics) -> set[int]:
    statuses = set(_BY_CODE) | {431}
    if route.server_streaming:
        statuses.add(406)
    if semantics.writes:
        statuses.add(412)
    if route.body is not None:
        statuses |= {413, 415}
    return statuses


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # 499: nginx's, for a call the client cancelled
        return "Client Closed Request"


def _success(route: Route, semantics: Semantics, schemas: Schemas) -> dict[str, Any]:
    status = semantics.status
    success: dict[str, Any] = {"description": HTTPStatus(status).phrase}
    if route.server_streaming:
        result = response_schema(route, schemas)
        success["description"] = "A stream of messages, until it ends or fails."
        success["content"] = {
            NDJSON: {
                "schema": {
                    "description": 'One line per message, `{"result": ...}`, and, if the '
                    'stream fails once started, a last `{"error": ...}`.',
                    "oneOf": [_line("result", result), _line("error", error_schema(schemas))],
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
        success["content"] = {JSON: {"schema": response_schema(route, schemas)}}
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
    return success


def response_schema(route: Route, schemas: Schemas) -> JsonSchema:
    """The schema of the success body (of one message, for a stream)."""
    if route.response_body:
        field = route.method.output_type.fields_by_name[route.response_body]
        if field.message_type is None or field.is_repeated:  # no message of its own
            return schemas.field(field)
    return schemas.message(response_type(route))


def error_schema(schemas: Schemas) -> JsonSchema:
    return schemas.message(status_pb2.Status.DESCRIPTOR)


def _line(name: str, schema: JsonSchema) -> JsonSchema:
    return {
        "type": "object",
        "properties": {name: schema},
        "required": [name],
        "additionalProperties": False,
    }
