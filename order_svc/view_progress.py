"""How far the view of users is behind the user service, as its follower (`user_feed`)
sees it: what the view's metrics (`telemetry.ViewMetrics`, `view="users"`) read at scrape
time, on the admin thread (each a plain attribute the loop writes whole).

- revision: what the view has applied (read at start, after a listing, after each batch);
- lag in revisions: the head the user service last reported (every response carries it,
  progress notifications included) minus the applied revision, never below 0;
- lag in seconds: how long ago the follower first heard of the oldest revision it has not
  applied yet, or lost its stream (or started), whichever is earlier; 0 when it has
  applied every revision it has heard of and its stream is up. Under a steady stream of
  writes that is the time a change takes to reach the view (heard of by its header
  revision, then applied), not the time since the view was last exactly current (which a
  busy feed seldom is); while the user service is unreachable it grows from the moment the
  stream was lost: the view may be missing anything since;
- reconnects: streams opened again after one that had delivered a response was lost (a
  restart of the user service, a network cut, a listing forced by compaction); attempts
  that fail to connect are not counted, so an outage counts once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from shop_common.telemetry import ViewMetrics


class ViewProgress:
    def __init__(
        self, metrics: ViewMetrics | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self.applied = 0
        self.head = 0
        self._heard: deque[tuple[int, float]] = deque()
        """(a head revision not applied yet, when first heard of), in order."""
        self._down_since: float | None = self._clock()
        """Since when no stream is up (None while one is)."""
        self._behind_since: float | None = self._down_since
        self._delivered = False
        self._reconnects = None if metrics is None else metrics.reconnects
        if metrics is not None:
            metrics.read_from(
                revision=lambda: self.applied,
                lag_revisions=lambda: max(0, self.head - self.applied),
                lag_seconds=self.lag_seconds,
            )

    def lag_seconds(self) -> float:
        since = self._behind_since
        return 0.0 if since is None else max(0.0, self._clock() - since)

    def connected(self) -> None:
        """A stream delivered its first response."""
        if self._delivered and self._reconnects is not None:
            self._reconnects.inc()
        self._delivered = True
        self._down_since = None
        self._update()

    def lost(self) -> None:
        """The stream ended or failed (or could not be opened)."""
        if self._down_since is None:
            self._down_since = self._clock()
            self._update()

    def heard(self, head: int) -> None:
        """A response said the user service is at `head`."""
        self.head = head
        while self._heard and self._heard[-1][0] > head:
            self._heard.pop()  # the user service went back (restored): a listing follows
        if head > self.applied and (not self._heard or head > self._heard[-1][0]):
            self._heard.append((head, self._clock()))
        self._update()

    def applied_to(self, revision: int) -> None:
        """The view is current to `revision` (applied, listed, or read at start)."""
        self.applied = revision
        while self._heard and self._heard[0][0] <= revision:
            self._heard.popleft()
        self._update()

    def _update(self) -> None:
        oldest = self._heard[0][1] if self._heard else None
        down = self._down_since
        if oldest is None or down is None:
            self._behind_since = down if oldest is None else oldest
        else:
            self._behind_since = min(oldest, down)
