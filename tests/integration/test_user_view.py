"""The order service's view of users, fed by user_svc's WatchUsers stream.

It follows creates, updates and deletes; orders for users it knows are taken while
user_svc is down; users it has not seen yet are checked directly; deleting a user
cancels that user's open orders exactly once; it catches up after user_svc restarts,
lists again after compaction, and publishes how current it is as a health status of its
own without touching the service's liveness.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import pathlib
import socket
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import psycopg
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import Connection

import order_svc.user_feed
import user_svc.schema
from order_svc import schema
from order_svc.domain import LineItem, Money, Order, State, new_order
from order_svc.ownership import Ownership
from order_svc.store import OrderRows, order_table
from order_svc.user_feed import HEALTH_NAME
from order_svc.user_view import KnownUser, UserChange, UserView
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.domain import new_id, utc_now
from shop_common.feed import FeedSettings
from shop_common.storage import (
    Changelog,
    Database,
    IdempotencyStore,
    ResourceTable,
    Transaction,
    UnitOfWork,
    migrate,
)
from shop_common.storage.database import WRITER_LOCK_KEY
from tests import support
from tests.integration.helpers import (
    all_orders,
    bearer,
    create_user,
    fails,
    failure_of,
    known_to_orders,
    order_request,
)
from tests.support import (
    POSTGRES_SKIP_REASON,
    Databases,
    PostgresDatabases,
    Services,
    channel_to,
    postgres_admin_url,
    running_order_svc,
    running_user_svc,
)

Code = grpc.StatusCode
PENDING = order_pb2.Order.STATE_PENDING
CANCELLED = order_pb2.Order.STATE_CANCELLED
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
ORDER_SERVICE = "shop.order.v1.OrderService"
FEED_LOGGER = "order_svc.user_feed"

# Bookmarks often, so that an idle follower soon hears it is current.
QUICK_FEED = FeedSettings(progress_seconds=0.1, poll_seconds=0.2)
WAIT = 10.0
"""How long `eventually` waits at most: a bound for slow machines, not the expected time."""


async def eventually(predicate: Callable[[], Awaitable[bool]], within: float = WAIT) -> None:
    await support.eventually(predicate, within)


def free_port() -> int:
    """A port nobody listens on now, for a server that must come back on the same address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- reading both sides ------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """The order service's view of users, read from its database."""

    live: dict[str, int]
    """id → user service revision of the user's last change."""
    deleted: dict[str, int]
    revision: int | None


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[Database]:
    db = Database(url)
    try:
        yield db
    finally:
        await db.close()


@dataclass(frozen=True)
class ViewParts:
    """The order service's unit of work, order table and view of users over one database."""

    uow: UnitOfWork
    orders: ResourceTable[Order]
    view: UserView


def view_parts(db: Database) -> ViewParts:
    changelog = Changelog(schema.changelog)
    uow = UnitOfWork(db, changelog, IdempotencyStore(schema.idempotency_keys))
    orders = order_table(changelog)
    return ViewParts(uow, orders, UserView(uow, orders, utc_now))


async def place_learned(parts: ViewParts, user_id: str, revision: int) -> Order:
    """An order for a user its unit learned of (from the user service, at `revision`)."""
    draft = new_order(new_id(), user_id, [LineItem("SKU-1", 1, Money("EUR", 1))], utc_now())

    def place(tx: Transaction) -> Order:
        parts.view.learn(tx, user_id, revision)
        return parts.orders.insert(tx, draft)

    return await parts.uow.write(place)


async def listed(view: UserView, users: list[UserChange], revision: int) -> list[Order]:
    """A whole listing of `users` taken at `revision`, in one page; the orders it cancelled."""
    await view.list_page(users, revision)
    return await view.end_listing(revision)


async def read_view(db: Database) -> View:
    users, state = schema.known_users, schema.user_view_state

    def work(conn: Connection) -> View:
        rows = conn.execute(sa.select(users.c.id, users.c.revision, users.c.deleted)).all()
        revision = conn.execute(sa.select(state.c.revision).where(state.c.id == 1)).scalar()
        return View(
            live={r.id: r.revision for r in rows if not r.deleted},
            deleted={r.id: r.revision for r in rows if r.deleted},
            revision=revision,
        )

    return await db.read(work)


async def user_table(users: user_pb2_grpc.UserServiceAsyncStub) -> tuple[dict[str, int], int]:
    """Every user (id → revision, its etag) and the revision of that snapshot."""
    page = await users.ListUsers(user_pb2.ListUsersRequest(page_size=1000), timeout=5)
    assert not page.next_page_token
    return {u.id: int(u.etag) for u in page.users}, page.revision


async def view_matches(db: Database, users: user_pb2_grpc.UserServiceAsyncStub) -> bool:
    """Whether the view holds exactly the users of the user table, at its revision."""
    table, revision = await user_table(users)
    view = await read_view(db)
    assert (view.live, view.revision) == (table, revision)
    return True


async def wait_until_view_matches(
    db: Database, users: user_pb2_grpc.UserServiceAsyncStub, within: float = WAIT
) -> View:
    await eventually(functools.partial(view_matches, db, users), within)
    return await read_view(db)


async def wait_until_view_knows(db: Database, *user_ids: str) -> None:
    async def view_knows_them() -> bool:
        view = await read_view(db)
        return all(u in view.live for u in user_ids)

    await eventually(view_knows_them)


async def order_state(orders: order_pb2_grpc.OrderServiceAsyncStub, order_id: str) -> int:
    state: int = (await orders.GetOrder(order_pb2.GetOrderRequest(id=order_id))).order.state
    return state


async def wait_until_cancelled(
    orders: order_pb2_grpc.OrderServiceAsyncStub, *order_ids: str
) -> None:
    async def all_cancelled() -> bool:
        return all([await order_state(orders, o) == CANCELLED for o in order_ids])

    await eventually(all_cancelled)


async def delete_user(users: user_pb2_grpc.UserServiceAsyncStub, user_id: str) -> None:
    await users.DeleteUser(user_pb2.DeleteUserRequest(id=user_id))


async def rename(users: user_pb2_grpc.UserServiceAsyncStub, user_id: str, name: str) -> int:
    request = user_pb2.UpdateUserRequest(user=user_pb2.User(id=user_id, display_name=name))
    return int((await users.UpdateUser(request)).user.etag)


async def place(orders: order_pb2_grpc.OrderServiceAsyncStub, user_id: str) -> order_pb2.Order:
    return (await orders.CreateOrder(order_request(user_id), timeout=10)).order


async def holds(predicate: Callable[[], Awaitable[bool]]) -> bool:
    """Whether `predicate` comes to hold (for set-up steps of tests expected to fail)."""
    try:
        await eventually(predicate)
    except AssertionError:
        return False
    return True


async def compact_user_history(user_url: str) -> int:
    """Compacts user_svc's history up to its newest revision (which always stays)."""
    log = Changelog(user_svc.schema.changelog)
    before_us = int(time.time() * 1_000_000) + 1_000_000
    async with opened(user_url) as db:
        return await db.write(lambda conn: log.compact(conn, before_us=before_us))


# -- servers the tests stop and start ------------------------------------------------------


class UserSvc:
    """user_svc on an address of its own, so that it can stop and come back there."""

    def __init__(self, database_url: str, data_dir: pathlib.Path) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.addr = f"127.0.0.1:{free_port()}"
        self._stack: contextlib.AsyncExitStack | None = None
        self._users: user_pb2_grpc.UserServiceAsyncStub | None = None

    @property
    def users(self) -> user_pb2_grpc.UserServiceAsyncStub:
        assert self._users is not None, "user_svc is stopped"
        return self._users

    async def start(self) -> None:
        assert self._stack is None
        stack = contextlib.AsyncExitStack()
        try:
            server = await stack.enter_async_context(
                running_user_svc(
                    self.database_url, self.data_dir, feed=QUICK_FEED, listen=self.addr
                )
            )
            channel = await stack.enter_async_context(channel_to(server.port))
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self._users = user_pb2_grpc.UserServiceStub(channel)

    async def stop(self) -> None:
        stack, self._stack, self._users = self._stack, None, None
        if stack is not None:
            await stack.aclose()


@contextlib.asynccontextmanager
async def user_svc_at_its_own_port(
    database_url: str, data_dir: pathlib.Path
) -> AsyncIterator[UserSvc]:
    server = UserSvc(database_url, data_dir)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class OrderSvc:
    channel: grpc.aio.Channel
    orders: order_pb2_grpc.OrderServiceAsyncStub


@contextlib.asynccontextmanager
async def order_svc_in_front_of(
    database_url: str, data_dir: pathlib.Path, user_addr: str
) -> AsyncIterator[OrderSvc]:
    async with (
        running_order_svc(database_url, data_dir, user_addr, feed=QUICK_FEED) as server,
        channel_to(server.port) as channel,
    ):
        yield OrderSvc(channel, order_pb2_grpc.OrderServiceStub(channel))


# -- the tests -----------------------------------------------------------------------------


async def test_view_follows_creates_updates_and_deletes(services: Services) -> None:
    created = [await create_user(services.users) for _ in range(5)]
    renamed = await rename(services.users, created[0].id, "Grace Hopper")
    await delete_user(services.users, created[1].id)
    await delete_user(services.users, created[2].id)
    later = await create_user(services.users)
    async with opened(services.order_database_url) as db:
        view = await wait_until_view_matches(db, services.users)
    assert set(view.live) == {created[0].id, created[3].id, created[4].id, later.id}
    assert view.live[created[0].id] == renamed
    assert view.live[later.id] == int(later.etag)
    assert set(view.deleted) == {created[1].id, created[2].id}
    # A deleted user carries the revision of the deletion: after its creation, before `later`.
    for gone in created[1:3]:
        assert int(gone.etag) < view.deleted[gone.id] < int(later.etag)


async def test_known_user_orders_while_user_svc_is_down_unknown_user_is_unavailable(
    databases: Databases, tmp_path: pathlib.Path
) -> None:
    user_url, order_url = await databases.new_many(2)
    async with (
        user_svc_at_its_own_port(user_url, tmp_path / "user_svc") as users,
        order_svc_in_front_of(order_url, tmp_path / "order_svc", users.addr) as svc,
        opened(order_url) as db,
    ):
        known = await create_user(users.users)
        await wait_until_view_knows(db, known.id)
        await users.stop()

        order = await place(svc.orders, known.id)
        assert (order.user_id, order.state) == (known.id, PENDING)
        await fails(
            svc.orders.CreateOrder(order_request(new_id()), timeout=10),
            Code.UNAVAILABLE,
            "USER_SERVICE_UNAVAILABLE",
        )
        assert [o.id for o in await all_orders(svc.orders)] == [order.id]

        # Back on the same address: once order_svc has reconnected, newcomers order again.
        await users.start()
        newcomer = await create_user(users.users)
        await wait_until_view_knows(db, newcomer.id)
        assert (await place(svc.orders, newcomer.id)).state == PENDING
        assert len(await all_orders(svc.orders)) == 2


async def test_user_created_a_moment_ago_can_order_at_once(services: Services) -> None:
    for _ in range(20):
        user = await create_user(services.users)
        order = await place(services.orders, user.id)
        assert (order.user_id, order.state) == (user.id, PENDING)
    assert len(await all_orders(services.orders)) == 20


async def test_deleted_user_cannot_order(services: Services) -> None:
    known = [await create_user(services.users) for _ in range(3)]
    async with opened(services.order_database_url) as db:
        await wait_until_view_knows(db, *(u.id for u in known))
        # Right after the delete: refused (by the view, or by asking user_svc about a user
        # the view has not seen yet), or, while the view still holds the user as live,
        # taken and then cancelled together with the deletion.
        taken: list[str] = []
        fresh = [await create_user(services.users) for _ in range(3)]
        for user in [*known, *fresh]:
            await delete_user(services.users, user.id)
            try:
                taken.append((await place(services.orders, user.id)).id)
            except grpc.aio.AioRpcError as error:
                found = failure_of(error)
                assert (found.code, found.reason) == (Code.FAILED_PRECONDITION, "USER_NOT_FOUND")
        view = await wait_until_view_matches(db, services.users)
        assert {u.id for u in [*known, *fresh]} <= set(view.deleted)
    await wait_until_cancelled(services.orders, *taken)

    # Once the view has the deletion, it refuses the order itself.
    for user in [*known, *fresh]:
        found = await fails(
            services.orders.CreateOrder(order_request(user.id)),
            Code.FAILED_PRECONDITION,
            "USER_NOT_FOUND",
        )
        assert "was deleted" in found.message
        assert found.metadata == {"user_id": user.id}
    assert {o.id for o in await all_orders(services.orders)} == set(taken)


async def test_deleting_a_user_cancels_open_orders_exactly_once(services: Services) -> None:
    doomed = await create_user(services.users)
    other = await create_user(services.users)
    open_orders = [await place(services.orders, doomed.id) for _ in range(2)]
    closed = await place(services.orders, doomed.id)
    closed = (await services.orders.CancelOrder(order_pb2.CancelOrderRequest(id=closed.id))).order
    bystander = await place(services.orders, other.id)
    before = (await services.orders.ListOrders(order_pb2.ListOrdersRequest(page_size=1))).revision

    events: list[order_pb2.OrderEvent] = []
    watch = services.orders.WatchOrders(order_pb2.WatchOrdersRequest(start_revision=before + 1))

    async def read_watch() -> None:
        async for response in watch:
            events.extend(response.events)

    reader = asyncio.create_task(read_watch())
    try:
        await delete_user(services.users, doomed.id)
        await wait_until_cancelled(services.orders, *(o.id for o in open_orders))
        # Everything committed up to this order's revision reaches the watch before it.
        sentinel = await place(services.orders, other.id)

        async def sentinel_seen() -> bool:
            return any(e.order.id == sentinel.id for e in events)

        await eventually(sentinel_seen)
    finally:
        watch.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader

    seen = [(e.order.id, e.type, e.order.state) for e in events]
    put = order_pb2.OrderEvent.TYPE_PUT
    assert sorted(seen) == sorted(
        [(o.id, put, CANCELLED) for o in open_orders] + [(sentinel.id, put, PENDING)]
    )
    cancellations = [e for e in events if e.order.id != sentinel.id]
    assert len({e.revision for e in cancellations}) == 1  # one transaction
    for order in open_orders:
        current = (await services.orders.GetOrder(order_pb2.GetOrderRequest(id=order.id))).order
        assert current.state == CANCELLED
        assert current.etag == str(cancellations[0].revision)
    # Untouched: the order that was cancelled already, and the other user's order.
    assert (await services.orders.GetOrder(order_pb2.GetOrderRequest(id=closed.id))).order == closed
    assert (
        await services.orders.GetOrder(order_pb2.GetOrderRequest(id=bystander.id))
    ).order == bystander


async def test_view_catches_up_after_user_svc_restarts(
    databases: Databases, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=FEED_LOGGER)
    user_url, order_url = await databases.new_many(2)
    async with (
        user_svc_at_its_own_port(user_url, tmp_path / "user_svc") as users,
        order_svc_in_front_of(order_url, tmp_path / "order_svc", users.addr) as svc,
        opened(order_url) as db,
    ):
        first = [await create_user(users.users) for _ in range(4)]
        await wait_until_view_matches(db, users.users)
        caplog.clear()

        await users.stop()
        await users.start()
        later = [await create_user(users.users) for _ in range(4)]
        await rename(users.users, first[0].id, "Renamed")
        await delete_user(users.users, first[1].id)
        await delete_user(users.users, later[0].id)
        view = await wait_until_view_matches(db, users.users)
        assert set(view.deleted) == {first[1].id, later[0].id}
        # It resumed from its revision: no listing again.
        assert not [r for r in caplog.records if "listed" in r.getMessage()]
        order = await place(svc.orders, later[1].id)
        assert order.state == PENDING


async def test_view_lists_again_after_history_it_missed_was_compacted(
    databases: Databases,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger=FEED_LOGGER)
    monkeypatch.setattr(order_svc.user_feed, "LIST_PAGE_SIZE", 3)  # listings of two pages
    user_url, order_url = await databases.new_many(2)
    order_dir = tmp_path / "order_svc"
    async with running_user_svc(user_url, tmp_path / "user_svc", feed=QUICK_FEED) as server:
        user_addr = f"127.0.0.1:{server.port}"
        async with channel_to(server.port) as channel, opened(order_url) as db:
            users = user_pb2_grpc.UserServiceStub(channel)
            kept, doomed, bystander, renamed = [await create_user(users) for _ in range(4)]
            async with order_svc_in_front_of(order_url, order_dir, user_addr) as svc:
                await wait_until_view_matches(db, users)
                doomed_order = await place(svc.orders, doomed.id)
                bystander_order = await place(svc.orders, bystander.id)
                synced = await read_view(db)
            assert synced.revision is not None

            # While order_svc is away: users come and go, and that history is compacted.
            newcomer = await create_user(users)
            fleeting = await create_user(users)
            await delete_user(users, fleeting.id)
            await delete_user(users, doomed.id)
            await rename(users, renamed.id, "Renamed")
            compacted = await compact_user_history(user_url)
            assert compacted > synced.revision

            caplog.clear()
            async with order_svc_in_front_of(order_url, order_dir, user_addr) as svc:
                view = await wait_until_view_matches(db, users)
                assert set(view.live) == {kept.id, bystander.id, renamed.id, newcomer.id}
                assert doomed.id in view.deleted
                assert fleeting.id not in view.live
                assert await order_state(svc.orders, doomed_order.id) == CANCELLED
                assert await order_state(svc.orders, bystander_order.id) == PENDING
                messages = [r.getMessage() for r in caplog.records]
                assert any("is compacted" in m and "listing again" in m for m in messages)
                assert any(
                    "listed 4 users" in m and "cancelled 1 open order" in m for m in messages
                )
                # Ordering for either deleted user is refused.
                for gone in (doomed, fleeting):
                    await fails(
                        svc.orders.CreateOrder(order_request(gone.id)),
                        Code.FAILED_PRECONDITION,
                        "USER_NOT_FOUND",
                    )
                assert (await place(svc.orders, newcomer.id)).state == PENDING


async def test_listing_again_cancels_open_orders_of_a_deleted_user_the_view_never_saw(
    tmp_path: pathlib.Path,
) -> None:
    """order_svc takes an order for a user its view has not seen yet (asking user_svc, and
    recording the answer), and stops before its follower applies the user's creation;
    meanwhile the user is deleted and that history compacted. Listing again must still
    cancel the order."""
    # SQLite only: there a user_svc learns of another replica's commits by polling alone,
    # so with a long poll the replica the view follows does not pass the new user on.
    user_url = f"sqlite:///{tmp_path}/user_svc.db"
    order_url = f"sqlite:///{tmp_path}/order_svc.db"
    order_dir = tmp_path / "order_svc"
    slow = FeedSettings(progress_seconds=0.1, poll_seconds=600)
    async with (
        running_user_svc(user_url, tmp_path / "followed", feed=slow) as followed,
        running_user_svc(user_url, tmp_path / "other", feed=QUICK_FEED) as other,
        channel_to(other.port) as channel,
        opened(order_url) as db,
    ):
        users = user_pb2_grpc.UserServiceStub(channel)
        async with order_svc_in_front_of(order_url, order_dir, f"127.0.0.1:{followed.port}") as svc:
            await wait_until_view_matches(db, users)
            user = await create_user(users)  # through the replica the view does not follow
            order = await place(svc.orders, user.id)  # the direct check finds the user
            view = await read_view(db)
        if (view.revision or 0) >= int(user.etag):
            pytest.fail("set-up: the view's follower saw the user's creation after all")
        assert user.id in view.live  # learned by the order's direct check
        await delete_user(users, user.id)
        if await compact_user_history(user_url) <= (view.revision or 0):
            pytest.fail("set-up: nothing the view missed was compacted")
        async with order_svc_in_front_of(order_url, order_dir, f"127.0.0.1:{other.port}") as svc:
            if not await holds(functools.partial(view_matches, db, users)):
                pytest.fail("set-up: the view did not list again")
            state = await order_state(svc.orders, order.id)
            assert state == CANCELLED, "the deleted user's order is still open"


@pytest.fixture
async def postgres_urls() -> AsyncIterator[tuple[str, str]]:
    """Two throwaway PostgreSQL databases (user_svc's, order_svc's)."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        pytest.skip(POSTGRES_SKIP_REASON)
    postgres = PostgresDatabases(admin_url)
    try:
        yield await postgres.create(), await postgres.create()
    finally:
        await postgres.drop_all()


@pytest.mark.postgres
async def test_an_order_that_learned_its_user_is_cancelled_by_the_deletion_applied_after(
    database_url: str,
) -> None:
    """Writers are serialized, so an order for a user the view had not seen (it learned the
    user from the user service) and the user's deletion commit one after the other. Order
    first: the deletion finds the learned row and cancels the order."""
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        parts = view_parts(db)
        uow, orders, view = parts.uow, parts.orders, parts.view
        await listed(view, [], 1)
        user_id = new_id()
        placed = await place_learned(parts, user_id, 2)
        cancelled = await view.apply(
            [UserChange(user_id, 2, deleted=False), UserChange(user_id, 3, deleted=True)], 3
        )
        assert [order.id for order in cancelled] == [placed.id]
        stored = await uow.read(lambda conn: orders.get(conn, placed.id))
        assert stored is not None
        assert stored.state == State.CANCELLED


async def test_writers_of_two_replicas_queue_on_the_writer_lock_taken_first(
    postgres_urls: tuple[str, str],
) -> None:
    """On PostgreSQL every write transaction takes the writer lock before any other lock, so
    no two writers can deadlock whatever rows they lock. Held by another session, it holds
    back every writer of the database (both replicas' units, and a view's batch) until it
    is released; then all commit, in one or a few commit groups."""
    _, order_url = postgres_urls
    async with (
        opened(order_url) as first,
        opened(order_url) as second,
        await psycopg.AsyncConnection.connect(order_url) as holder,
        await psycopg.AsyncConnection.connect(order_url, autocommit=True) as observer,
    ):
        await migrate(first, schema.MIGRATIONS)
        replicas = [view_parts(first), view_parts(second)]
        await listed(replicas[0].view, [], 1)
        user_ids = [new_id() for _ in range(6)]
        known = [UserChange(u, 2 + n, deleted=False) for n, u in enumerate(user_ids)]
        await replicas[0].view.apply(known, 8)
        await holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK_KEY,))

        def placing(
            orders: ResourceTable[Order], view: UserView, user_id: str
        ) -> Callable[[Transaction], Order | None]:
            def unit(tx: Transaction) -> Order | None:
                known = view.find(tx, user_id)
                assert known is not None
                if known.deleted:
                    return None  # refused, as CreateOrder refuses it
                items = [LineItem("SKU-1", 1, Money("EUR", 1))]
                return orders.insert(tx, new_order(new_id(), user_id, items, utc_now()))

            return unit

        writes = [
            asyncio.create_task(r.uow.write(placing(r.orders, r.view, user_ids[n % 6])))
            for n, r in enumerate(replicas * 6)
        ]
        deletion = asyncio.create_task(
            replicas[1].view.apply([UserChange(user_ids[0], 9, deleted=True)], 9)
        )

        async def waiting_on_the_writer_lock() -> bool:
            cursor = await observer.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND objid = %s",
                (WRITER_LOCK_KEY,),
            )
            row = await cursor.fetchone()
            return row is not None and row[0] == 2  # one writer connection per replica

        await eventually(waiting_on_the_writer_lock)
        assert not any(task.done() for task in [*writes, deletion])
        await holder.rollback()
        outcomes = await asyncio.gather(*writes)
        cancelled = await deletion
        # The deletion committed before or after each of user 0's orders: before, and the
        # order was refused; after, and the deletion cancelled it. None stays open.
        placed = [order for order in outcomes if order is not None]
        refused = len(outcomes) - len(placed)
        first_user = {order.id for order in placed if order.user_id == user_ids[0]}
        assert {order.id for order in cancelled} == first_user
        assert len(first_user) + refused == 2  # user 0's two orders
        revisions = [order.revision for order in placed]
        assert len(set(revisions)) == len(revisions)


async def test_listing_into_the_view_warns_of_nothing(database_url: str) -> None:
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        view = view_parts(db).view
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            await listed(view, [UserChange(new_id(), 1, deleted=False)], 1)
        assert await view.revision() == 1


async def test_feed_health_tracks_the_stream_while_liveness_stays_serving(
    databases: Databases, tmp_path: pathlib.Path
) -> None:
    user_url, order_url = await databases.new_many(2)
    async with (
        user_svc_at_its_own_port(user_url, tmp_path / "user_svc") as users,
        order_svc_in_front_of(order_url, tmp_path / "order_svc", users.addr) as svc,
    ):
        health = health_pb2_grpc.HealthStub(svc.channel)

        async def status(name: str) -> int:
            response = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            found: int = response.status
            return found

        def feed_is(wanted: int) -> Callable[[], Awaitable[bool]]:
            async def feed_status() -> bool:
                return await status(HEALTH_NAME) == wanted

            return feed_status

        # Every status the liveness entries and the feed's entry report, as they change.
        seen: dict[str, list[int]] = {"": [], ORDER_SERVICE: [], HEALTH_NAME: []}
        watches = {n: health.Watch(health_pb2.HealthCheckRequest(service=n)) for n in seen}

        async def record(name: str) -> None:
            async for response in watches[name]:
                seen[name].append(response.status)

        recorders = [asyncio.create_task(record(n)) for n in seen]
        try:
            await eventually(feed_is(SERVING))
            await create_user(users.users)
            await eventually(feed_is(SERVING))

            await users.stop()
            await eventually(feed_is(NOT_SERVING))

            async def watch_saw_it() -> bool:
                return seen[HEALTH_NAME][-1:] == [NOT_SERVING]

            await eventually(watch_saw_it)
            assert await status("") == SERVING
            assert await status(ORDER_SERVICE) == SERVING

            await users.start()
            await eventually(feed_is(SERVING))
            assert await status("") == SERVING
            assert await status(ORDER_SERVICE) == SERVING
        finally:
            for call in watches.values():
                call.cancel()
            for recorder in recorders:
                recorder.cancel()
            await asyncio.gather(*recorders, return_exceptions=True)

    assert set(seen[""]) == {SERVING}
    assert set(seen[ORDER_SERVICE]) == {SERVING}
    changes = [
        s for n, s in enumerate(seen[HEALTH_NAME]) if n == 0 or s != seen[HEALTH_NAME][n - 1]
    ]
    assert changes[-3:] == [SERVING, NOT_SERVING, SERVING]


async def test_a_retried_order_of_a_since_deleted_user_replays_the_first_result(
    services: Services,
) -> None:
    """An idempotent replay wins over the refusal: the client's retry after a lost reply
    gets the order it placed, not USER_NOT_FOUND."""
    user = await create_user(services.users)
    request = order_request(user.id, request_id="before-the-deletion")
    first = (await services.orders.CreateOrder(request, timeout=10)).order
    await delete_user(services.users, user.id)
    async with opened(services.order_database_url) as db:
        await wait_until_view_matches(db, services.users)
        assert user.id in (await read_view(db)).deleted
    again = (await services.orders.CreateOrder(request, timeout=10)).order
    assert again.id == first.id
    assert again.user_id == user.id


async def test_a_listing_older_than_what_an_order_learned_cancels_nothing(
    database_url: str,
) -> None:
    """The follower lists users (a snapshot at revision 3); meanwhile an order for a user
    created after that snapshot learns of the user from the user service (revision 5).
    The listing lacks the user, but only because it is older: the order stays open."""
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        parts = view_parts(db)
        uow, orders, view = parts.uow, parts.orders, parts.view
        user_id = new_id()
        placed = await place_learned(parts, user_id, 5)
        assert await listed(view, [], 3) == []
        assert user_id in (await read_view(db)).live
        stored = await uow.read(lambda conn: orders.get(conn, placed.id))
        assert stored == placed


async def test_a_listing_marks_deleted_only_the_live_users_it_did_not_see(
    database_url: str,
) -> None:
    """A listing taken at revision 8, recorded a page at a time: the live user its pages
    lack was deleted meanwhile (its open order is cancelled), a user learned of after the
    snapshot is newer than it (kept), and a listed user's newer change is kept."""
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        parts = view_parts(db)
        view = parts.view
        a, b, c, d = (new_id() for _ in range(4))
        await listed(
            view, [UserChange(u, n + 1, deleted=False) for n, u in enumerate([a, b, c])], 3
        )
        gone_order = await place_learned(parts, b, 2)
        await place_learned(parts, d, 9)
        await view.list_page([UserChange(a, 1, deleted=False)], 8)
        await view.list_page([UserChange(c, 5, deleted=False)], 8)
        cancelled = await view.end_listing(8)
        assert [order.id for order in cancelled] == [gone_order.id]
        assert await read_view(db) == View(live={a: 1, c: 5, d: 9}, deleted={b: 8}, revision=8)


async def test_two_listings_at_once_do_not_take_each_others_users_for_deleted(
    database_url: str,
) -> None:
    """Two replicas list at once, from snapshots at revisions 5 and 7; the older listing's
    page, written last, must not hide from the newer one that it saw the users."""
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        view = view_parts(db).view
        users = [UserChange(new_id(), n + 1, deleted=False) for n in range(2)]
        await listed(view, users, 2)
        await view.list_page(users, 7)
        await view.list_page(users, 5)
        assert await view.end_listing(7) == []
        assert await view.end_listing(5) == []
        assert set((await read_view(db)).live) == {u.user_id for u in users}


async def test_after_a_restore_the_next_listing_is_not_fooled_by_marks_of_the_lost_history(
    database_url: str,
) -> None:
    """The view listed at revision 50; the user service, restored, is back at 40 and deletes
    user X there. Listings past 40 are forgotten, so the listing at 41 that lacks X marks it
    deleted (a mark of 50 would have told it a listing since had seen X)."""
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        view = view_parts(db).view
        x, y = new_id(), new_id()
        await listed(view, [UserChange(x, 30, deleted=False), UserChange(y, 31, deleted=False)], 50)
        await view.forget_listings_after(40)
        assert await listed(view, [UserChange(y, 31, deleted=False)], 41) == []
        assert await read_view(db) == View(live={y: 31}, deleted={x: 41}, revision=41)


async def test_a_subject_with_more_users_than_a_statement_takes_parameters_lists_its_orders(
    database_url: str,
) -> None:
    """A subject may create users without limit: its own listing must not name each in the
    query (SQLite takes at most 32,766 bound parameters)."""
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        parts = view_parts(db)
        owned = [new_id() for _ in range(66_000)]
        rows = [{"id": u, "revision": 1, "deleted": False, "subject": "many"} for u in owned]
        await db.write(lambda conn: conn.execute(schema.known_users.insert(), rows))
        placed = await place_learned(parts, owned[-1], 1)
        ownership = Ownership()

        def orders_of(conn: Connection) -> list[str]:
            query = sa.select(schema.orders.c.id).where(ownership.orders_of(conn, "many"))
            return list(conn.execute(query).scalars())

        assert await db.read(orders_of) == [placed.id]


async def test_an_answer_older_than_the_view_is_not_learned(database_url: str) -> None:
    """The user service said the user existed at revision 5; a listing at 10 that lacks it
    ended before the order's unit: the user was deleted meanwhile, and the view, current to
    10, would never hear of it again. It is not learned (and the order is refused); an answer
    newer than the view is."""
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        parts = view_parts(db)
        await listed(parts.view, [], 10)
        gone, new = new_id(), new_id()

        def learning(tx: Transaction) -> tuple[KnownUser | None, KnownUser | None]:
            parts.view.learn(tx, gone, 5)
            parts.view.learn(tx, new, 11)
            return parts.view.find(tx, gone), parts.view.find(tx, new)

        assert await parts.uow.write(learning) == (None, KnownUser(deleted=False, subject=None))


async def view_before_owners(
    order_url: str, known: list[user_pb2.User], revision: int, open_order_of: str
) -> None:
    """The order service's database as migration 3 left it: a view current to `revision`
    with no subjects, and an open order."""
    async with opened(order_url) as db:
        await migrate(db, schema.MIGRATIONS[:3])
        draft = new_order(
            new_id(), open_order_of, [LineItem("SKU-1", 1, Money("EUR", 1))], utc_now()
        )
        order = OrderRows().to_row(dataclasses.replace(draft, revision=1))
        insert = sa.text("INSERT INTO known_users (id, revision, deleted) VALUES (:id, :r, false)")

        def write(conn: Connection) -> None:
            for user in known:
                conn.execute(insert, {"id": user.id, "r": int(user.etag)})
            conn.execute(schema.user_view_state.update().values(revision=revision))
            conn.execute(schema.orders.insert().values(order))

        await db.write(write)


async def test_the_subjects_migration_lists_the_users_again_with_their_owners(
    databases: Databases, tmp_path: pathlib.Path
) -> None:
    """A view written before owners were recorded (migration 3) holds no subjects: migration
    4 makes the view list again, which fills them in, and still cancels the open orders of a
    user deleted while the order service was away."""
    user_url, order_url = await databases.new_many(2)
    async with (
        running_user_svc(user_url, tmp_path / "user_svc") as server,
        channel_to(server.port) as channel,
    ):
        users = user_pb2_grpc.UserServiceStub(channel)
        alice = await create_user(users, subject="alice")
        gone = await create_user(users, subject="gone")
        _, revision = await user_table(users)
        await view_before_owners(order_url, [alice, gone], revision, gone.id)
        await delete_user(users, gone.id)
        async with (
            running_order_svc(order_url, tmp_path / "o", f"127.0.0.1:{server.port}") as started,
            channel_to(started.port) as order_channel,
        ):
            orders = order_pb2_grpc.OrderServiceStub(order_channel)
            await known_to_orders(orders, alice)
            mine = await orders.CreateOrder(order_request(""), metadata=bearer("alice"))
            assert mine.order.user_id == alice.id
            [cancelled] = await all_orders(orders, gone.id)
            assert cancelled.state == CANCELLED
