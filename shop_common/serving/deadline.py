"""Deadlines that propagate: an outbound call never outlives the call it serves."""

from __future__ import annotations

import time
from dataclasses import dataclass

from shop_common.domain import DeadlineExceeded

# Kept back for answering our own caller after the outbound call returns.
REPLY_MARGIN_SECONDS = 0.005
# grpc's sync API reports a huge float, not None, when the client set no deadline.
_NO_DEADLINE_ABOVE = 1e9


@dataclass(frozen=True, slots=True)
class Deadline:
    expires_at: float | None
    """`time.monotonic()` at which the caller stops waiting; None if it never does."""

    @classmethod
    def after(cls, remaining: float | None) -> Deadline:
        """From `context.time_remaining()` of the call being served."""
        if remaining is None or remaining > _NO_DEADLINE_ABOVE:
            return cls(None)
        return cls(time.monotonic() + remaining)

    def timeout(self, default: float) -> float:
        """The timeout for an outbound call: what is left less a margin, at most `default`."""
        if self.expires_at is None:
            return default
        budget = self.expires_at - time.monotonic() - REPLY_MARGIN_SECONDS
        if budget <= 0:
            raise DeadlineExceeded("the caller's deadline has passed")
        return min(budget, default)


NO_DEADLINE = Deadline(None)
