"""A rate limit per caller: a token bucket per key (`callers`), `burst` requests at once and
`rate` per second sustained. One over is refused 429 (RESOURCE_EXHAUSTED, `RATE_LIMITED`)
with `Retry-After`, the whole seconds until a request would pass.

Every counted response says where its caller stands, in the IETF httpapi working group's
fields (draft-ietf-httpapi-ratelimit-headers-08 and later, to -11 of May 2026; the
`RateLimit-Limit/-Remaining/-Reset` trio of the drafts up to -06 is gone from them):
`RateLimit-Policy: "default";q=<burst>;w=<seconds a drained bucket takes to fill>` and
`RateLimit: "default";r=<requests left now>;t=<seconds until the bucket is full again>`.

Memory is bounded and each request costs O(1), with no task: buckets are kept in least
recently used order; one idle long enough to be full again is dropped (a new one would be
the same), the oldest as new callers come; past `max_callers`, the least recently used is
dropped all the same (its caller starts again with a full bucket).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

import grpc

from gateway.errors import RequestError
from gateway.types import Headers

POLICY: Final = "default"
_STATE: Final = b'"' + POLICY.encode() + b'";r=%d;t=%d'
RATELIMIT: Final = b"ratelimit"
RATELIMIT_POLICY: Final = b"ratelimit-policy"


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        """When `tokens` was last brought up to date."""


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_callers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_callers < 1:
            raise ValueError("a rate limit needs a positive rate, burst and caller count")
        self.rate = rate
        self.burst = burst
        self.max_callers = max_callers
        self._clock = clock
        self._refill = burst / rate
        """Seconds a drained bucket takes to be full again."""
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        window = math.ceil(self._refill)
        self._policy = (RATELIMIT_POLICY, f'"{POLICY}";q={burst};w={window}'.encode())

    def take(self, key: str) -> Headers:
        """One request of `key`'s: the RateLimit fields to send with its response, or a
        RequestError (429) when its bucket is empty."""
        now = self._clock()
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            self._forget_idle(now)
            if len(buckets) >= self.max_callers:
                buckets.popitem(last=False)
            bucket = buckets[key] = _Bucket(float(self.burst), now)
            tokens = bucket.tokens
        else:
            buckets.move_to_end(key)
            tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if tokens < 1:
            bucket.tokens = tokens
            raise self._refusal(tokens)
        bucket.tokens = tokens = tokens - 1
        return [self._policy, (RATELIMIT, self._state(tokens))]

    def refusal(self, key: str) -> RequestError | None:
        """The 429 `key`'s next request would get, without taking anything; None if it
        would pass."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        tokens = min(float(self.burst), bucket.tokens + (self._clock() - bucket.stamp) * self.rate)
        return self._refusal(tokens) if tokens < 1 else None

    def __len__(self) -> int:
        """Callers tracked."""
        return len(self._buckets)

    def _forget_idle(self, now: float) -> None:
        """Drops the least recently used buckets that are full again: amortized O(1), each
        bucket is dropped once."""
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if oldest.tokens + (now - oldest.stamp) * self.rate < self.burst:
                return
            buckets.popitem(last=False)

    def _state(self, tokens: float) -> bytes:
        full_in = math.ceil((self.burst - tokens) / self.rate)
        return _STATE % (int(tokens), full_in)

    def _refusal(self, tokens: float) -> RequestError:
        retry_after = max(1, math.ceil((1 - tokens) / self.rate))
        return RequestError(
            "RATE_LIMITED",
            None,
            f"too many requests: at most {self.burst} at once and {self.rate:g} per second "
            f"are served per caller; retry in {retry_after} s",
            code=grpc.StatusCode.RESOURCE_EXHAUSTED,
            headers=[
                (b"retry-after", b"%d" % retry_after),
                self._policy,
                (RATELIMIT, self._state(tokens)),
            ],
            metadata={
                "limit_per_second": f"{self.rate:g}",
                "burst": str(self.burst),
                "retry_after_seconds": str(retry_after),
            },
        )
