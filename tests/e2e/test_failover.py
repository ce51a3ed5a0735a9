"""Failover: two replicas of each service, one of each killed (SIGKILL) and restarted under
load, the clients never told more than "try again".

Five real processes: two user_svc on one PostgreSQL database, two order_svc on another (each
pair with its own `SHOP_PAGE_TOKEN_KEY`), the order service dialing both user replicas and
the gateway both replicas of each through `ipv4:127.0.0.1:p1,127.0.0.1:p2` targets (gRPC's
round robin: a replica that is gone gets no calls, the other takes them all). Every replica
listens on a fixed port, so that it comes back on the address its clients dial.

A few HTTP clients create a user, an order for it (each with an `Idempotency-Key`), and read
the order back, and delete every fourth user; a failed attempt is retried with the same key.
Meanwhile a WatchUsers stream on the user replica that gets killed resumes on the other from
the last revision it saw. Afterwards: each acknowledged write is there exactly once (one user
per key, one order per user), the watch saw every revision once and in order, the order
service's view of users equals the user table, each deleted user's order cancelled once. The
failed attempts are counted (and printed: what a client sees of a replica's crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from order_svc import schema as order_schema
from shop.user.v1 import user_pb2, user_pb2_grpc
from tests.e2e.test_crash import FEED_HEALTH, Service, client_channel, free_port, services_env
from tests.integration.test_user_view import opened, read_view
from tests.integration.test_view_replicas import CANCELLED, PENDING, order_rows
from tests.support import PostgresDatabases, eventually
from user_svc import schema as user_schema

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CLIENTS = 4
LOAD_SECONDS = 10.0
KILL_USER_AT, KILL_ORDER_AT = 2.5, 6.0
"""Seconds into the load at which a user replica, then an order replica, is killed."""
DOWN_SECONDS = 0.5
"""How long a killed replica stays down before it is started again."""
RETRY_FOR = 20.0
"""An operation still failing after this long fails the test."""
MOST_FAILURES = 20 * CLIENTS
"""A generous bound on the failed attempts of both cuts (the in-flight calls of each)."""
TRIES_AGAIN = {502, 503, 504}
"""What the gateway answers while a call cannot get through (the UNAVAILABLE family)."""


def target(*services: Service) -> str:
    return "ipv4:" + ",".join(s.addr for s in services)


@dataclass
class Cluster:
    user_a: Service
    user_b: Service
    order_a: Service
    order_b: Service
    gateway: Service
    gateway_url: str
    user_url: str
    order_url: str

    @property
    def all(self) -> list[Service]:
        return [self.user_a, self.user_b, self.order_a, self.order_b, self.gateway]

    def tails(self) -> str:
        return "\n".join(s.tail() for s in self.all)


@contextlib.asynccontextmanager
async def running_cluster(
    postgres: PostgresDatabases, tmp_path: pathlib.Path
) -> AsyncIterator[Cluster]:
    user_url, order_url = await postgres.create(), await postgres.create()
    common = services_env()
    user_addrs = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    order_addrs = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    gateway_addr = f"127.0.0.1:{free_port()}"
    user_key, order_key = secrets.token_hex(32), secrets.token_hex(32)
    users_target = "ipv4:" + ",".join(user_addrs)
    orders_target = "ipv4:" + ",".join(order_addrs)

    def user(n: int) -> Service:
        env = {
            **common,
            "SHOP_DATA_DIR": str(tmp_path / f"user-{n}"),
            "SHOP_PAGE_TOKEN_KEY": user_key,
            "USER_SVC_LISTEN": user_addrs[n],
            "USER_SVC_DATABASE_URL": user_url,
        }
        return Service("user_svc", user_addrs[n], env, tmp_path / f"user_svc-{n}.log")

    def order(n: int) -> Service:
        env = {
            **common,
            "SHOP_DATA_DIR": str(tmp_path / f"order-{n}"),
            "SHOP_PAGE_TOKEN_KEY": order_key,
            "ORDER_SVC_LISTEN": order_addrs[n],
            "ORDER_SVC_DATABASE_URL": order_url,
            "ORDER_SVC_USER_SVC_ADDR": users_target,
        }
        return Service("order_svc", order_addrs[n], env, tmp_path / f"order_svc-{n}.log")

    gateway_env = {
        **common,
        "SHOP_DATA_DIR": str(tmp_path / "gateway"),
        "GATEWAY_LISTEN": gateway_addr,
        "GATEWAY_ADMIN_LISTEN": "",
        "GATEWAY_ACCESS_LOG": "false",
        "GATEWAY_RATE_LIMIT_PER_SECOND": "0",
        "GATEWAY_USER_SVC_ADDR": users_target,
        "GATEWAY_ORDER_SVC_ADDR": orders_target,
    }
    cluster = Cluster(
        user(0),
        user(1),
        order(0),
        order(1),
        Service("gateway", gateway_addr, gateway_env, tmp_path / "gateway.log"),
        f"http://{gateway_addr}",
        user_url,
        order_url,
    )
    try:
        # One replica first: it migrates the empty database; then the other.
        await cluster.user_a.start()
        await cluster.user_a.wait_healthy()
        await asyncio.gather(cluster.user_b.start(), cluster.order_a.start())
        await asyncio.gather(cluster.user_b.wait_healthy(), cluster.order_a.wait_healthy())
        await asyncio.gather(cluster.order_b.start(), cluster.gateway.start())
        await asyncio.gather(
            cluster.order_a.wait_healthy(FEED_HEALTH),
            cluster.order_b.wait_healthy(FEED_HEALTH),
            cluster.gateway.wait_listening(),
        )
        yield cluster
    finally:
        for service in reversed(cluster.all):
            await service.kill()


# -- the load ----------------------------------------------------------------------------------


@dataclass
class Failed:
    what: str
    outcome: str
    """The HTTP status, or the transport error's name."""
    at: float


@dataclass
class Load:
    running: bool = True
    users: dict[str, str] = field(default_factory=dict)
    """Idempotency-Key → the id of the user created with it."""
    orders: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Idempotency-Key → (order id, user id)."""
    deleted: set[str] = field(default_factory=set)
    calls: int = 0
    failed: list[Failed] = field(default_factory=list)
    recoveries: list[float] = field(default_factory=list)
    """For each operation that failed: from its first failed attempt to its success."""


async def call(
    http: httpx.AsyncClient,
    load: Load,
    what: str,
    method: str,
    url: str,
    *,
    ok: tuple[int, ...],
    key: str | None = None,
    body: object = None,
    ok_on_retry: tuple[int, ...] = (),
) -> httpx.Response:
    """The request, again (with the same key) while it fails with a status that says "try
    again" or no response at all; each failed attempt is noted in `load`."""
    headers = {"Idempotency-Key": key} if key is not None else {}
    first_failure: float | None = None
    while True:
        load.calls += 1
        try:
            response = await http.request(method, url, json=body, headers=headers)
        except httpx.TransportError as error:
            outcome = type(error).__name__
        else:
            done = ok + (ok_on_retry if first_failure is not None else ())
            if response.status_code in done:
                if first_failure is not None:
                    load.recoveries.append(time.monotonic() - first_failure)
                return response
            assert response.status_code in TRIES_AGAIN, (what, response.status_code, response.text)
            outcome = str(response.status_code)
        now = time.monotonic()
        load.failed.append(Failed(what, outcome, now))
        first_failure = first_failure or now
        assert now - first_failure < RETRY_FOR, f"{what} still fails: {outcome}"
        await asyncio.sleep(0.05)


async def client(base_url: str, number: int, load: Load) -> None:
    item = {"sku": "TEA-1", "quantity": 1, "unitPrice": {"currencyCode": "EUR", "units": "3"}}
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as http:
        n = 0
        while load.running:
            user_key, order_key = str(uuid.uuid4()), str(uuid.uuid4())
            user = {"email": f"{user_key}@example.com", "displayName": f"Client {number}-{n}"}
            created = await call(
                http,
                load,
                "create user",
                "POST",
                "/v1/users",
                ok=(200, 201),
                key=user_key,
                body=user,
            )
            user_id = created.json()["id"]
            load.users[user_key] = user_id
            order = {"userId": user_id, "items": [item]}
            placed = await call(
                http,
                load,
                "create order",
                "POST",
                "/v1/orders",
                ok=(200, 201),
                key=order_key,
                body=order,
            )
            order_id = placed.json()["id"]
            load.orders[order_key] = (order_id, user_id)
            got = await call(http, load, "get order", "GET", f"/v1/orders/{order_id}", ok=(200,))
            assert got.json()["userId"] == user_id
            if n % 4 == 3:
                # A retry of a deletion that went through finds nothing to delete.
                await call(
                    http,
                    load,
                    "delete user",
                    "DELETE",
                    f"/v1/users/{user_id}",
                    ok=(200, 204),
                    ok_on_retry=(404,),
                )
                load.deleted.add(user_id)
            n += 1


# -- the watch ---------------------------------------------------------------------------------


@dataclass
class Watch:
    revisions: list[int] = field(default_factory=list)
    resumed: list[tuple[str, int]] = field(default_factory=list)
    """(address, start revision) of each watch after the first."""
    responses: list[tuple[str, list[int]]] = field(default_factory=list)
    """(address, revisions) of each response with events: where a gap came from."""

    def around(self, revision: int) -> list[tuple[str, list[int]]]:
        """The responses near the one that should have held `revision`."""
        at = next(
            (n for n, (_a, r) in enumerate(self.responses) if r and r[-1] >= revision),
            len(self.responses),
        )
        return self.responses[max(0, at - 3) : at + 3]


async def watch_users(first: Service, second: Service, watch: Watch) -> None:
    """WatchUsers on `first` from revision 1; when its stream breaks, on `second` from the
    revision after the last one seen (and back, should that one break too)."""
    service = first
    while True:
        start = watch.revisions[-1] + 1 if watch.revisions else 1
        if watch.revisions or service is not first:
            watch.resumed.append((service.addr, start))
        async with client_channel(service.addr) as channel:
            stream = user_pb2_grpc.UserServiceStub(channel).WatchUsers(
                user_pb2.WatchUsersRequest(start_revision=start)
            )
            try:
                async for response in stream:
                    revisions = [e.revision for e in response.events]
                    if revisions:
                        watch.revisions.extend(revisions)
                        watch.responses.append((service.addr, revisions))
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            finally:
                stream.cancel()
        service = second if service is first else first
        await asyncio.sleep(0.05)


# -- the databases -----------------------------------------------------------------------------


async def user_table(url: str) -> tuple[dict[str, str], int]:
    """email → id of every user, and the user service's latest revision."""
    users, counter = user_schema.users, user_schema.changelog.counter

    def work(conn: Connection) -> tuple[dict[str, str], int]:
        rows = conn.execute(sa.select(users.c.email, users.c.id)).all()
        revision = conn.execute(sa.select(counter.c.revision)).scalar_one()
        return {r.email: r.id for r in rows}, int(revision)

    async with opened(url) as db:
        return await db.read(work)


async def orders_by_user(url: str) -> Counter[str]:
    orders = order_schema.orders

    def work(conn: Connection) -> Counter[str]:
        return Counter(r.user_id for r in conn.execute(sa.select(orders.c.user_id)))

    async with opened(url) as db:
        return await db.read(work)


# -- the test ----------------------------------------------------------------------------------


async def restart(service: Service, down: float) -> float:
    """Kills `service` (SIGKILL), starts it again after `down` seconds; returns the time from
    the kill until it serves again."""
    killed = time.monotonic()
    await service.kill()
    await asyncio.sleep(down)
    await service.start()
    await service.wait_healthy()
    return time.monotonic() - killed


async def test_one_replica_of_each_service_killed_under_load(
    postgres: PostgresDatabases, tmp_path: pathlib.Path
) -> None:
    async with running_cluster(postgres, tmp_path) as cluster:
        load, watch = Load(), Watch()
        watcher = asyncio.create_task(watch_users(cluster.user_a, cluster.user_b, watch))
        clients = [
            asyncio.create_task(client(cluster.gateway_url, n, load)) for n in range(CLIENTS)
        ]
        try:
            began = time.monotonic()
            await asyncio.sleep(KILL_USER_AT)
            user_kill = time.monotonic()
            user_back = await restart(cluster.user_a, DOWN_SECONDS)
            await asyncio.sleep(max(0.0, began + KILL_ORDER_AT - time.monotonic()))
            order_kill = time.monotonic()
            order_back = await restart(cluster.order_a, DOWN_SECONDS)
            await asyncio.sleep(max(0.0, began + LOAD_SECONDS - time.monotonic()))
            load.running = False
            async with asyncio.timeout(RETRY_FOR + 10):
                await asyncio.gather(*clients)
            await cluster.order_a.wait_healthy(FEED_HEALTH)

            users, head = await user_table(cluster.user_url)

            async def watch_at_head() -> bool:
                if watcher.done():
                    watcher.result()  # the watch failed: its error
                return bool(watch.revisions) and watch.revisions[-1] >= head

            await eventually(watch_at_head, 15, "the watch at the head", context=cluster.tails)
            async with opened(cluster.order_url) as db:

                async def view_current() -> bool:
                    return (await read_view(db)).revision == head

                await eventually(view_current, 15, "the view current", context=cluster.tails)
                view = await read_view(db)
        finally:
            load.running = False
            for task in (*clients, watcher):
                task.cancel()
            await asyncio.gather(*clients, watcher, return_exceptions=True)
        rows = await order_rows(cluster.order_url)
        per_user = await orders_by_user(cluster.order_url)

    # Every acknowledged write is there, once.
    live = {u for u in load.users.values() if u not in load.deleted}
    assert {f"{k}@example.com": u for k, u in load.users.items() if u in live} == users
    assert len(set(load.users.values())) == len(load.users)
    assert per_user == Counter(u for _o, u in load.orders.values())
    assert per_user == Counter(dict.fromkeys(load.users.values(), 1))
    assert set(rows.states) == {o for o, _u in load.orders.values()}
    # The user service: a revision per create and per delete, each seen by the watch once.
    assert head == len(load.users) + len(load.deleted)
    missing = sorted(set(range(1, head + 1)) - set(watch.revisions))
    assert watch.revisions == list(range(1, head + 1)), (
        f"missing {missing}; resumed {watch.resumed}; around the first: "
        f"{watch.around(missing[0]) if missing else None}"
    )
    assert watch.resumed
    assert watch.resumed[0][0] == cluster.user_b.addr
    # The view equals the user table, and each deletion cancelled its user's order once.
    assert set(view.live) == live
    assert set(view.deleted) == load.deleted
    assert rows.states == {
        o: CANCELLED if u in load.deleted else PENDING for o, u in load.orders.values()
    }
    doomed = {o for o, u in load.orders.values() if u in load.deleted}
    assert {o: len(r) for o, r in rows.cancellations.items()} == dict.fromkeys(doomed, 1)
    # What the clients saw of the crashes.
    outcomes = Counter((f.what, f.outcome) for f in load.failed)
    at_user_cut = sum(1 for f in load.failed if user_kill <= f.at < order_kill)
    at_order_cut = sum(1 for f in load.failed if f.at >= order_kill)
    print(
        f"\nfailover: {load.calls} requests, {len(load.users)} users, {len(load.orders)} orders, "
        f"{len(load.deleted)} deleted; failed attempts: {len(load.failed)} "
        f"({at_user_cut} at the user replica's kill, {at_order_cut} at the order replica's): "
        f"{dict(outcomes)}; longest retry {max(load.recoveries, default=0):.2f}s; "
        f"killed replica serving again after {user_back:.2f}s (user_svc), "
        f"{order_back:.2f}s (order_svc); watch resumed {watch.resumed}"
    )
    assert len(load.failed) <= MOST_FAILURES
    assert len(load.users) >= CLIENTS * 4  # the load went on through the cuts
