"""Resource ids: canonical UUIDv7, unique, ordered by creation time."""

from __future__ import annotations

import uuid

import pytest

from shop_common.domain import ids


class FakeClock:
    def __init__(self, ns: int) -> None:
        self.ns = ns

    def time_ns(self) -> int:
        return self.ns


def test_new_id_is_a_canonical_uuid7() -> None:
    value = ids.new_id()
    parsed = uuid.UUID(value)
    assert str(parsed) == value
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert ids.is_valid_id(value)


def test_new_id_carries_the_unix_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    ms = 1_735_787_045_123
    monkeypatch.setattr(ids, "time", FakeClock(ms * 1_000_000 + 999_999))
    assert uuid.UUID(ids.new_id()).int >> 80 == ms


def test_new_ids_are_unique_within_one_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "time", FakeClock(1_735_787_045_123_000_000))
    made = [ids.new_id() for _ in range(10_000)]
    assert len(set(made)) == len(made)


def test_ids_of_one_millisecond_sort_in_the_order_they_were_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So that a page of users lists them in the order they were created."""
    monkeypatch.setattr(ids, "time", FakeClock(1_735_787_045_124_000_000))
    made = [ids.new_id() for _ in range(10_000)]
    assert sorted(made) == made
    assert all(ids.is_valid_id(value) for value in made)


def test_later_ids_sort_after_earlier_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(1_735_787_045_123_000_000)
    monkeypatch.setattr(ids, "time", clock)
    made = []
    for _ in range(200):
        made.append(ids.new_id())
        clock.ns += 1_000_000  # one millisecond later
    assert sorted(made) == made


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-an-id",
        "01A21966-E263-7607-918A-D4D32F874249",  # upper case
        "01a21966-e263-4607-918a-d4d32f874249",  # version 4
        "01a21966-e263-7607-c18a-d4d32f874249",  # wrong variant
        "01a21966e2637607918ad4d32f874249",  # no hyphens
        "{01a21966-e263-7607-918a-d4d32f874249}",
        "01a21966-e263-7607-918a-d4d32f874249\n",
        " 01a21966-e263-7607-918a-d4d32f874249",
        "01a21966-e263-7607-918a-d4d32f87424",
        "' OR 1=1 --",
    ],
)
def test_only_canonical_uuid7_strings_are_valid_ids(value: str) -> None:
    assert not ids.is_valid_id(value)
