"""The feed's, the view's, storage's and health's metrics for real: user_svc and order_svc
on loopback with their admin ports on ephemeral ports, `/metrics` read over HTTP and parsed
as Prometheus reads it, while real watches, writes, restarts and slow clients happen."""

from __future__ import annotations

import asyncio
import pathlib
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from order_svc.user_feed import HEALTH_NAME as USER_FEED
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.feed import FeedSettings
from shop_common.serving import RunningServer
from tests.integration.helpers import create_user
from tests.integration.test_feed import Writes, non_reading_channel, watch_users, write_users
from tests.integration.test_user_view import QUICK_FEED, UserSvc
from tests.support import (
    Databases,
    channel_to,
    eventually,
    running_order_svc,
    running_user_svc,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

ADMIN = "127.0.0.1:0"
WAIT = 10.0
"""How long `eventually` waits at most: a bound for slow machines, not the expected time."""
USERS = {"feed": "users"}
VIEW = {"view": "users"}
ORDER_SERVICE = "shop.order.v1.OrderService"


def _scrape(running: RunningServer) -> Samples:
    assert running.admin is not None
    with urllib.request.urlopen(running.admin.url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scraped(running: RunningServer) -> Samples:
    return await asyncio.to_thread(_scrape, running)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def labelled(samples: Samples, name: str) -> list[dict[str, str]]:
    """The label sets `name` has samples for."""
    return [dict(labels) for found, labels in samples if found == name]


async def until(
    running: RunningServer, what: str, name: str, expected: float, **labels: str
) -> None:
    """Until the scraped `name{labels}` is `expected`."""

    async def holds() -> bool:
        found = value(await scraped(running), name, **labels)
        assert found == expected, f"{name}{labels} = {found}, not {expected}"
        return True

    await eventually(holds, WAIT, what)


# -- the change feed ------------------------------------------------------------------------


async def test_feed_gauges_follow_writes_and_watchers_and_events_are_counted_per_watcher(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    # History older than half a second is compacted every second (the newest always stays).
    feed = FeedSettings(retention_seconds=0.5)
    async with (
        running_user_svc(database_url, tmp_path, feed=feed, admin_listen=ADMIN) as running,
        channel_to(running.port) as channel,
    ):
        users = user_pb2_grpc.UserServiceStub(channel)
        start = await scraped(running)
        for name in ("head_revision", "compact_revision", "watchers"):
            assert value(start, f"shop_feed_{name}", **USERS) == 0
        assert value(start, "shop_feed_events_sent_total", **USERS) == 0

        watches = [watch_users(users, 0), watch_users(users, 0)]
        try:
            await until(running, "two watchers", "shop_feed_watchers", 2, **USERS)
            created = [await create_user(users) for _ in range(3)]
            for watch in watches:
                seen: list[int] = []
                async with asyncio.timeout(WAIT):
                    while len(seen) < 3:
                        response = await watch.read()
                        assert isinstance(response, user_pb2.WatchUsersResponse)
                        seen.extend(e.revision for e in response.events)
                assert seen == [int(u.etag) for u in created]
            samples = await scraped(running)
            assert value(samples, "shop_feed_head_revision", **USERS) == 3
            # Each watcher's copy of each event.
            assert value(samples, "shop_feed_events_sent_total", **USERS) == 6
        finally:
            for watch in watches:
                watch.cancel()
        await until(running, "the watchers gone", "shop_feed_watchers", 0, **USERS)

        # Nobody attached: the feed reads no log, but knows what this replica commits.
        await create_user(users)
        assert value(await scraped(running), "shop_feed_head_revision", **USERS) == 4
        await until(running, "compaction", "shop_feed_compact_revision", 3, **USERS)
        assert value(await scraped(running), "shop_feed_events_sent_total", **USERS) == 6


async def test_a_watcher_cut_off_as_too_slow_is_counted(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    feed = FeedSettings(buffer_revisions=100)
    async with (
        running_user_svc(database_url, tmp_path, feed=feed, admin_listen=ADMIN) as running,
        channel_to(running.port) as channel,
        non_reading_channel(running.port) as slow_channel,
    ):
        users = user_pb2_grpc.UserServiceStub(channel)
        await create_user(users)
        slow = watch_users(user_pb2_grpc.UserServiceStub(slow_channel), 1, prev_user=True)
        try:
            await until(running, "the slow watcher", "shop_feed_watchers", 1, **USERS)
            assert value(await scraped(running), "shop_feed_watchers_cut_off_total", **USERS) == 0
            await write_users(users, 400, Writes([1]), name_length=200)
            await until(running, "the cut-off", "shop_feed_watchers_cut_off_total", 1, **USERS)
            await until(running, "the slow one forgotten", "shop_feed_watchers", 0, **USERS)
        finally:
            slow.cancel()


# -- order_svc's view of users, and health ---------------------------------------------------


async def test_view_catches_up_reconnects_after_a_restart_and_health_follows(
    databases: Databases, tmp_path: pathlib.Path
) -> None:
    user_url, order_url = await databases.new_many(2)
    users = UserSvc(user_url, tmp_path / "user_svc")
    await users.start()
    try:
        async with running_order_svc(
            order_url, tmp_path / "order_svc", users.addr, feed=QUICK_FEED, admin_listen=ADMIN
        ) as orders:
            created = [await create_user(users.users) for _ in range(3)]
            head = int(created[-1].etag)
            await until(orders, "the view caught up", "shop_view_revision", head, **VIEW)
            await until(orders, "no lag", "shop_view_lag_revisions", 0, **VIEW)
            await until(orders, "no lag in time", "shop_view_lag_seconds", 0, **VIEW)
            current = await scraped(orders)
            serving = "shop_health_serving"
            assert value(current, serving, service=USER_FEED) == 1
            assert value(current, serving, service="") == 1
            assert value(current, serving, service=ORDER_SERVICE) == 1
            assert value(current, "shop_view_reconnects_total", **VIEW) == 0

            await users.stop()
            await until(orders, "UserFeed not serving", serving, 0, service=USER_FEED)

            async def behind() -> bool:
                samples = await scraped(orders)
                assert value(samples, "shop_view_lag_seconds", **VIEW) > 0
                assert value(samples, serving, service="") == 1  # the service itself serves
                return True

            await eventually(behind, WAIT, "the view behind while user_svc is away")
            # Failed attempts to connect are not reconnects: none has delivered yet.
            assert value(await scraped(orders), "shop_view_reconnects_total", **VIEW) == 0

            await users.start()
            await until(orders, "reconnected", "shop_view_reconnects_total", 1, **VIEW)
            later = await create_user(users.users)
            await until(orders, "caught up again", "shop_view_revision", int(later.etag), **VIEW)
            await until(orders, "UserFeed serving", serving, 1, service=USER_FEED)
            await until(orders, "no lag again", "shop_view_lag_seconds", 0, **VIEW)
            assert value(await scraped(orders), "shop_view_lag_revisions", **VIEW) == 0

        # Stopped: gone NOT_SERVING (the admin port stops with it, so seen in the servicer).
        assert not orders.serving_statuses()[""]
    finally:
        await users.stop()


# -- storage ---------------------------------------------------------------------------------


async def test_storage_records_reads_and_writes_under_its_database(
    databases: Databases, tmp_path: pathlib.Path
) -> None:
    url = await databases.new()
    database = "postgresql" if databases.is_postgres else "sqlite"
    async with (
        running_user_svc(url, tmp_path, admin_listen=ADMIN) as running,
        channel_to(running.port) as channel,
    ):
        users = user_pb2_grpc.UserServiceStub(channel)
        before = await scraped(running)
        user = await create_user(users)
        await users.GetUser(user_pb2.GetUserRequest(id=user.id))
        await asyncio.gather(*(create_user(users) for _ in range(8)))
        after = await scraped(running)
    name = "shop_storage_unit_of_work_seconds"
    for kind in ("read", "write"):
        count = f"{name}_count"
        grew = value(after, count, kind=kind, database=database) - value(
            before, count, kind=kind, database=database
        )
        assert grew >= 1, kind
        assert value(after, f"{name}_sum", kind=kind, database=database) > 0
    assert {tuple(sorted(labels.items())) for labels in labelled(after, f"{name}_count")} == {
        (("database", database), ("kind", "read")),
        (("database", database), ("kind", "write")),
    }
    group = "shop_storage_commit_group_size"
    # Nine users created, every one committed (alone or in a group with others).
    assert (
        value(after, f"{group}_sum", database=database)
        - value(before, f"{group}_sum", database=database)
        >= 9
    )
    assert value(after, f"{group}_count", database=database) >= 1
    buckets = {labels["le"] for labels in labelled(after, f"{group}_bucket")}
    assert buckets == {"1.0", "2.0", "4.0", "8.0", "16.0", "32.0", "64.0", "128.0", "+Inf"}
    assert value(after, "shop_storage_writer_queue_length", database=database) == 0


# -- from the start --------------------------------------------------------------------------


async def test_every_rare_counter_is_at_zero_right_after_start(
    databases: Databases, tmp_path: pathlib.Path
) -> None:
    user_url, order_url = await databases.new_many(2)
    async with running_user_svc(user_url, tmp_path / "u", admin_listen=ADMIN) as users:
        user_samples = await scraped(users)
        async with running_order_svc(
            order_url, tmp_path / "o", f"127.0.0.1:{users.port}", admin_listen=ADMIN
        ) as orders:
            order_samples = await scraped(orders)
    assert value(user_samples, "shop_feed_watchers_cut_off_total", **USERS) == 0
    assert value(user_samples, "shop_feed_events_sent_total", **USERS) == 0
    orders_feed = {"feed": "orders"}
    assert value(order_samples, "shop_feed_watchers_cut_off_total", **orders_feed) == 0
    assert value(order_samples, "shop_view_reconnects_total", **VIEW) == 0
    # Every name the health servicer knows, the view's own among them.
    health = {labels["service"] for labels in labelled(order_samples, "shop_health_serving")}
    assert health == {"", ORDER_SERVICE, USER_FEED}
    assert {labels["service"] for labels in labelled(user_samples, "shop_health_serving")} == {
        "",
        "shop.user.v1.UserService",
    }
    # No view in the user service, no database label but its own.
    assert not labelled(user_samples, "shop_view_revision")
