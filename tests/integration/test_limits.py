"""What one client may take of a server, on real servers: message sizes, streams per
connection, pings, watches per connection and per process. Each limit is set small here, and
what gRPC (or the feed) does at it is what a client sees.

The transport does not depend on the database: these run on SQLite only.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from order_svc.user_feed import HEALTH_NAME as USER_FEED_HEALTH
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.feed import FeedSettings
from shop_common.serving import RunningServer, ServerLimits
from tests.integration.helpers import (
    create_user,
    fails,
    failure_of,
    known_to_orders,
    order_request,
)
from tests.support import channel_to, eventually, running_order_svc, running_user_svc

Code = grpc.StatusCode
UserWatch = grpc.aio.UnaryStreamCall[user_pb2.WatchUsersRequest, user_pb2.WatchUsersResponse]
W = TypeVar("W", bound=grpc.aio.Call)

QUIET = FeedSettings(progress_seconds=60)
"""A watch that asks for progress gets one bookmark at once, then nothing for a minute."""
NEW_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)
"""A channel with its own subchannel pool dials a connection of its own (by default the
channels of a process to one address share one)."""


@contextlib.asynccontextmanager
async def user_svc(
    tmp_path: pathlib.Path, *, feed: FeedSettings = QUIET, limits: ServerLimits | None = None
) -> AsyncIterator[RunningServer]:
    async with running_user_svc(
        f"sqlite:///{tmp_path}/users.db", tmp_path, feed=feed, limits=limits
    ) as server:
        yield server


def watch(channel: grpc.aio.Channel, **request: Any) -> UserWatch:
    stub = user_pb2_grpc.UserServiceStub(channel)
    fields = {"progress_notify": True, **request}
    call: UserWatch = stub.WatchUsers(user_pb2.WatchUsersRequest(**fields))
    return call


async def started(call: UserWatch) -> None:
    """Waits for the bookmark a watch that asked for progress gets as soon as it runs."""
    async with asyncio.timeout(5):
        response = await call.read()
    assert isinstance(response, user_pb2.WatchUsersResponse)
    assert response.progress_notify


async def refused(call: UserWatch) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async with asyncio.timeout(5):
            await call.read()
    return caught.value


def first_reads(calls: Sequence[UserWatch]) -> list[asyncio.Future[Any]]:
    """Each call's first read, going on in a task (cancelling a read cancels its call)."""
    return [asyncio.ensure_future(call.read()) for call in calls]


async def which_done(reads: Sequence[asyncio.Future[Any]], within: float) -> list[bool]:
    done, _ = await asyncio.wait(reads, timeout=within)
    return [read in done for read in reads]


# -- messages ------------------------------------------------------------------------------


async def test_a_request_over_the_receive_limit_is_refused_and_the_server_serves_on(
    tmp_path: pathlib.Path,
) -> None:
    async with (
        user_svc(tmp_path, limits=ServerLimits(max_receive_bytes=1024)) as server,
        channel_to(server.port) as channel,
    ):
        users = user_pb2_grpc.UserServiceStub(channel)
        big = user_pb2.User(email="big@example.com", display_name="x" * 3000)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await users.CreateUser(user_pb2.CreateUserRequest(user=big))
        # gRPC refuses it before any handler runs: no ErrorInfo, gRPC's own words.
        assert caught.value.code() == Code.RESOURCE_EXHAUSTED
        assert "Received message larger than max" in (caught.value.details() or "")
        assert "vs. 1024" in (caught.value.details() or "")
        small = await create_user(users, display_name="x" * 200)  # the largest a name may be
        assert (await users.GetUser(user_pb2.GetUserRequest(id=small.id))).user == small
        listed = await users.ListUsers(user_pb2.ListUsersRequest())
        assert [u.id for u in listed.users] == [small.id]


async def test_the_default_receive_limit_is_4_mib(tmp_path: pathlib.Path) -> None:
    async with user_svc(tmp_path) as server, channel_to(server.port) as channel:
        users = user_pb2_grpc.UserServiceStub(channel)
        huge = user_pb2.User(email="huge@example.com", display_name="x" * (4 * 1024 * 1024))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await users.CreateUser(user_pb2.CreateUserRequest(user=huge))
        assert caught.value.code() == Code.RESOURCE_EXHAUSTED
        assert f"vs. {4 * 1024 * 1024}" in (caught.value.details() or "")
        await create_user(users)


async def test_a_response_over_the_send_limit_fails_that_call_only(
    tmp_path: pathlib.Path,
) -> None:
    async with (
        user_svc(tmp_path, limits=ServerLimits(max_send_bytes=1024)) as server,
        channel_to(server.port) as channel,
    ):
        users = user_pb2_grpc.UserServiceStub(channel)
        for _ in range(10):
            await create_user(users, display_name="y" * 150)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await users.ListUsers(user_pb2.ListUsersRequest())
        assert caught.value.code() == Code.RESOURCE_EXHAUSTED
        assert "larger than max" in (caught.value.details() or "")
        page = await users.ListUsers(user_pb2.ListUsersRequest(page_size=2))
        assert len(page.users) == 2


# -- streams per connection ----------------------------------------------------------------


async def test_calls_beyond_the_concurrent_streams_of_a_connection_wait_for_one_to_end(
    tmp_path: pathlib.Path,
) -> None:
    limits = ServerLimits(max_concurrent_streams=2)
    async with user_svc(tmp_path, limits=limits) as server, channel_to(server.port) as channel:
        await channel.channel_ready()  # the server's SETTINGS are known before any call
        calls = [watch(channel) for _ in range(3)]
        reads = first_reads(calls)
        assert await which_done(reads, within=1.0) == [True, True, False]
        # A unary call waits as well, until its deadline: HTTP/2 queues, it does not refuse.
        users = user_pb2_grpc.UserServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await users.ListUsers(user_pb2.ListUsersRequest(), timeout=0.5)
        assert caught.value.code() == Code.DEADLINE_EXCEEDED
        # Another connection is not held up.
        async with channel_to(server.port, NEW_CONNECTION) as other:
            await started(watch(other))
        calls[0].cancel()
        assert await which_done(reads, within=5) == [True, True, True]
        assert reads[2].result().progress_notify
        for call in calls:
            call.cancel()


# -- watches per connection and per process -------------------------------------------------


async def test_a_connection_may_hold_only_so_many_watches_and_a_slot_is_freed_when_one_ends(
    tmp_path: pathlib.Path,
) -> None:
    feed = FeedSettings(progress_seconds=60, max_watches_per_connection=2)
    async with (
        user_svc(tmp_path, feed=feed) as server,
        channel_to(server.port) as channel,
        channel_to(server.port, NEW_CONNECTION) as other,
    ):
        first, second = watch(channel), watch(channel)
        await started(first)
        await started(second)
        found = failure_of(await refused(watch(channel)))
        assert (found.code, found.reason, found.domain) == (
            Code.RESOURCE_EXHAUSTED,
            "TOO_MANY_WATCHES",
            "shop.dev",
        )
        assert found.metadata == {"max_watches_per_connection": "2"}
        assert "2 watches open" in found.message
        # Unary calls on that connection are not held up, and another connection may watch.
        await create_user(user_pb2_grpc.UserServiceStub(channel))
        await started(watch(other))
        first.cancel()
        replacement = await watch_once_a_slot_is_free(channel)
        # Exact: two open again on the first connection, so a third is refused again.
        await fails(watch(channel).read(), Code.RESOURCE_EXHAUSTED, "TOO_MANY_WATCHES")
        replacement.cancel()
        second.cancel()
        third, fourth = await watch_once_a_slot_is_free(channel), watch(channel)
        await started(fourth)
        await fails(watch(channel).read(), Code.RESOURCE_EXHAUSTED, "TOO_MANY_WATCHES")
        third.cancel()
        fourth.cancel()


async def watch_once_a_slot_is_free(channel: grpc.aio.Channel) -> UserWatch:
    return await once_a_slot_is_free(lambda: watch(channel), started)


async def once_a_slot_is_free(
    open_watch: Callable[[], W], start: Callable[[W], Awaitable[None]]
) -> W:
    """A watch that started: the server frees a cancelled watch's slot when its handler has
    unwound, a moment after the client cancelled."""
    opened: list[W] = []

    async def admitted() -> bool:
        call = open_watch()
        try:
            await start(call)
        except grpc.aio.AioRpcError as error:
            if error.code() != Code.RESOURCE_EXHAUSTED:
                raise
            return False
        opened.append(call)
        return True

    await eventually(admitted, 5, "a watch admitted")
    return opened[0]


async def test_a_watch_ended_by_its_deadline_or_an_error_frees_its_slot(
    tmp_path: pathlib.Path,
) -> None:
    feed = FeedSettings(progress_seconds=60, retention_seconds=0, max_watches_per_connection=1)
    async with user_svc(tmp_path, feed=feed) as server, channel_to(server.port) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        for _ in range(3):
            timed = stub.WatchUsers(user_pb2.WatchUsersRequest(), timeout=0.2)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await timed.read()
            assert caught.value.code() == Code.DEADLINE_EXCEEDED
            (await watch_once_a_slot_is_free(channel)).cancel()
        for _ in range(3):
            await create_user(stub)

        async def compacted() -> bool:
            """A watch from revision 1, once history is compacted (within a second): it
            ends with OUT_OF_RANGE, having held the connection's one slot."""
            call = stub.WatchUsers(user_pb2.WatchUsersRequest(start_revision=1), timeout=1)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in call:
                    pass
            found = failure_of(caught.value)
            assert found.reason in ("REVISION_COMPACTED", None), found  # None: its deadline
            return found.reason == "REVISION_COMPACTED"

        await eventually(compacted, 5, "history compacted")
        for _ in range(3):  # the slot is given back before the error is sent
            assert await compacted()
        (await watch_once_a_slot_is_free(channel)).cancel()


async def test_the_process_holds_only_so_many_watches_whatever_their_connections(
    tmp_path: pathlib.Path,
) -> None:
    feed = FeedSettings(progress_seconds=60, max_watches=2)
    async with (
        user_svc(tmp_path, feed=feed) as server,
        channel_to(server.port, NEW_CONNECTION) as one,
        channel_to(server.port, NEW_CONNECTION) as two,
        channel_to(server.port, NEW_CONNECTION) as three,
    ):
        first, second = watch(one), watch(two)
        await started(first)
        await started(second)
        found = await fails(watch(three).read(), Code.RESOURCE_EXHAUSTED, "WATCH_CAPACITY_REACHED")
        assert found.metadata == {"max_watches": "2"}
        first.cancel()
        (await watch_once_a_slot_is_free(three)).cancel()
        second.cancel()


# -- watches per caller ------------------------------------------------------------------------


OrderWatch = grpc.aio.UnaryStreamCall[order_pb2.WatchOrdersRequest, order_pb2.WatchOrdersResponse]


def watch_as(channel: grpc.aio.Channel, subject: str | None) -> OrderWatch:
    """A watch of the caller's own orders by `subject` (development identity believes
    `Bearer <subject>`); None: with no credentials, the development admin (every order)."""
    stub = order_pb2_grpc.OrderServiceStub(channel)
    metadata = () if subject is None else (("authorization", f"Bearer {subject}"),)
    request = order_pb2.WatchOrdersRequest(progress_notify=True)
    call: OrderWatch = stub.WatchOrders(request, metadata=metadata)
    return call


async def order_watch_started(call: OrderWatch) -> None:
    """Waits for the bookmark a watch that asked for progress gets as soon as it runs."""
    async with asyncio.timeout(5):
        response = await call.read()
    assert isinstance(response, order_pb2.WatchOrdersResponse)
    assert response.progress_notify


async def test_a_caller_may_hold_only_so_many_watches_whatever_its_connections(
    tmp_path: pathlib.Path,
) -> None:
    """WatchOrders, which users may call (their own orders): the cap is the feed's, the same
    for every watch a service serves."""
    feed = FeedSettings(progress_seconds=60, max_watches_per_caller=2)
    async with (
        user_svc(tmp_path) as users_server,
        running_order_svc(
            f"sqlite:///{tmp_path}/orders.db",
            tmp_path,
            f"127.0.0.1:{users_server.port}",
            feed=feed,
        ) as server,
        channel_to(users_server.port) as user_channel,
        channel_to(server.port) as channel,
        channel_to(server.port, NEW_CONNECTION) as other,
    ):
        users = user_pb2_grpc.UserServiceStub(user_channel)
        orders = order_pb2_grpc.OrderServiceStub(channel)
        for subject in ("alice", "bob"):
            await known_to_orders(orders, await create_user(users, subject=subject))
        first, second = watch_as(channel, "alice"), watch_as(other, "alice")
        await order_watch_started(first)
        await order_watch_started(second)
        for on in (channel, other):
            found = await fails(
                watch_as(on, "alice").read(), Code.RESOURCE_EXHAUSTED, "TOO_MANY_WATCHES_FOR_CALLER"
            )
            assert found.metadata == {"max_watches_per_caller": "2"}
            assert "2 watches open" in found.message
        # Another caller on the same connection (a gateway's, say) is served.
        bobs = [watch_as(channel, "bob"), watch_as(channel, "bob")]
        for call in bobs:
            await order_watch_started(call)
        # The development admin (every call without credentials in dev mode) is not counted.
        admins = [watch_as(channel, None) for _ in range(3)]
        for call in admins:
            await order_watch_started(call)
        # A cancelled watch gives its caller's slot back, exactly one.
        first.cancel()
        replacement = await once_a_slot_is_free(
            lambda: watch_as(channel, "alice"), order_watch_started
        )
        await fails(
            watch_as(channel, "alice").read(),
            Code.RESOURCE_EXHAUSTED,
            "TOO_MANY_WATCHES_FOR_CALLER",
        )
        for call in (replacement, second, *bobs, *admins):
            call.cancel()


async def test_the_order_service_follows_users_within_one_watch_and_spare_streams(
    tmp_path: pathlib.Path,
) -> None:
    """The order service's channel to the user service carries its feed's one watch and its
    GetUser calls: it works with a user service that allows one watch and two streams."""
    feed = FeedSettings(progress_seconds=60, max_watches_per_connection=1)
    limits = ServerLimits(max_concurrent_streams=2)
    async with user_svc(tmp_path / "users", feed=feed, limits=limits) as users_server:
        address = f"127.0.0.1:{users_server.port}"
        async with (
            running_order_svc(f"sqlite:///{tmp_path}/orders.db", tmp_path, address) as server,
            channel_to(server.port) as order_channel,
            channel_to(users_server.port) as user_channel,
        ):
            health = health_pb2_grpc.HealthStub(order_channel)
            request = health_pb2.HealthCheckRequest(service=USER_FEED_HEALTH)
            serving = health_pb2.HealthCheckResponse.SERVING

            async def follows() -> bool:
                return bool((await health.Check(request)).status == serving)

            await eventually(follows, 5, "order_svc following the user feed")
            orders = order_pb2_grpc.OrderServiceStub(order_channel)
            for _ in range(3):  # new users: checked with GetUser unless the view has them
                user = await create_user(user_pb2_grpc.UserServiceStub(user_channel))
                await orders.CreateOrder(order_request(user.id))
            assert await follows()


# -- pings ------------------------------------------------------------------------------


async def test_a_client_that_pings_too_often_is_sent_away_with_too_many_pings(
    tmp_path: pathlib.Path,
) -> None:
    """Pings every second against a server that permits one every 5 s and forgives one
    strike: the second strike closes the connection (GOAWAY ENHANCE_YOUR_CALM,
    `too_many_pings`), about 3 s in."""
    limits = ServerLimits(min_ping_interval_seconds=5, max_ping_strikes=1)
    pinging = (
        ("grpc.keepalive_time_ms", 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),  # else gRPC stops pinging after 2
    )
    async with (
        user_svc(tmp_path, limits=limits) as server,
        channel_to(server.port, pinging) as channel,
    ):
        call = watch(channel, progress_notify=False)  # a stream that sends nothing
        began = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async with asyncio.timeout(10):
                await call.read()
        assert caught.value.code() == Code.UNAVAILABLE
        assert "too many pings" in (caught.value.details() or "").lower()
        assert 1.5 < time.monotonic() - began < 8
        # The client may come back (gRPC doubles its keepalive time after such a GOAWAY).
        users = user_pb2_grpc.UserServiceStub(channel)
        await users.ListUsers(user_pb2.ListUsersRequest(), timeout=5)


async def test_a_client_that_pings_within_the_interval_is_not_sent_away(
    tmp_path: pathlib.Path,
) -> None:
    limits = ServerLimits(min_ping_interval_seconds=0.5, max_ping_strikes=1)
    pinging = (
        ("grpc.keepalive_time_ms", 1000),
        ("grpc.http2.max_pings_without_data", 0),
    )
    async with (
        user_svc(tmp_path, limits=limits) as server,
        channel_to(server.port, pinging) as channel,
    ):
        call = watch(channel, progress_notify=False)
        assert await which_done(first_reads([call]), within=3.5) == [False]  # open, no error
        assert not call.done()
        call.cancel()


# -- connection age -----------------------------------------------------------------------


async def test_a_connection_past_its_age_ends_its_watches_after_the_grace_and_the_client_goes_on(
    tmp_path: pathlib.Path,
) -> None:
    """What moves clients behind an L4 load balancer: GOAWAY at the age (1 s ± 10%), then
    the grace for calls in flight; a watch is cut then, and resumes on a new connection."""
    limits = ServerLimits(max_connection_age_seconds=1, max_connection_age_grace_seconds=0.5)
    async with user_svc(tmp_path, limits=limits) as server, channel_to(server.port) as channel:
        call = watch(channel)
        await started(call)
        began = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async with asyncio.timeout(5):
                await call.read()
        assert caught.value.code() == Code.UNAVAILABLE
        assert "max connection age" in (caught.value.details() or "")
        assert time.monotonic() - began < 3
        await started(watch(channel))
