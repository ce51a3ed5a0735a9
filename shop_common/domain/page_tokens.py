"""Opaque, tamper-proof page tokens (AIP-158), and page sizes.

A token names the last key of the previous page and the query it belongs to,
signed with HMAC-SHA256, so a client can neither forge a position nor reuse a
token with another filter. The key comes from the environment or is generated
once into the data directory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import pathlib
from dataclasses import dataclass

import orjson

from shop_common.domain.errors import FieldViolation, InvalidArgument
from shop_common.process import private_dir

_MAC_BYTES = 16
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    """0 → the default; above the cap → the cap; negative → INVALID_ARGUMENT."""
    if requested < 0:
        raise InvalidArgument.of(FieldViolation("page_size", "must not be negative"))
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def load_or_create_key(configured: str | None, key_file: pathlib.Path) -> bytes:
    """The configured key (hex), else the one in `key_file`, created on first use."""
    if configured:
        return bytes.fromhex(configured)
    try:
        return bytes.fromhex(key_file.read_text().strip())
    except FileNotFoundError:
        private_dir(key_file.parent)
        key = os.urandom(32)
        # O_EXCL: when several processes start at once, one writes and the rest read.
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return bytes.fromhex(key_file.read_text().strip())
        with os.fdopen(fd, "w") as out:
            out.write(key.hex())
        return key


@dataclass(frozen=True, slots=True)
class PageTokens:
    key: bytes

    def encode(self, last_key: str, query: str) -> str:
        payload = orjson.dumps({"k": last_key, "q": query})
        mac = hmac.new(self.key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()

    def decode(self, token: str, query: str) -> str | None:
        """The last key of the previous page, or None for an empty token."""
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise invalid_page_token("is not a page token from this service") from None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        expected = hmac.new(self.key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, expected):
            raise invalid_page_token("is not a page token from this service")
        data = orjson.loads(payload)
        if data.get("q") != query:
            raise invalid_page_token("belongs to a request with other filters")
        last_key = data.get("k")
        if not isinstance(last_key, str):
            raise invalid_page_token("is not a page token from this service")
        return last_key


def invalid_page_token(
    description: str, reason: str | None = "INVALID_PAGE_TOKEN"
) -> InvalidArgument:
    return InvalidArgument.of(FieldViolation("page_token", description), reason=reason)
