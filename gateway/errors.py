"""Errors as HTTP sees them: the one gRPC code → HTTP status table, and google.rpc.Status
JSON bodies for the backends' errors and for the gateway's own refusals (`RequestError`).
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterable, Mapping
from typing import cast

import grpc
import orjson
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

from gateway.types import Headers, MetadataPairs
from shop_common.domain import ERROR_DOMAIN

C = grpc.StatusCode
HTTP_STATUS: Mapping[grpc.StatusCode, int] = {
    C.OK: 200,
    C.CANCELLED: 499,
    C.UNKNOWN: 500,
    C.INVALID_ARGUMENT: 400,
    C.DEADLINE_EXCEEDED: 504,
    C.NOT_FOUND: 404,
    C.ALREADY_EXISTS: 409,
    C.PERMISSION_DENIED: 403,
    C.RESOURCE_EXHAUSTED: 429,
    C.FAILED_PRECONDITION: 400,
    C.ABORTED: 409,
    C.OUT_OF_RANGE: 400,
    C.UNIMPLEMENTED: 501,
    C.INTERNAL: 500,
    C.UNAVAILABLE: 503,
    C.DATA_LOSS: 500,
    C.UNAUTHENTICATED: 401,
}
_BY_NUMBER: Mapping[int, grpc.StatusCode] = {code.value[0]: code for code in HTTP_STATUS}
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def http_status(code: int) -> int:
    """The HTTP status of a gRPC status code (a number outside the table is a 500)."""
    known = _BY_NUMBER.get(code)
    return 500 if known is None else HTTP_STATUS[known]


class GatewayError(Exception):
    """A request that ends in an error response: the Status, its HTTP status and headers.
    A backend's error as it came (`from_rpc_error`), or the gateway's own (`RequestError`)."""

    def __init__(
        self, status: status_pb2.Status, http: int | None = None, headers: Headers | None = None
    ) -> None:
        super().__init__(status.message)
        self.status = status
        self.http_status = http_status(status.code) if http is None else http
        self.headers: Headers = list(headers or ())
        self.trailing: MetadataPairs = ()
        """The backend's trailing metadata, for protocols that carry it as it came (the RPC
        protocols: `gateway.rpc`); REST carries it in `headers` instead."""
        if status.code == C.UNAUTHENTICATED.value[0] and not any(
            name == b"www-authenticate" for name, _ in self.headers
        ):
            self.headers.append((b"www-authenticate", b"Bearer"))

    def body(self) -> bytes:
        return status_json(self.status)


class RequestError(GatewayError):
    """The gateway's own error, raised where the client's name for what is wrong is known:
    the Status carries an ErrorInfo with `reason` and, unless `field` is None, a BadRequest
    naming `field` as the client spelled it (a JSON path, a query key, a path variable, a
    header). The HTTP status is the code's unless `http` says otherwise."""

    def __init__(
        self,
        reason: str,
        field: str | None,
        description: str,
        *,
        code: grpc.StatusCode = C.INVALID_ARGUMENT,
        http: int | None = None,
        headers: Headers | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
        details = [_pack(info)]
        if field is not None:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field=field, description=description, reason=reason
            )
            details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
        status = status_pb2.Status(code=code.value[0], message=description, details=details)
        super().__init__(status, http, headers)
        self.reason = reason
        self.field = field
        self.description = description


def internal_error() -> RequestError:
    """What a client is told of a fault of the gateway's own (the log has the rest)."""
    return RequestError("INTERNAL", None, "internal error", code=C.INTERNAL)


def from_rpc_error(error: grpc.aio.AioRpcError, headers: Headers | None = None) -> GatewayError:
    """A backend's error as it came: code, message and the details of its trailer.

    Except CANCELLED: the gateway's own cancellations end its calls with CancelledError,
    so a CANCELLED status is the backend's, cutting a call whose client still waits (a
    server that stops cancels the calls it had received but not started). The client is
    told UNAVAILABLE (503), which it may retry, as Envoy answers a reset from upstream."""
    if error.code() == C.CANCELLED:
        return RequestError(
            "BACKEND_CANCELLED",
            None,
            "the service cancelled the call (it may be stopping); retry",
            code=C.UNAVAILABLE,
            headers=headers,
        )
    code = error.code().value[0]
    status = status_pb2.Status(code=code, message=error.details() or "")
    for key, value in pairs(error.trailing_metadata()):
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            carried = status_pb2.Status.FromString(value)
            if carried.code == code:  # a mismatch means a broken trailer: keep the code
                status.details.extend(carried.details)
            break
    failure = GatewayError(status, headers=headers)
    failure.trailing = pairs(error.trailing_metadata())
    return failure


def pairs(metadata: object) -> MetadataPairs:
    """grpc's metadata (aio `Metadata`, or a tuple of pairs) as the pairs it iterates as."""
    return cast(MetadataPairs, metadata or ())


def status_json(status: status_pb2.Status) -> bytes:
    return orjson.dumps(status_dict(status))


def status_dict(status: status_pb2.Status) -> dict[str, object]:
    return {
        "code": status.code,
        "message": status.message,
        "details": [detail_json(detail) for detail in status.details],
    }


def detail_json(detail: any_pb2.Any) -> object:
    """An error detail in its JSON form (an Any's: `@type` and the message's fields)."""
    try:
        return json_format.MessageToDict(detail, always_print_fields_with_no_presence=True)
    except (TypeError, KeyError, json_format.Error):
        # A detail type this gateway does not know: pass it on in the Any's JSON form.
        return {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode()}


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.BadRequest) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def allow_header(methods: Iterable[str]) -> Headers:
    return [(b"allow", ", ".join(sorted(methods)).encode())]


def method_not_allowed(method: str, path: str, allowed: Collection[str]) -> RequestError:
    return RequestError(
        "METHOD_NOT_ALLOWED",
        None,
        f"{method} is not allowed on {path}",
        code=C.UNIMPLEMENTED,
        http=405,
        headers=allow_header(allowed),
        metadata={"allow": ", ".join(sorted(allowed))},
    )
