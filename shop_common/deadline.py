"""Deadlines that propagate: an outbound call never outlives its caller."""

from __future__ import annotations

from typing import Protocol

from shop_common.errors import DeadlineExceeded

# Time kept back for answering our own caller after the outbound call returns.
_REPLY_MARGIN_SECONDS = 0.005


class HasTimeRemaining(Protocol):
    def time_remaining(self) -> float | None: ...


def outbound_timeout(caller: HasTimeRemaining | None, default: float) -> float:
    """The timeout for a call made on behalf of `caller`.

    The caller's remaining time (less a small margin) when it has a deadline,
    never more than `default`. grpc.aio reports None without a client deadline;
    the sync API reports a huge float, so anything above `default` is capped.
    """
    remaining = caller.time_remaining() if caller is not None else None
    if remaining is None:
        return default
    budget = remaining - _REPLY_MARGIN_SECONDS
    if budget <= 0:
        raise DeadlineExceeded("the caller's deadline has passed", reason="DEADLINE_EXCEEDED")
    return min(budget, default)
