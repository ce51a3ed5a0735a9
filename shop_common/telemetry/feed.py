"""The change feed's metrics, labelled by the feed's name (`users`, `orders`: the resource
the service's Watch streams):

- `shop_feed_head_revision`, `shop_feed_compact_revision`, `shop_feed_watchers`: gauges
  read when Prometheus scrapes (`read_from`), from values the feed already holds on the
  loop (plain ints read from the admin thread: no lock, no query, nothing per event);
- `shop_feed_events_sent_total`: events written to watchers (an event sent to three
  watchers counts three; progress notifications and compaction notices are not events);
- `shop_feed_watchers_cut_off_total`: watchers ended as too slow (RESOURCE_EXHAUSTED,
  `WATCH_TOO_SLOW`), at zero from the start so that alerts see it before the first.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class FeedMetrics:
    """One feed's metrics in `registry`; the feed records through `sent` and `cut_off`."""

    def __init__(self, registry: CollectorRegistry, feed: str) -> None:
        labels = ("feed",)
        self._head = Gauge(
            "shop_feed_head_revision",
            "The newest revision of the changelog this replica's feed knows of.",
            labels,
            registry=registry,
        ).labels(feed)
        self._compact = Gauge(
            "shop_feed_compact_revision",
            "The feed's compaction point: revisions up to it are forgotten (a watch from "
            "there must list again).",
            labels,
            registry=registry,
        ).labels(feed)
        self._watchers = Gauge(
            "shop_feed_watchers",
            "Watch calls open on this replica's feed now.",
            labels,
            registry=registry,
        ).labels(feed)
        self.sent = Counter(
            "shop_feed_events_sent",
            "Events written to watchers (each watcher's copy counts).",
            labels,
            registry=registry,
        ).labels(feed)
        self.cut_off = Counter(
            "shop_feed_watchers_cut_off",
            "Watchers ended as too slow (their buffer of revisions was full: WATCH_TOO_SLOW).",
            labels,
            registry=registry,
        ).labels(feed)

    def read_from(
        self,
        *,
        head: Callable[[], float],
        compact: Callable[[], float],
        watchers: Callable[[], float],
    ) -> None:
        """The gauges are read through these at scrape time, on the admin thread: each must
        return a value the process already holds, without blocking."""
        self._head.set_function(head)
        self._compact.set_function(compact)
        self._watchers.set_function(watchers)
