"""Storage metrics, labelled by the database kind (`sqlite`, `postgresql`):

- `shop_storage_unit_of_work_seconds{kind}` (`read`, `write`): from a unit's hand-over to
  a database thread until its result is back on the loop, as its caller waits: the wait in
  the queue, the work and the commit (a grouped commit's time falls on each unit in it);
- `shop_storage_writer_queue_length`: write units handed over and not yet answered, read
  at scrape time;
- `shop_storage_commit_group_size`: units per write transaction committed (SQLite's one
  writer commits the units of a turn together; PostgreSQL's writers one each, so 1).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram

from shop_common.telemetry.grpc_server import BUCKETS

GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class StorageMetrics:
    """One database's metrics in `registry`; the database records through `read`,
    `write` (histograms' children) and `group` (the commit group size)."""

    def __init__(self, registry: CollectorRegistry, database: str) -> None:
        seconds = Histogram(
            "shop_storage_unit_of_work_seconds",
            "Units of work from hand-over to a database thread to their result, by kind.",
            ("kind", "database"),
            buckets=BUCKETS,
            registry=registry,
        )
        self.read = seconds.labels("read", database)
        self.write = seconds.labels("write", database)
        self._queue = Gauge(
            "shop_storage_writer_queue_length",
            "Write units of work handed to the database threads and not yet answered.",
            ("database",),
            registry=registry,
        ).labels(database)
        self.group = Histogram(
            "shop_storage_commit_group_size",
            "Units of work committed in one write transaction.",
            ("database",),
            buckets=GROUP_BUCKETS,
            registry=registry,
        ).labels(database)

    def read_from(self, *, writer_queue: Callable[[], float]) -> None:
        """Read at scrape time on the admin thread: a count the process holds."""
        self._queue.set_function(writer_queue)
