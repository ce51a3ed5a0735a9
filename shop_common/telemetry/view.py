"""The metrics of a view that follows another service's change feed (order_svc's view of
users: `view="users"`), read at scrape time from what the follower holds:

- `shop_view_revision`: the revision of the feed the view has applied;
- `shop_view_lag_revisions`: the feed's head as the view last heard it (every response,
  progress notifications included, carries it) minus the applied revision;
- `shop_view_lag_seconds`: how long the view has been behind, 0 while it is current (it has
  applied the head its feed last reported). Behind means: a response announced revisions
  not yet applied, or the stream is down, or it has not caught up since the process
  started. It grows while the user service is unreachable (the head is then unknown, and
  the view may be missing anything), which is what an alert on staleness wants;
- `shop_view_reconnects_total`: streams opened again after one that had delivered a
  response was lost (the user service restarted, a network cut, a compaction that forced
  a new listing); attempts that fail to connect are not counted, so an outage counts once.
  At zero from the start.
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
            "How long the view has been behind its feed's head (or cut off from it); 0 "
            "while current.",
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
