"""Resource identifiers: UUIDv7, time-ordered and, within one process, strictly increasing,
so that keyset pages follow the order in which a service created its resources."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

from shop_common.domain.errors import FieldViolation, InvalidArgument

_CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


_RANDOM_BITS = 74
_last = 0
"""The last id made, as milliseconds and random bits (version and variant left out)."""
_lock = threading.Lock()


def new_id() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Within the same
    millisecond, the next id is the last one plus one (RFC 9562's monotonic random)."""
    global _last
    ms = time.time_ns() // 1_000_000
    bits = ms << _RANDOM_BITS | int.from_bytes(os.urandom(10), "big") >> 6
    with _lock:
        if ms == _last >> _RANDOM_BITS and bits <= _last:
            bits = _last + 1
        _last = bits
    ms, rand_a, rand_b = bits >> _RANDOM_BITS, (bits >> 62) & 0xFFF, bits & ((1 << 62) - 1)
    value = ms << 80 | 0x7 << 76 | rand_a << 64 | 0x2 << 62 | rand_b  # version 7, RFC variant
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
