"""Two order service replicas on one PostgreSQL database, both following one user service's
feed into the one view of users they share.

Both replicas watch the feed and both try to apply each response; `user_view.apply` locks the
view's state row first, so they apply one after the other, and the second finds the revision
applied already (stored in the same transaction as the changes and the cancellations) and
does nothing. So while users are created and deleted under both replicas (and orders placed
on both, some racing their user's deletion), the view must end up equal to the user service,
every user's row at the revision of that user's last change, and each deletion's open orders
cancelled once: one cancellation per order in the order changelog, all of one user's in the
same transaction. An order placed on one replica while the other applies the deletion is
either refused or cancelled with the rest; none stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import re
from dataclasses import dataclass, field

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from order_svc import schema
from order_svc.domain import State
from shop.order.v1 import order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.feed import FeedSettings
from tests.integration.helpers import create_user, failure_of, order_request
from tests.integration.test_user_view import opened, read_view
from tests.support import (
    PostgresDatabases,
    channel_to,
    eventually,
    running_order_svc,
    running_user_svc,
)

pytestmark = pytest.mark.postgres

FEED = FeedSettings(progress_seconds=0.2, poll_seconds=0.1)
FEED_LOGGER = "order_svc.user_feed"
CANCELLED_LOG = re.compile(r"^cancelled (\d+) open order\(s\) of deleted users")
PENDING, CANCELLED = int(State.PENDING), int(State.CANCELLED)  # as stored
WRITERS = 4
ROUNDS = 15
"""Each writer creates this many users (two orders each) and deletes every third one."""


@dataclass
class Placed:
    """What the writers were told."""

    orders: dict[str, str] = field(default_factory=dict)
    """order id → user id, for every order accepted."""
    deleted: set[str] = field(default_factory=set)
    raced_accepted: int = 0
    """Orders placed right after their user's deletion that were accepted (then cancelled)."""
    raced_refused: int = 0


async def write(
    users: user_pb2_grpc.UserServiceAsyncStub,
    replicas: list[order_pb2_grpc.OrderServiceAsyncStub],
    writer: int,
    placed: Placed,
) -> None:
    """Users with an order on each replica; every third user deleted, then at once ordered
    for again on one replica while the replicas may still be applying the deletion."""
    for n in range(ROUNDS):
        user = await create_user(users, display_name=f"w{writer}-{n}")
        for r in range(2):
            replica = replicas[(writer + n + r) % 2]
            order = (await replica.CreateOrder(order_request(user.id), timeout=10)).order
            placed.orders[order.id] = user.id
        if n % 3 != 2:
            continue
        await users.DeleteUser(user_pb2.DeleteUserRequest(id=user.id), timeout=10)
        placed.deleted.add(user.id)
        try:
            late = await replicas[(writer + n) % 2].CreateOrder(order_request(user.id), timeout=10)
        except grpc.aio.AioRpcError as error:
            found = failure_of(error)
            assert (found.code, found.reason) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "USER_NOT_FOUND",
            ), found
            placed.raced_refused += 1
        else:
            placed.orders[late.order.id] = user.id
            placed.raced_accepted += 1


async def last_changes(
    users: user_pb2_grpc.UserServiceAsyncStub, head: int
) -> dict[str, tuple[int, bool]]:
    """user id → (revision of its last change, deleted), from the user service's feed."""
    found: dict[str, tuple[int, bool]] = {}
    call = users.WatchUsers(user_pb2.WatchUsersRequest(start_revision=1))
    try:
        async with asyncio.timeout(10):
            async for response in call:
                for event in response.events:
                    deleted = event.type == user_pb2.UserEvent.TYPE_DELETE
                    found[event.user.id] = (event.revision, deleted)
                if response.events and response.events[-1].revision >= head:
                    break
    finally:
        call.cancel()
    return found


@dataclass(frozen=True)
class OrderRows:
    states: dict[str, int]
    """order id → state, as stored."""
    cancellations: dict[str, list[int]]
    """order id → the order revisions at which the changelog has it cancelled."""


async def order_rows(order_url: str) -> OrderRows:
    orders, changes = schema.orders, schema.changelog.changes

    def work(conn: Connection) -> OrderRows:
        states = {r.id: r.state for r in conn.execute(sa.select(orders.c.id, orders.c.state))}
        cancellations: dict[str, list[int]] = {}
        query = sa.select(changes.c.resource_id, changes.c.revision, changes.c.data)
        for row in conn.execute(query.order_by(changes.c.revision)):
            if json.loads(row.data)["state"] == CANCELLED:
                cancellations.setdefault(row.resource_id, []).append(row.revision)
        return OrderRows(states, cancellations)

    async with opened(order_url) as db:
        return await db.read(work)


async def test_two_order_replicas_on_one_database_keep_one_view_of_users(
    postgres: PostgresDatabases, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=FEED_LOGGER)
    user_url, order_url = await postgres.create(), await postgres.create()
    async with running_user_svc(user_url, tmp_path / "users", feed=FEED) as user_server:
        user_addr = f"127.0.0.1:{user_server.port}"
        async with (
            running_order_svc(order_url, tmp_path / "a", user_addr, feed=FEED) as replica_a,
            running_order_svc(order_url, tmp_path / "b", user_addr, feed=FEED) as replica_b,
            channel_to(user_server.port) as user_channel,
            channel_to(replica_a.port) as channel_a,
            channel_to(replica_b.port) as channel_b,
        ):
            users = user_pb2_grpc.UserServiceStub(user_channel)
            replicas = [
                order_pb2_grpc.OrderServiceStub(channel_a),
                order_pb2_grpc.OrderServiceStub(channel_b),
            ]
            placed = Placed()
            await asyncio.gather(*(write(users, replicas, w, placed) for w in range(WRITERS)))
            head = (await users.ListUsers(user_pb2.ListUsersRequest(page_size=1))).revision

            async with opened(order_url) as db:

                async def view_current() -> bool:
                    return (await read_view(db)).revision == head

                await eventually(view_current, 20, "the view at the user service's revision")
                # Both replicas still run and follow: nothing they do later may change it.
                await asyncio.sleep(0.5)
                view = await read_view(db)
            changes = await last_changes(users, head)
            rows = await order_rows(order_url)

    # The writes: 3 calls of 4 writers' 15 rounds make 60 users and 20 deletions.
    assert head == WRITERS * ROUNDS + len(placed.deleted)
    assert len(placed.deleted) == WRITERS * ROUNDS // 3
    # The view: the user service's users, each at the revision of its last change.
    assert view.revision == head
    assert view.live == {u: r for u, (r, deleted) in changes.items() if not deleted}
    assert view.deleted == {u: r for u, (r, deleted) in changes.items() if deleted}
    assert set(view.deleted) == placed.deleted
    # The orders: all accepted ones stored, those of deleted users cancelled, the rest open.
    assert rows.states == {
        o: CANCELLED if u in placed.deleted else PENDING for o, u in placed.orders.items()
    }
    # Each cancelled once, and all of one user's orders in one transaction.
    doomed = {o for o, u in placed.orders.items() if u in placed.deleted}
    assert {o: len(revs) for o, revs in rows.cancellations.items()} == dict.fromkeys(doomed, 1)
    for user_id in placed.deleted:
        revisions = {rows.cancellations[o][0] for o, u in placed.orders.items() if u == user_id}
        assert len(revisions) == 1, (user_id, revisions)
    # And what the replicas reported cancelling adds up to that, once each.
    reported = sum(
        int(m.group(1))
        for record in caplog.records
        if record.name == FEED_LOGGER and (m := CANCELLED_LOG.match(record.getMessage()))
    )
    assert reported == len(doomed)
    print(
        f"{len(placed.orders)} orders, {len(doomed)} cancelled by {len(placed.deleted)} "
        f"deletions; orders racing a deletion: {placed.raced_accepted} accepted (cancelled), "
        f"{placed.raced_refused} refused"
    )
