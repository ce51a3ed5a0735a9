"""Domain errors: what went wrong, in words the domain knows. No gRPC here.

The one table that turns these into gRPC statuses is `shop_common.serving.status`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ERROR_DOMAIN = "shop.dev"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request, named by its path as the client sent it."""

    field: str
    description: str
    reason: str = "INVALID_FIELD"


class DomainError(Exception):
    """Base of every error a use case raises on purpose."""

    default_reason = "ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[FieldViolation] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})
        self.violations = tuple(violations)


class InvalidArgument(DomainError):
    default_reason = "INVALID_ARGUMENT"

    @classmethod
    def of(cls, *violations: FieldViolation, reason: str | None = None) -> InvalidArgument:
        message = "; ".join(f"{v.field}: {v.description}" for v in violations)
        return cls(message, reason=reason, violations=violations)


class NotFound(DomainError):
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    default_reason = "FAILED_PRECONDITION"


class Aborted(DomainError):
    """A concurrent change won: typically a stale etag."""

    default_reason = "ETAG_MISMATCH"


class Unavailable(DomainError):
    """A dependency could not be reached; the call may be retried."""

    default_reason = "UNAVAILABLE"


class DeadlineExceeded(DomainError):
    default_reason = "DEADLINE_EXCEEDED"


class PermissionDenied(DomainError):
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    default_reason = "UNAUTHENTICATED"


class OutOfRange(DomainError):
    """Asked for something past what exists or is kept, e.g. a compacted revision."""

    default_reason = "OUT_OF_RANGE"


class ResourceExhausted(DomainError):
    """A limit was reached, e.g. a watcher's buffer."""

    default_reason = "RESOURCE_EXHAUSTED"


class Unimplemented(DomainError):
    default_reason = "NOT_IMPLEMENTED"
