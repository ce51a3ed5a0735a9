"""Page tokens: signed, bound to their query; page sizes."""

from __future__ import annotations

import base64
import pathlib

import pytest

from shop_common.domain import InvalidArgument, PageTokens
from shop_common.domain import page_tokens as page_token

KEY = bytes(range(32))
LAST = "01a21966-e263-7607-918a-d4d32f874249"


def refused(tokens: PageTokens, token: str, query: str = "users") -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        tokens.decode(token, query)
    assert caught.value.reason == "INVALID_PAGE_TOKEN"
    assert [(v.field, v.reason) for v in caught.value.violations] == [
        ("page_token", "INVALID_FIELD")
    ]
    return caught.value


def test_token_round_trips_to_the_last_key() -> None:
    tokens = PageTokens(KEY)
    token = tokens.encode(LAST, "users")
    assert token.isascii()
    assert "=" not in token
    assert tokens.decode(token, "users") == LAST


def test_empty_token_means_the_first_page() -> None:
    assert PageTokens(KEY).decode("", "users") is None


def test_tampered_token_is_refused() -> None:
    tokens = PageTokens(KEY)
    raw = bytearray(base64.urlsafe_b64decode(tokens.encode(LAST, "users") + "=="))
    for position in (0, len(raw) // 2, len(raw) - 1):
        changed = bytearray(raw)
        changed[position] ^= 0x01
        forged = base64.urlsafe_b64encode(bytes(changed)).rstrip(b"=").decode()
        refused(tokens, forged)


def test_forged_token_naming_another_position_is_refused() -> None:
    tokens = PageTokens(KEY)
    genuine = base64.urlsafe_b64decode(tokens.encode(LAST, "users") + "==")
    payload = b'{"k":"00000000-0000-7000-8000-000000000000","q":"users"}'
    forged = base64.urlsafe_b64encode(payload + genuine[-16:]).rstrip(b"=").decode()
    refused(tokens, forged)


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 20])
def test_truncated_token_is_refused(cut: int) -> None:
    tokens = PageTokens(KEY)
    refused(tokens, tokens.encode(LAST, "users")[:-cut])


@pytest.mark.parametrize(
    "garbage", ["x", "====", "!!!!", "AAAA", "A" * 30, "é", "🙂" * 8, "' OR 1=1 --", "\x00"]
)
def test_garbage_token_is_refused(garbage: str) -> None:
    refused(PageTokens(KEY), garbage)


def test_token_of_another_key_is_refused() -> None:
    token = PageTokens(bytes(32)).encode(LAST, "users")
    refused(PageTokens(KEY), token)


def test_token_of_another_query_is_refused() -> None:
    tokens = PageTokens(KEY)
    token = tokens.encode(LAST, "orders?user_id=a")
    error = refused(tokens, token, "orders?user_id=b")
    assert "other filters" in error.message


@pytest.mark.parametrize(
    ("requested", "size"), [(0, 50), (1, 1), (50, 50), (999, 999), (1000, 1000), (1001, 1000)]
)
def test_page_size_defaults_and_caps(requested: int, size: int) -> None:
    assert page_token.page_size(requested) == size


def test_page_size_is_capped_for_the_largest_int32() -> None:
    assert page_token.page_size(2**31 - 1) == page_token.MAX_PAGE_SIZE


@pytest.mark.parametrize("requested", [-1, -(2**31)])
def test_negative_page_size_is_refused(requested: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        page_token.page_size(requested)
    assert [v.field for v in caught.value.violations] == ["page_size"]


def test_key_is_created_once_then_reused(tmp_path: pathlib.Path) -> None:
    key_file = tmp_path / "keys" / "svc.key"
    first = page_token.load_or_create_key(None, key_file)
    assert len(first) == 32
    assert page_token.load_or_create_key(None, key_file) == first
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_configured_key_wins_over_the_key_file(tmp_path: pathlib.Path) -> None:
    key_file = tmp_path / "svc.key"
    assert page_token.load_or_create_key(KEY.hex(), key_file) == KEY
    assert not key_file.exists()
