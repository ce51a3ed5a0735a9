"""Resource identifiers: UUIDv7 (time-ordered, so keyset pages follow creation order)."""

from __future__ import annotations

import os
import re
import time
import uuid

from shop_common.domain.errors import FieldViolation, InvalidArgument

_CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def new_id() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value &= ~(0xF << 76)
    value |= 0x7 << 76  # version 7
    value &= ~(0x3 << 62)
    value |= 0x2 << 62  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def is_valid_id(value: str) -> bool:
    """True for a canonical, lower-case UUIDv7 string: the only form the services issue."""
    return bool(_CANONICAL.fullmatch(value))


def check_id(value: str, field: str, what: str) -> str:
    """`value` if it is an id the services issue; else INVALID_ARGUMENT naming `field`."""
    if not value:
        raise InvalidArgument.of(FieldViolation(field, "is required", "REQUIRED"))
    if not is_valid_id(value):
        raise InvalidArgument.of(FieldViolation(field, f"is not a valid {what} id", "INVALID_ID"))
    return value
