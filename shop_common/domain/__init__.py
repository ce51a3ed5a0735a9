"""The vocabulary every part shares, free of I/O: errors, ids, the clock, page tokens."""

from shop_common.domain.clock import Clock, utc_now
from shop_common.domain.errors import (
    ERROR_DOMAIN,
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from shop_common.domain.ids import check_id, is_valid_id, new_id
from shop_common.domain.page_tokens import (
    PageTokens,
    invalid_page_token,
    load_or_create_key,
    page_size,
)

__all__ = [
    "ERROR_DOMAIN",
    "Aborted",
    "AlreadyExists",
    "Clock",
    "DeadlineExceeded",
    "DomainError",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PageTokens",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "check_id",
    "invalid_page_token",
    "is_valid_id",
    "load_or_create_key",
    "new_id",
    "page_size",
    "utc_now",
]
