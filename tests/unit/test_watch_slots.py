"""Watch slots: at most so many watches per caller, per connection and per process, each slot
given back exactly once however its watch ends."""

from __future__ import annotations

import asyncio

import pytest

from shop_common.domain import ResourceExhausted
from shop_common.feed.slots import WatchSlots

A = "ipv4:10.0.0.7:53122"
B = "ipv4:10.0.0.7:53123"  # the same host, another connection


def test_a_connection_gets_its_cap_and_others_are_not_affected() -> None:
    slots = WatchSlots(per_connection=2, total=10)
    with slots.take(A), slots.take(A):
        with pytest.raises(ResourceExhausted) as refused, slots.take(A):
            pass
        assert refused.value.reason == "TOO_MANY_WATCHES"
        assert refused.value.metadata == {"max_watches_per_connection": "2"}
        assert "2 watches open" in refused.value.message
        with slots.take(B):
            assert (slots.open_on(A), slots.open_on(B), slots.open) == (2, 1, 3)
    assert (slots.open_on(A), slots.open_on(B), slots.open) == (0, 0, 0)


def test_the_process_gets_its_cap_whatever_the_connections() -> None:
    slots = WatchSlots(per_connection=5, total=2)
    with slots.take(A), slots.take(B):
        with pytest.raises(ResourceExhausted) as refused, slots.take("ipv4:10.0.0.8:1"):
            pass
        assert refused.value.reason == "WATCH_CAPACITY_REACHED"
        assert refused.value.metadata == {"max_watches": "2"}
    with slots.take("ipv4:10.0.0.8:1"):
        assert slots.open == 1


def test_a_refused_watch_takes_nothing() -> None:
    slots = WatchSlots(per_connection=1, total=10)
    with slots.take(A):
        for _ in range(3):
            with pytest.raises(ResourceExhausted), slots.take(A):
                pass
        assert slots.open_on(A) == 1
    assert slots.open == 0


def test_a_watch_that_fails_gives_its_slot_back() -> None:
    slots = WatchSlots(per_connection=1, total=1)
    for _ in range(3):
        with pytest.raises(ValueError, match="boom"), slots.take(A):
            raise ValueError("boom")
    assert slots.open == 0


async def test_a_cancelled_watch_gives_its_slot_back() -> None:
    slots = WatchSlots(per_connection=1, total=1)
    holding = asyncio.Event()

    async def watch() -> None:
        with slots.take(A):
            holding.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(watch())
    await holding.wait()
    assert slots.open_on(A) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (slots.open_on(A), slots.open) == (0, 0)
    with slots.take(A):
        pass


def test_a_caller_gets_its_cap_whatever_its_connections_and_others_are_not_affected() -> None:
    slots = WatchSlots(per_connection=5, total=10, per_caller=2)
    with slots.take(A, "subject:alice"), slots.take(B, "subject:alice"):
        with pytest.raises(ResourceExhausted) as refused, slots.take("c", "subject:alice"):
            pass
        assert refused.value.reason == "TOO_MANY_WATCHES_FOR_CALLER"
        assert refused.value.metadata == {"max_watches_per_caller": "2"}
        assert (slots.open_for("subject:alice"), slots.open) == (2, 2)  # the refused took none
        with slots.take(A, "subject:bob"), slots.take(A, None), slots.take(A, None):
            assert (slots.open_for("subject:bob"), slots.open_on(A)) == (1, 4)
    assert (slots.open_for("subject:alice"), slots.open_for("subject:bob"), slots.open) == (0, 0, 0)


def test_a_caller_not_counted_is_held_by_the_other_caps_only() -> None:
    slots = WatchSlots(per_connection=3, total=10, per_caller=1)
    with slots.take(A), slots.take(A), slots.take(A):
        with pytest.raises(ResourceExhausted) as refused, slots.take(A):
            pass
        assert refused.value.reason == "TOO_MANY_WATCHES"


def test_without_a_per_caller_cap_callers_are_not_counted() -> None:
    slots = WatchSlots(per_connection=5, total=10)
    with slots.take(A, "subject:alice"), slots.take(A, "subject:alice"):
        assert slots.open_for("subject:alice") == 0


def test_a_watch_over_its_connection_cap_takes_nothing_of_its_callers() -> None:
    slots = WatchSlots(per_connection=1, total=10, per_caller=5)
    with slots.take(A, "subject:alice"):
        with pytest.raises(ResourceExhausted), slots.take(A, "subject:alice"):
            pass
        assert slots.open_for("subject:alice") == 1
    assert slots.open_for("subject:alice") == 0


async def test_a_cancelled_watch_gives_its_callers_slot_back() -> None:
    slots = WatchSlots(per_connection=5, total=5, per_caller=1)
    holding = asyncio.Event()

    async def watch() -> None:
        with slots.take(A, "subject:alice"):
            holding.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(watch())
    await holding.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slots.open_for("subject:alice") == 0
    with slots.take(B, "subject:alice"):
        pass
