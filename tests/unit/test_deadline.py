"""Deadlines for outbound calls: what is left of the caller's, less a margin, capped."""

from __future__ import annotations

import sys

import pytest

from shop_common.domain import DeadlineExceeded
from shop_common.serving import Deadline, deadline
from shop_common.serving.deadline import REPLY_MARGIN_SECONDS


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(deadline, "time", fake)
    return fake


def test_no_deadline_uses_the_default(clock: FakeClock) -> None:
    assert Deadline.after(None) == deadline.NO_DEADLINE
    clock.now += 1e6
    assert Deadline.after(None).timeout(2.0) == 2.0


@pytest.mark.parametrize("huge", [1e10, sys.float_info.max, float("inf")])
def test_huge_remaining_time_of_the_sync_api_means_no_deadline(
    clock: FakeClock, huge: float
) -> None:
    assert Deadline.after(huge).expires_at is None
    assert Deadline.after(huge).timeout(2.0) == 2.0


def test_timeout_is_the_remaining_time_less_the_margin(clock: FakeClock) -> None:
    limit = Deadline.after(1.0)
    assert limit.timeout(5.0) == pytest.approx(1.0 - REPLY_MARGIN_SECONDS)
    clock.now += 0.25
    assert limit.timeout(5.0) == pytest.approx(0.75 - REPLY_MARGIN_SECONDS)


def test_timeout_is_capped_by_the_default(clock: FakeClock) -> None:
    assert Deadline.after(30.0).timeout(2.0) == 2.0


@pytest.mark.parametrize(
    ("remaining", "elapsed"), [(0.0, 0.0), (1.0, 1.0), (1.0, 2.0), (REPLY_MARGIN_SECONDS, 0.0)]
)
def test_expired_deadline_raises_deadline_exceeded(
    clock: FakeClock, remaining: float, elapsed: float
) -> None:
    limit = Deadline.after(remaining)
    clock.now += elapsed
    with pytest.raises(DeadlineExceeded):
        limit.timeout(2.0)
