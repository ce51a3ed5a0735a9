"""The change feeds end to end: WatchUsers and WatchOrders on real servers, on each backend.

The promises (see `shop_common.feed.watch`): every committed write is one revision, delivered in
order and exactly once, all events of a revision in one response (or in fragments when
they are too many for one); a watch from 0 starts
now; history hands over to the live tail without a gap; compacted history is refused with
OUT_OF_RANGE; idle streams that asked get bookmarks; a watcher that does not read is cut off;
streams end with UNAVAILABLE when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
import pytest
from google.protobuf import message
from grpc_health.v1 import health_pb2, health_pb2_grpc

import shop_common.serving.startup
import user_svc.app
from order_svc.user_feed import HEALTH_NAME as USER_FEED_HEALTH
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.feed import Feed, FeedSettings
from shop_common.serving import ServiceSettings
from shop_common.serving.identity import DEVELOPMENT_WARNING
from shop_common.storage import Changelog, Database
from tests.integration.helpers import (
    DOMAIN,
    Failure,
    create_user,
    fails,
    failure_of,
    item,
    new_email,
    order_request,
)
from tests.support import (
    Databases,
    Services,
    channel_to,
    common_settings,
    running_order_svc,
    running_user_svc,
)
from user_svc import schema as user_schema

Code = grpc.StatusCode
PUT = user_pb2.UserEvent.TYPE_PUT
DELETE = user_pb2.UserEvent.TYPE_DELETE
ORDER_PUT = order_pb2.OrderEvent.TYPE_PUT
PENDING = order_pb2.Order.STATE_PENDING
CANCELLED = order_pb2.Order.STATE_CANCELLED

READ_TIMEOUT = 5.0
"""How long a test waits for one response before it fails (rather than hangs)."""
FAST = FeedSettings(progress_seconds=0.2)

UserWatch = grpc.aio.UnaryStreamCall[user_pb2.WatchUsersRequest, user_pb2.WatchUsersResponse]


class _Event(Protocol):
    @property
    def revision(self) -> int: ...


class _Response(Protocol):
    @property
    def events(self) -> Sequence[_Event]: ...


M = TypeVar("M", bound=message.Message)
R = TypeVar("R", bound=_Response)


async def next_response(call: grpc.aio.UnaryStreamCall[Any, M], seconds: float = READ_TIMEOUT) -> M:
    """The stream's next response; raises the call's error when it ends with one."""
    async with asyncio.timeout(seconds):
        return await anext(aiter(call))


async def next_events(call: grpc.aio.UnaryStreamCall[Any, R], seconds: float = READ_TIMEOUT) -> R:
    """The next response that carries events (progress notifications are skipped)."""
    async with asyncio.timeout(seconds):
        while True:
            response = await anext(aiter(call))
            if response.events:
                return response


async def responses_until(
    call: grpc.aio.UnaryStreamCall[Any, R], revision: int, seconds: float = 2 * READ_TIMEOUT
) -> list[R]:
    """Responses with events, up to the one that holds `revision` (or a later one)."""
    found: list[R] = []
    async with asyncio.timeout(seconds):
        while not found or found[-1].events[-1].revision < revision:
            found.append(await next_events(call, seconds))
    return found


def revisions_of(responses: Sequence[_Response]) -> list[int]:
    return [e.revision for r in responses for e in r.events]


async def failure_at_the_end(call: grpc.aio.UnaryStreamCall[Any, R], seen: list[int]) -> Failure:
    """Reads the stream to its end, noting revisions; it must end with an error."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _read_all(call, seen)
    return failure_of(caught.value)


async def _read_all(call: grpc.aio.UnaryStreamCall[Any, R], seen: list[int]) -> None:
    async for response in call:
        seen.extend(e.revision for e in response.events)


@contextlib.asynccontextmanager
async def following(call: grpc.aio.UnaryStreamCall[Any, R], seen: list[int]) -> AsyncIterator[None]:
    """Reads the stream in the background, noting every event's revision in `seen`.

    Leaving cancels the call (a cancelled read cancels a grpc.aio call).
    """
    reader = asyncio.create_task(_read_all(call, seen))
    try:
        yield
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


def caught_up(seen: list[int], revision: int) -> Callable[[], bool]:
    return lambda: bool(seen) and seen[-1] >= revision


def watch_users(
    users: user_pb2_grpc.UserServiceAsyncStub,
    start_revision: int,
    *,
    progress_notify: bool = False,
    prev_user: bool = False,
) -> UserWatch:
    return users.WatchUsers(
        user_pb2.WatchUsersRequest(
            start_revision=start_revision, progress_notify=progress_notify, prev_user=prev_user
        )
    )


async def rename(
    users: user_pb2_grpc.UserServiceAsyncStub, user: user_pb2.User, display_name: str
) -> user_pb2.User:
    """A conditional update of the display name."""
    response = await users.UpdateUser(
        user_pb2.UpdateUserRequest(
            user=user_pb2.User(id=user.id, display_name=display_name, etag=user.etag)
        )
    )
    return response.user


async def place(
    orders: order_pb2_grpc.OrderServiceAsyncStub, user_id: str, sku: str = "TEA-1"
) -> order_pb2.Order:
    return (await orders.CreateOrder(order_request(user_id, item(sku)))).order


async def current_order_revision(orders: order_pb2_grpc.OrderServiceAsyncStub) -> int:
    return (await orders.ListOrders(order_pb2.ListOrdersRequest(page_size=1))).revision


async def wait_until(
    condition: Callable[[], object], seconds: float = READ_TIMEOUT, what: str = ""
) -> None:
    """Polls `condition()` until it is true."""
    give_up = time.monotonic() + seconds
    while True:
        if condition():
            return
        assert time.monotonic() < give_up, f"timed out waiting for {what or condition}"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def user_service(
    database_url: str, data_dir: pathlib.Path, feed: FeedSettings | None = None
) -> AsyncIterator[user_pb2_grpc.UserServiceAsyncStub]:
    async with (
        running_user_svc(database_url, data_dir, feed=feed) as running,
        channel_to(running.port) as channel,
    ):
        yield user_pb2_grpc.UserServiceStub(channel)


@contextlib.asynccontextmanager
async def services_with(
    databases: Databases, tmp_path: pathlib.Path, feed: FeedSettings
) -> AsyncIterator[Services]:
    """As the `services` fixture, with these feed settings on both services."""
    user_url, order_url = await databases.new_many(2)
    async with running_user_svc(user_url, tmp_path / "user_svc", feed=feed) as user_server:
        user_addr = f"127.0.0.1:{user_server.port}"
        async with (
            running_order_svc(order_url, tmp_path / "order_svc", user_addr, feed=feed) as orders,
            channel_to(user_server.port) as user_channel,
            channel_to(orders.port) as order_channel,
        ):
            yield Services(
                user_server=user_server,
                order_server=orders,
                user_database_url=user_url,
                order_database_url=order_url,
                user_channel=user_channel,
                order_channel=order_channel,
                users=user_pb2_grpc.UserServiceStub(user_channel),
                orders=order_pb2_grpc.OrderServiceStub(order_channel),
            )


@contextlib.asynccontextmanager
async def non_reading_channel(port: int) -> AsyncIterator[grpc.aio.Channel]:
    """A channel that takes no more than HTTP/2's initial windows from a stream not read."""
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{port}",
        options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)],
    )
    try:
        yield channel
    finally:
        await channel.close(None)


def spy_on_feeds(monkeypatch: pytest.MonkeyPatch) -> list[Feed]:
    """Servers started afterwards record their feeds here (to count their watchers)."""
    made: list[Feed] = []

    class RecordedFeed(Feed):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(shop_common.serving.startup, "Feed", RecordedFeed)
    return made


@dataclass
class Writes:
    """What concurrent writers were told: the etag of every write."""

    etags: list[int]

    @property
    def last(self) -> int:
        return max(self.etags)


async def write_users(
    users: user_pb2_grpc.UserServiceAsyncStub,
    count: int,
    writes: Writes,
    started: asyncio.Event | None = None,
    name_length: int = 20,
) -> None:
    """One user created, then renamed `count - 1` times."""
    user = await create_user(users, display_name="w" * name_length)
    writes.etags.append(int(user.etag))
    for n in range(1, count):
        user = await rename(users, user, f"{n:06d}".ljust(name_length, "x"))
        writes.etags.append(int(user.etag))
        if started is not None and n == 10:
            started.set()


# --- 1. every committed write is one revision, replayed in order ------------------------------


async def test_watch_from_revision_1_replays_exactly_the_committed_writes(
    services: Services,
) -> None:
    users = services.users
    ada = await create_user(users, display_name="Ada")
    bob_email = new_email()
    bob = await create_user(users, email=bob_email, display_name="Bob", request_id="bob-1")
    # Refused or replayed writes take no revision and leave nothing in the feed.
    assert await create_user(users, email=bob_email, display_name="Bob", request_id="bob-1") == bob
    await fails(
        users.CreateUser(user_pb2.CreateUserRequest(user=user_pb2.User(email=ada.email.upper()))),
        Code.ALREADY_EXISTS,
        "EMAIL_TAKEN",
    )
    ada2 = await rename(users, ada, "Ada L.")
    await fails(rename(users, ada, "stale"), Code.ABORTED, "ETAG_MISMATCH")
    await fails(
        users.DeleteUser(user_pb2.DeleteUserRequest(id=bob.id, etag=ada.etag)),
        Code.ABORTED,
        "ETAG_MISMATCH",
    )
    await users.DeleteUser(user_pb2.DeleteUserRequest(id=bob.id, etag=bob.etag))
    cy = await create_user(users, display_name="Cy")
    assert [u.etag for u in (ada, bob, ada2, cy)] == ["1", "2", "3", "5"]

    call = watch_users(users, 1)
    try:
        responses = await responses_until(call, 5)
        events = [e for r in responses for e in r.events]
        assert [(e.type, e.revision, e.user.id) for e in events] == [
            (PUT, 1, ada.id),
            (PUT, 2, bob.id),
            (PUT, 3, ada.id),
            (DELETE, 4, bob.id),
            (PUT, 5, cy.id),
        ]
        assert [events[n].user for n in (0, 1, 2, 4)] == [ada, bob, ada2, cy]
        for event in events:
            assert event.user.etag == str(event.revision)
            assert not event.HasField("prev_user")
        for response in responses:
            assert 5 >= response.header_revision >= response.events[-1].revision
            assert (response.compact_revision, response.progress_notify) == (0, False)
        # And the stream goes on live.
        dan = await create_user(users, display_name="Dan")
        live = await next_events(call)
        assert [(e.type, e.revision, e.user) for e in live.events] == [(PUT, 6, dan)]
        assert live.header_revision == 6
    finally:
        call.cancel()


# --- 2. from now ------------------------------------------------------------------------------


async def test_watch_from_revision_0_starts_after_the_earlier_writes(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    async with user_service(database_url, tmp_path, FAST) as users:
        for _ in range(2):
            await create_user(users)
        call = watch_users(users, 0, progress_notify=True)
        try:
            # The first bookmark says the watch is in place: nothing before it comes.
            first = await next_response(call)
            assert (first.progress_notify, list(first.events), first.header_revision) == (
                True,
                [],
                2,
            )
            later = await create_user(users)
            response = await next_events(call)
            assert [(e.revision, e.user) for e in response.events] == [(3, later)]
        finally:
            call.cancel()


async def test_watch_from_revision_0_on_a_replica_starts_after_the_other_replicas_writes(
    databases: Databases, tmp_path: pathlib.Path
) -> None:
    # Two replicas on one database: on SQLite nothing tells one of the other's commits.
    url = await databases.new()
    feed = FeedSettings(progress_seconds=0.2, poll_seconds=0.1)
    async with (
        user_service(url, tmp_path / "a", feed) as replica_a,
        user_service(url, tmp_path / "b", feed) as replica_b,
    ):
        for _ in range(3):
            await create_user(replica_b)
        # No notification needed, nor a poll: a watch reads the current revision first.
        call = watch_users(replica_a, 0, progress_notify=True)
        try:
            first = await next_response(call)
            assert first == user_pb2.WatchUsersResponse(progress_notify=True, header_revision=3)
            later = await create_user(replica_b)
            response = await next_events(call)
            assert [(e.revision, e.user) for e in response.events] == [(4, later)]
        finally:
            call.cancel()


# --- 3. list, then watch ----------------------------------------------------------------------


async def test_list_then_watch_from_the_listing_revision_plus_1(services: Services) -> None:
    users = services.users
    ada = await create_user(users)
    bob = await create_user(users)
    await rename(users, ada, "Ada L.")
    listing = await users.ListUsers(user_pb2.ListUsersRequest())
    assert listing.revision == 3
    assert [u.id for u in listing.users] == [ada.id, bob.id]
    cy = await create_user(users)
    await users.DeleteUser(user_pb2.DeleteUserRequest(id=bob.id))

    call = watch_users(users, listing.revision + 1)
    try:
        responses = await responses_until(call, 5)
        events = [e for r in responses for e in r.events]
        assert [(e.type, e.revision, e.user.id) for e in events] == [
            (PUT, 4, cy.id),
            (DELETE, 5, bob.id),
        ]
        marker = await create_user(users)
        assert [e.user for e in (await next_events(call)).events] == [marker]
    finally:
        call.cancel()


# --- 4. history hands over to the live tail -------------------------------------------------


@pytest.mark.parametrize(
    "feed",
    [
        pytest.param(FeedSettings(), id="from-memory"),
        pytest.param(FeedSettings(memory_revisions=4), id="from-database"),
    ],
)
async def test_replay_hands_over_to_the_live_tail_without_gap_or_duplicate(
    database_url: str, tmp_path: pathlib.Path, feed: FeedSettings
) -> None:
    async with user_service(database_url, tmp_path, feed) as users:
        writes = Writes([])
        started = asyncio.Event()
        writers = [
            asyncio.create_task(write_users(users, 100, writes, started if n == 0 else None))
            for n in range(3)
        ]
        seen: list[int] = []
        try:
            async with asyncio.timeout(4 * READ_TIMEOUT):
                await started.wait()  # the watch starts behind, while writes go on
                async with following(watch_users(users, 1), seen):
                    await asyncio.gather(*writers)
                    marker = await create_user(users)  # the last revision, written after all
                    await wait_until(caught_up(seen, int(marker.etag)), 10)
        finally:
            for writer in writers:
                writer.cancel()
        last = int(marker.etag)
        assert last == writes.last + 1 == 301
        assert seen == list(range(1, last + 1))


# --- 5. one revision, one response ---------------------------------------------------------


async def test_cancelling_a_deleted_users_orders_is_one_revision_in_one_response(
    services: Services,
) -> None:
    gone = await create_user(services.users)
    kept = await create_user(services.users)
    open_orders = [await place(services.orders, gone.id, f"SKU-{n}") for n in range(3)]
    closed = await place(services.orders, gone.id, "SKU-closed")
    await services.orders.CancelOrder(order_pb2.CancelOrderRequest(id=closed.id))
    other = await place(services.orders, kept.id)
    start = await current_order_revision(services.orders) + 1

    call = services.orders.WatchOrders(
        order_pb2.WatchOrdersRequest(start_revision=start, prev_order=True)
    )
    try:
        # The order service learns of the deletion through the user feed, asynchronously.
        await wait_until_following_users(services.order_channel)
        await services.users.DeleteUser(user_pb2.DeleteUserRequest(id=gone.id))
        response = await next_events(call)
        assert len(response.events) == 3, response
        assert {e.revision for e in response.events} == {start}
        assert sorted(e.order.id for e in response.events) == sorted(o.id for o in open_orders)
        for event in response.events:
            assert event.type == ORDER_PUT
            assert (event.order.state, event.order.etag) == (CANCELLED, str(start))
            assert event.prev_order.state == PENDING
            assert event.prev_order in open_orders
        fetched = await services.orders.GetOrder(order_pb2.GetOrderRequest(id=other.id))
        assert fetched.order == other
        # Nothing else was written: the next order is the next revision.
        again = await place(services.orders, kept.id)
        assert [(e.revision, e.order) for e in (await next_events(call)).events] == [
            (start + 1, again)
        ]
    finally:
        call.cancel()


async def wait_until_following_users(order_channel: grpc.aio.Channel) -> None:
    """Until order_svc says its view of users is current (a health status of its own)."""
    health = health_pb2_grpc.HealthStub(order_channel)
    request = health_pb2.HealthCheckRequest(service=USER_FEED_HEALTH)
    give_up = time.monotonic() + 3.0  # it lists and watches within moments of starting
    while (await health.Check(request)).status != health_pb2.HealthCheckResponse.SERVING:
        assert time.monotonic() < give_up, "order_svc does not follow the user feed"
        await asyncio.sleep(0.02)


async def test_a_revision_larger_than_a_grpc_message_arrives_in_fragments(
    services: Services,
) -> None:
    gone = await create_user(services.users)
    items = [item(f"{'S' * 60}-{n:03d}") for n in range(100)]  # as many as an order may hold
    placed: list[order_pb2.Order] = []
    for _ in range(15):
        batch = [services.orders.CreateOrder(order_request(gone.id, *items)) for _ in range(20)]
        placed.extend(r.order for r in await asyncio.gather(*batch))
    start = await current_order_revision(services.orders) + 1
    call = services.orders.WatchOrders(
        order_pb2.WatchOrdersRequest(start_revision=start, prev_order=True)
    )
    try:
        await wait_until_following_users(services.order_channel)
        await services.users.DeleteUser(user_pb2.DeleteUserRequest(id=gone.id))
        # 300 cancellations, each with the order before: about 5 MB in one revision, more
        # than gRPC's 4 MiB message.
        responses: list[order_pb2.WatchOrdersResponse] = []
        async with asyncio.timeout(2 * READ_TIMEOUT):
            while not responses or responses[-1].fragment:
                responses.append(await next_events(call))
        marker = await place(services.orders, (await create_user(services.users)).id)
        after = await next_events(call)
    finally:
        call.cancel()
    assert len(responses) > 1
    assert [r.fragment for r in responses] == [True] * (len(responses) - 1) + [False]
    events = [e for r in responses for e in r.events]
    assert {e.revision for e in events} == {start}
    assert sorted(e.order.id for e in events) == sorted(o.id for o in placed)
    assert {e.order.state for e in events} == {CANCELLED}
    assert [e.prev_order for e in events] == sorted(placed, key=lambda o: o.id)
    # The stream goes on whole after the fragments.
    assert [(e.revision, e.order) for e in after.events] == [(start + 1, marker)]
    assert not after.fragment


# --- 6. previous values ------------------------------------------------------------------


async def test_prev_user_only_when_asked_and_the_last_value_on_delete(services: Services) -> None:
    users = services.users
    created = await create_user(users, display_name="Ada")
    renamed = await rename(users, created, "Ada L.")
    await users.DeleteUser(user_pb2.DeleteUserRequest(id=renamed.id, etag=renamed.etag))

    with_prev = watch_users(users, 1, prev_user=True)
    without = watch_users(users, 1)
    try:
        plain = [e for r in await responses_until(without, 3) for e in r.events]
        assert not any(e.HasField("prev_user") for e in plain)
        put, update, delete = [e for r in await responses_until(with_prev, 3) for e in r.events]
    finally:
        with_prev.cancel()
        without.cancel()

    assert (put.type, put.user, put.HasField("prev_user")) == (PUT, created, False)
    assert (update.type, update.user, update.prev_user) == (PUT, renamed, created)
    assert plain[:2] == [
        user_pb2.UserEvent(type=PUT, user=created, revision=1),
        user_pb2.UserEvent(type=PUT, user=renamed, revision=2),
    ]
    # On delete: the last value under the deletion's revision, and the last value as it was.
    last_value = user_pb2.User()
    last_value.CopyFrom(renamed)
    last_value.etag = "3"
    assert (delete.type, delete.revision, delete.user, delete.prev_user) == (
        DELETE,
        3,
        last_value,
        renamed,
    )
    assert plain[2] == user_pb2.UserEvent(type=DELETE, user=last_value, revision=3)


# --- 7. one user's orders -----------------------------------------------------------------


async def test_watch_orders_of_one_user_with_bookmarks(
    databases: Databases, tmp_path: pathlib.Path
) -> None:
    async with services_with(databases, tmp_path, FAST) as services:
        ada = await create_user(services.users)
        bob = await create_user(services.users)
        a1 = await place(services.orders, ada.id)
        b1 = await place(services.orders, bob.id)
        a2 = await place(services.orders, ada.id)
        a1_cancelled = (
            await services.orders.CancelOrder(order_pb2.CancelOrderRequest(id=a1.id))
        ).order
        await services.orders.CancelOrder(order_pb2.CancelOrderRequest(id=b1.id))
        newest = await current_order_revision(services.orders)
        assert newest == 5

        call = services.orders.WatchOrders(
            order_pb2.WatchOrdersRequest(start_revision=1, user_id=ada.id, progress_notify=True)
        )
        try:
            responses = await responses_until(call, 4)
            assert [(e.revision, e.order) for r in responses for e in r.events] == [
                (1, a1),
                (3, a2),
                (4, a1_cancelled),
            ]
            # Idle (bob's cancellation is filtered out): bookmarks at the newest revision.
            for _ in range(2):
                bookmark = await next_response(call)
                assert bookmark.progress_notify
                assert (list(bookmark.events), bookmark.header_revision) == ([], newest)
            b2 = await place(services.orders, bob.id)
            a3 = await place(services.orders, ada.id)
            response = await next_events(call)
            assert [(e.revision, e.order) for e in response.events] == [(7, a3)]
            assert int(b2.etag) == 6
        finally:
            call.cancel()


async def test_invalid_watch_requests_are_invalid_argument(services: Services) -> None:
    for user_id in ("not-an-id", "01A21966-E263-7607-918A-D4D32F874249"):
        call = services.orders.WatchOrders(order_pb2.WatchOrdersRequest(user_id=user_id))
        found = await fails(next_response(call), Code.INVALID_ARGUMENT, "INVALID_ARGUMENT")
        assert found.violations == [("user_id", "INVALID_ID")]
    user_call = watch_users(services.users, -1)
    found = await fails(next_response(user_call), Code.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert found.violations == [("start_revision", "OUT_OF_RANGE")]
    order_call = services.orders.WatchOrders(order_pb2.WatchOrdersRequest(start_revision=-1))
    found = await fails(next_response(order_call), Code.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert found.violations == [("start_revision", "OUT_OF_RANGE")]


# --- 8. progress notifications -----------------------------------------------------------


async def test_idle_stream_gets_bookmarks_only_when_it_asked(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    async with user_service(database_url, tmp_path, FAST) as users:
        await create_user(users)
        await create_user(users)
        notified = watch_users(users, 0, progress_notify=True)
        silent = watch_users(users, 1)
        try:
            replayed = await responses_until(silent, 2)
            assert revisions_of(replayed) == [1, 2]
            for _ in range(3):
                bookmark = await next_response(notified)
                assert bookmark == user_pb2.WatchUsersResponse(
                    progress_notify=True, header_revision=2
                )
            waiting = asyncio.create_task(next_response(silent))
            await asyncio.sleep(1.0)  # five progress periods
            assert not waiting.done()
            created = await create_user(users)
            response = await waiting
            assert [e.user for e in response.events] == [created]
            assert (response.progress_notify, response.header_revision) == (False, 3)
            change = await next_events(notified)
            assert ([e.user for e in change.events], change.progress_notify) == ([created], False)
            assert (await next_response(notified)).header_revision == 3
        finally:
            notified.cancel()
            silent.cancel()


# --- 9. compaction -------------------------------------------------------------------------


async def compact_users(database_url: str) -> int:
    """Compacts the user changelog as the service would, with everything past retention."""
    db = Database(database_url)
    try:
        before_us = int(time.time() * 1e6 + 1e6)
        changelog = Changelog(user_schema.changelog)
        return await db.write(lambda conn: changelog.compact(conn, before_us=before_us))
    finally:
        await db.close()


async def test_watch_below_the_compaction_point_is_out_of_range(services: Services) -> None:
    users = services.users
    created = [await create_user(users) for _ in range(4)]
    newest = await rename(users, created[0], "renamed")
    assert newest.etag == "5"
    point = await compact_users(services.user_database_url)
    assert point == 4  # the newest revision is never compacted
    assert await compact_users(services.user_database_url) == 4

    for start in (1, point):
        call = watch_users(users, start)
        response = await next_response(call)
        assert response == user_pb2.WatchUsersResponse(compact_revision=point, header_revision=5)
        found = await fails(next_response(call), Code.OUT_OF_RANGE, "REVISION_COMPACTED")
        assert found.metadata == {"compact_revision": str(point)}

    call = watch_users(users, point + 1)
    try:
        first = await next_events(call)
        assert [(e.revision, e.user) for e in first.events] == [(5, newest)]
        assert first.compact_revision == 0
        later = await create_user(users)
        assert [e.user for e in (await next_events(call)).events] == [later]
    finally:
        call.cancel()


# --- 10. a watcher that does not read ------------------------------------------------------


async def test_watcher_that_does_not_read_is_cut_off_and_forgotten(
    database_url: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = spy_on_feeds(monkeypatch)
    settings = FeedSettings(buffer_revisions=100)
    async with (
        running_user_svc(database_url, tmp_path, feed=settings) as running,
        channel_to(running.port) as channel,
        # The slow client's own connection, whose transport does not read ahead: with BDP
        # probing (on by default) gRPC would take megabytes into its buffers unasked.
        non_reading_channel(running.port) as slow_channel,
    ):
        [feed] = feeds
        users = user_pb2_grpc.UserServiceStub(channel)
        await create_user(users)
        slow = watch_users(user_pb2_grpc.UserServiceStub(slow_channel), 1, prev_user=True)
        fast = watch_users(users, 1, prev_user=True)
        seen: list[int] = []
        slow_seen: list[int] = []
        try:
            await wait_until(lambda: feed.watcher_count == 2, what="both watches")
            writes = Writes([1])
            async with following(fast, seen):
                await write_users(users, 400, writes, name_length=200)
                await wait_until(caught_up(seen, writes.last), 10, "the fast one")
                # The server let go of the slow watcher; the fast one goes on.
                await wait_until(lambda: feed.watcher_count == 1, what="the slow one forgotten")
                marker = await create_user(users)
                await wait_until(caught_up(seen, int(marker.etag)), what="the marker")
            assert seen == list(range(1, int(marker.etag) + 1))
            async with asyncio.timeout(2 * READ_TIMEOUT):
                found = await failure_at_the_end(slow, slow_seen)
        finally:
            slow.cancel()
            fast.cancel()
        assert (found.code, found.reason, found.domain) == (
            Code.RESOURCE_EXHAUSTED,
            "WATCH_TOO_SLOW",
            DOMAIN,
        ), found
        assert found.metadata == {"buffer_revisions": "100"}
        # What it got before the cut-off is a gap-free prefix.
        assert slow_seen == list(range(1, len(slow_seen) + 1))
        assert len(slow_seen) < writes.last


# --- 11. shutdown ------------------------------------------------------------------------


async def test_open_watches_end_unavailable_when_the_server_stops(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    settings = ServiceSettings(
        listen="127.0.0.1:0",
        database_url=database_url,
        common=common_settings(tmp_path, feed=FAST),
    )
    running = await user_svc.app.start(settings)
    stopping: asyncio.Task[None] | None = None
    try:
        async with channel_to(running.port) as channel:
            users = user_pb2_grpc.UserServiceStub(channel)
            created = await create_user(users)
            live = watch_users(users, 1)
            idle = watch_users(users, 0, progress_notify=True)
            assert [e.user for e in (await next_events(live)).events] == [created]
            assert (await next_response(idle)).progress_notify
            stopping = asyncio.create_task(running.stop(grace=1))
            async with asyncio.timeout(READ_TIMEOUT):
                for call in (live, idle):
                    found = await failure_at_the_end(call, [])
                    assert (found.code, found.reason, found.domain) == (
                        Code.UNAVAILABLE,
                        "SHUTTING_DOWN",
                        DOMAIN,
                    ), found
                await stopping
    finally:
        if stopping is None:
            await running.stop(grace=0)
        elif not stopping.done():
            await stopping


async def test_server_stops_when_a_commit_wakes_the_feed_as_it_stops(
    database_url: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = spy_on_feeds(monkeypatch)
    settings = ServiceSettings(
        listen="127.0.0.1:0", database_url=database_url, common=common_settings(tmp_path)
    )
    running = await user_svc.app.start(settings)
    [feed] = feeds
    feed.wake()  # a commit of this replica (or another's NOTIFY) just as the server stops
    stopping = asyncio.create_task(running.stop(grace=0))
    try:
        async with asyncio.timeout(3):  # a stop takes well under a second
            await asyncio.shield(stopping)
    finally:
        await _unstick(stopping)


async def _unstick(stopping: asyncio.Task[None]) -> None:
    """Cancels the feed's tail again until the stop it holds up is done (test clean-up)."""
    for _ in range(20):
        if stopping.done():
            break
        for task in asyncio.all_tasks():
            if task.get_name() == "feed-tail":
                task.cancel()
        await asyncio.wait({stopping}, timeout=0.5)
    await stopping


# --- 12. replicas on one database ------------------------------------------------------------


async def test_replicas_on_one_database_deliver_every_revision_once_in_order(
    databases: Databases, tmp_path: pathlib.Path
) -> None:
    if not databases.is_postgres:
        pytest.skip("replicas share a PostgreSQL database")
    url = await databases.new()
    async with (
        user_service(url, tmp_path / "a") as replica_a,
        user_service(url, tmp_path / "b") as replica_b,
    ):
        seen_a: list[int] = []
        seen_b: list[int] = []
        writes = Writes([])
        async with (
            asyncio.timeout(6 * READ_TIMEOUT),
            following(watch_users(replica_a, 1), seen_a),
            following(watch_users(replica_b, 1), seen_b),
        ):
            replicas = [replica_a, replica_b]
            await asyncio.gather(*(write_users(replicas[n % 2], 50, writes) for n in range(8)))
            last = writes.last
            for seen in (seen_a, seen_b):
                await wait_until(caught_up(seen, last), 15)
        assert last == 400
        assert sorted(writes.etags) == list(range(1, last + 1))
        assert seen_a == seen_b == list(range(1, last + 1))


# --- 13. a client that leaves ---------------------------------------------------------------


async def test_cancelled_watch_is_forgotten_and_the_server_stops_cleanly(
    database_url: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    feeds = spy_on_feeds(monkeypatch)
    caplog.set_level(logging.WARNING)
    settings = ServiceSettings(
        listen="127.0.0.1:0", database_url=database_url, common=common_settings(tmp_path)
    )
    running = await user_svc.app.start(settings)
    stopped = False
    try:
        [feed] = feeds
        async with channel_to(running.port) as channel:
            users = user_pb2_grpc.UserServiceStub(channel)
            for _ in range(3):
                await create_user(users)
            live = watch_users(users, 1)
            replaying = watch_users(users, 1)  # left before it read anything
            await responses_until(live, 3)
            await wait_until(lambda: feed.watcher_count == 2, what="both watches")
            live.cancel()
            replaying.cancel()
            await wait_until(lambda: feed.watcher_count == 0, what="both watches forgotten")
            later = await create_user(users)  # offered to nobody
            assert later.etag == "4"
            await asyncio.sleep(0.1)
        async with asyncio.timeout(READ_TIMEOUT):
            await running.stop(grace=1)
        stopped = True
    finally:
        if not stopped:
            await running.stop(grace=0)
    assert feed.watcher_count == 0
    problems = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.getMessage() != DEVELOPMENT_WARNING
    ]
    assert problems == [], [r.getMessage() for r in problems]
