"""The metrics of a view that follows another service's change feed (order_svc's view of
users: `view="users"`), read at scrape time from what the follower holds (the follower
defines them: `order_svc.view_progress`):

- `shop_view_revision`: the revision of the feed the view has applied;
- `shop_view_lag_revisions`: the feed's head as last reported minus the applied revision;
- `shop_view_lag_seconds`: how long ago the oldest revision heard of and not yet applied
  was first heard of, or the stream was lost, whichever is earlier; 0 when caught up;
- `shop_view_reconnects_total`: streams opened again after one that had delivered was
  lost (failed attempts are not counted), at zero from the start.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class ViewMetrics:
    """One view's metrics in `registry`; the follower records through `reconnects`."""

    def __init__(self, registry: CollectorRegistry, view: str) -> None:
        labels = ("view",)
        self._revision = Gauge(
            "shop_view_revision",
            "The revision of the followed feed that the view has applied.",
            labels,
            registry=registry,
        ).labels(view)
        self._lag_revisions = Gauge(
            "shop_view_lag_revisions",
            "The feed's head as last reported to the view, minus the view's revision.",
            labels,
            registry=registry,
        ).labels(view)
        self._lag_seconds = Gauge(
            "shop_view_lag_seconds",
            "Seconds since the oldest revision heard of and not applied was first heard of, "
            "or since the stream was lost; 0 when caught up.",
            labels,
            registry=registry,
        ).labels(view)
        self.reconnects = Counter(
            "shop_view_reconnects",
            "Times the view's stream was lost after it had delivered, and opened again.",
            labels,
            registry=registry,
        ).labels(view)

    def read_from(
        self,
        *,
        revision: Callable[[], float],
        lag_revisions: Callable[[], float],
        lag_seconds: Callable[[], float],
    ) -> None:
        """Read at scrape time on the admin thread: values the follower holds, no waiting."""
        self._revision.set_function(revision)
        self._lag_revisions.set_function(lag_revisions)
        self._lag_seconds.set_function(lag_seconds)
