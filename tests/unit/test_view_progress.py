"""What the view's lag metrics say, on a clock the test turns: lag in revisions is the head
heard minus the revision applied; lag in seconds counts from the oldest revision heard of
and not applied, or from the stream's loss; reconnects count streams that delivered again."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from order_svc.view_progress import ViewProgress
from shop_common.telemetry import ViewMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sample(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name, {"view": "users"})


def test_lag_counts_from_the_oldest_revision_heard_and_not_applied() -> None:
    clock, registry = Clock(), CollectorRegistry()
    progress = ViewProgress(ViewMetrics(registry, "users"), clock)
    clock.now += 5
    assert sample(registry, "shop_view_lag_seconds") == 5  # not connected since start
    progress.applied_to(3)
    progress.connected()
    progress.heard(3)
    assert sample(registry, "shop_view_lag_seconds") == 0
    assert sample(registry, "shop_view_revision") == 3

    progress.heard(5)  # at 105
    clock.now += 1
    progress.heard(9)  # at 106: later heads do not restart the count
    clock.now += 1
    assert sample(registry, "shop_view_lag_revisions") == 6
    assert sample(registry, "shop_view_lag_seconds") == 2
    progress.applied_to(5)  # the oldest is applied: counted from the next one heard
    assert sample(registry, "shop_view_lag_seconds") == 1
    progress.applied_to(9)
    assert sample(registry, "shop_view_lag_revisions") == 0
    assert sample(registry, "shop_view_lag_seconds") == 0


def test_a_lost_stream_is_lag_until_one_delivers_again_and_that_is_one_reconnect() -> None:
    clock, registry = Clock(), CollectorRegistry()
    progress = ViewProgress(ViewMetrics(registry, "users"), clock)
    progress.connected()
    progress.heard(0)
    assert sample(registry, "shop_view_reconnects_total") == 0
    progress.lost()
    clock.now += 3
    progress.lost()  # failed attempts while it is away: still counted from the first loss
    clock.now += 1
    assert sample(registry, "shop_view_lag_seconds") == 4
    assert sample(registry, "shop_view_reconnects_total") == 0
    progress.connected()
    progress.heard(0)
    assert sample(registry, "shop_view_lag_seconds") == 0
    assert sample(registry, "shop_view_reconnects_total") == 1


def test_a_user_service_gone_back_in_time_leaves_no_lag_behind() -> None:
    clock, registry = Clock(), CollectorRegistry()
    progress = ViewProgress(ViewMetrics(registry, "users"), clock)
    progress.connected()
    progress.applied_to(10)
    progress.heard(50)
    clock.now += 1
    progress.heard(4)  # restored from a backup: the follower lists again
    progress.applied_to(4)
    assert sample(registry, "shop_view_lag_seconds") == 0
    assert sample(registry, "shop_view_lag_revisions") == 0
