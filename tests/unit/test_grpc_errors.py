"""The error table: each domain error becomes one status code with rich details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from shop_common.domain import errors
from shop_common.serving.status import internal_status, status_for

DETAILS_KEY = "grpc-status-details-bin"


def rich_status(status: grpc.Status) -> status_pb2.Status:
    found = [value for key, value in status.trailing_metadata if key == DETAILS_KEY]
    assert len(found) == 1
    parsed = status_pb2.Status.FromString(found[0])
    assert parsed.code == status.code.value[0]
    assert parsed.message == status.details
    return parsed


def error_info(status: grpc.Status) -> error_details_pb2.ErrorInfo:
    infos = []
    for detail in rich_status(status).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert len(infos) == 1
    return infos[0]


def bad_requests(status: grpc.Status) -> list[error_details_pb2.BadRequest]:
    found = []
    for detail in rich_status(status).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.append(bad)
    return found


@pytest.mark.parametrize(
    ("kind", "code", "reason"),
    [
        (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        (errors.NotFound, grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
        (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS"),
        (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION"),
        (errors.Aborted, grpc.StatusCode.ABORTED, "ETAG_MISMATCH"),
        (errors.Unavailable, grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"),
        (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
        (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"),
        (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        (errors.Unimplemented, grpc.StatusCode.UNIMPLEMENTED, "NOT_IMPLEMENTED"),
        (errors.DomainError, grpc.StatusCode.UNKNOWN, "ERROR"),
    ],
)
def test_each_error_class_has_its_code_and_default_reason(
    kind: type[errors.DomainError], code: grpc.StatusCode, reason: str
) -> None:
    status = status_for(kind("it went wrong"))
    assert status.code == code
    assert status.details == "it went wrong"
    info = error_info(status)
    assert (info.reason, info.domain, dict(info.metadata)) == (reason, "shop.dev", {})
    assert bad_requests(status) == []


def test_subclass_of_an_error_class_gets_its_code() -> None:
    class UserGone(errors.NotFound):
        default_reason = "USER_GONE"

    status = status_for(UserGone("gone"))
    assert status.code == grpc.StatusCode.NOT_FOUND
    assert error_info(status).reason == "USER_GONE"


def test_reason_and_metadata_reach_the_error_info() -> None:
    status = status_for(
        errors.Aborted("stale", reason="ETAG_MISMATCH", metadata={"current_etag": "12"})
    )
    info = error_info(status)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "ETAG_MISMATCH",
        "shop.dev",
        {"current_etag": "12"},
    )


def test_field_violations_become_one_bad_request() -> None:
    error = errors.InvalidArgument.of(
        errors.FieldViolation("user.email", "is required", "REQUIRED"),
        errors.FieldViolation("user.display_name", "is too long"),
    )
    status = status_for(error)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.details == "user.email: is required; user.display_name: is too long"
    [bad] = bad_requests(status)
    assert [(v.field, v.description, v.reason) for v in bad.field_violations] == [
        ("user.email", "is required", "REQUIRED"),
        ("user.display_name", "is too long", "INVALID_FIELD"),
    ]
    assert error_info(status).reason == "INVALID_ARGUMENT"


def test_unicode_messages_survive_the_status() -> None:
    status = status_for(errors.NotFound("user «Zoë» 🙂 does not exist"))
    assert rich_status(status).message == "user «Zoë» 🙂 does not exist"


def test_internal_status_leaks_nothing() -> None:
    status = internal_status()
    assert status.code == grpc.StatusCode.INTERNAL
    assert status.details == "internal error"
    assert rich_status(status).code == code_pb2.INTERNAL
    info = error_info(status)
    assert (info.reason, info.domain) == ("INTERNAL", "shop.dev")
