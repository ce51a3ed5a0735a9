"""The one gRPC code → HTTP status table and google.rpc.Status bodies."""

from __future__ import annotations

import grpc
import orjson
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway.errors import (
    HTTP_STATUS,
    STATUS_DETAILS_KEY,
    RequestError,
    from_rpc_error,
    http_status,
    status_json,
)

C = grpc.StatusCode


def test_every_grpc_code_has_its_http_status() -> None:
    assert {code.name: status for code, status in HTTP_STATUS.items()} == {
        "OK": 200,
        "CANCELLED": 499,
        "UNKNOWN": 500,
        "INVALID_ARGUMENT": 400,
        "DEADLINE_EXCEEDED": 504,
        "NOT_FOUND": 404,
        "ALREADY_EXISTS": 409,
        "PERMISSION_DENIED": 403,
        "RESOURCE_EXHAUSTED": 429,
        "FAILED_PRECONDITION": 400,
        "ABORTED": 409,
        "OUT_OF_RANGE": 400,
        "UNIMPLEMENTED": 501,
        "INTERNAL": 500,
        "UNAVAILABLE": 503,
        "DATA_LOSS": 500,
        "UNAUTHENTICATED": 401,
    }
    assert set(HTTP_STATUS) == set(grpc.StatusCode)


def test_http_status_by_number_and_unknown_numbers() -> None:
    assert http_status(5) == 404
    assert http_status(99) == 500


def rpc_error(
    code: grpc.StatusCode, message: str, trailing: tuple[tuple[str, str | bytes], ...] = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), message, None
    )


def packed(message: error_details_pb2.ErrorInfo) -> any_pb2.Any:
    value = any_pb2.Any()
    value.Pack(message)
    return value


def test_backend_error_keeps_its_code_message_and_details() -> None:
    info = error_details_pb2.ErrorInfo(reason="USER_NOT_FOUND", domain="shop.dev")
    carried = status_pb2.Status(code=5, message="no user", details=[packed(info)])
    error = from_rpc_error(
        rpc_error(C.NOT_FOUND, "no user", ((STATUS_DETAILS_KEY, carried.SerializeToString()),))
    )
    assert error.http_status == 404
    assert orjson.loads(error.body()) == {
        "code": 5,
        "message": "no user",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "USER_NOT_FOUND",
                "domain": "shop.dev",
                "metadata": {},
            }
        ],
    }


def test_details_of_another_code_are_not_trusted() -> None:
    carried = status_pb2.Status(code=3, details=[packed(error_details_pb2.ErrorInfo())])
    error = from_rpc_error(
        rpc_error(C.INTERNAL, "boom", ((STATUS_DETAILS_KEY, carried.SerializeToString()),))
    )
    assert orjson.loads(error.body()) == {"code": 13, "message": "boom", "details": []}


def test_unauthenticated_asks_for_a_bearer_token() -> None:
    error = from_rpc_error(rpc_error(C.UNAUTHENTICATED, "who are you"))
    assert error.http_status == 401
    assert (b"www-authenticate", b"Bearer") in error.headers


def test_an_unknown_detail_type_is_passed_on_as_raw_any() -> None:
    unknown = any_pb2.Any(type_url="type.googleapis.com/acme.Secret", value=b"\x01\x02")
    body = orjson.loads(status_json(status_pb2.Status(code=2, details=[unknown])))
    assert body["details"] == [{"@type": "type.googleapis.com/acme.Secret", "value": "AQI="}]


def test_a_request_error_carries_error_info_and_the_field_violation() -> None:
    error = RequestError("INVALID_JSON", "items[0].sku", "bad")
    assert error.http_status == 400
    info, bad = orjson.loads(error.body())["details"]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert (info["reason"], info["domain"]) == ("INVALID_JSON", "shop.dev")
    assert bad["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert bad["fieldViolations"][0]["field"] == "items[0].sku"
    assert bad["fieldViolations"][0]["description"] == "bad"


@pytest.mark.parametrize(("http", "expected"), [(None, 404), (413, 413)])
def test_a_request_errors_http_status_defaults_to_the_table(
    http: int | None, expected: int
) -> None:
    assert RequestError("X", None, "x", code=C.NOT_FOUND, http=http).http_status == expected
