"""Crashes: the real processes, killed with SIGKILL at awkward moments.

user_svc dies in the middle of a burst of writes; order_svc dies while it applies a
batch of deletions (and the cancellation of the deleted users' orders). Once they are
back, the order service's view of users must equal the user table, and every
cancellation must have happened exactly once.

Each service runs as `python -m <name>` on a database of its own (SQLite files under the
test's directory, or PostgreSQL databases), on a fixed port so that it comes back on the same
address.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import pathlib
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, TypeVar

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.storage import driver_url
from tests import support
from tests.integration.helpers import order_request
from tests.support import Databases

pytestmark = pytest.mark.e2e

ROOT = pathlib.Path(__file__).resolve().parents[2]
FEED_HEALTH = "shop.order.v1.OrderService.UserFeed"
SERVING = health_pb2.HealthCheckResponse.SERVING
ORDER_CANCELLED = 2  # order_svc.domain.State.CANCELLED, as stored
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
# Clients of a server that comes back: reconnect within a fraction of a second.
CLIENT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _open_log(path: pathlib.Path) -> IO[bytes]:
    return path.open("ab")


def _base_env() -> dict[str, str]:
    """The test's environment without any setting of the services."""
    prefixes = ("USER_SVC_", "ORDER_SVC_", "GATEWAY_", "SHOP_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def services_env() -> dict[str, str]:
    """What every service process of these tests gets: quick feeds, no grace, metrics on
    ports picked free."""
    return {
        **_base_env(),
        "SHOP_WATCH_PROGRESS_SECONDS": "0.2",
        "SHOP_FEED_POLL_SECONDS": "0.2",
        "SHOP_GRACE_SECONDS": "0",
        "PYTHONUNBUFFERED": "1",
        "USER_SVC_ADMIN_LISTEN": "127.0.0.1:0",
        "ORDER_SVC_ADMIN_LISTEN": "127.0.0.1:0",
    }


@dataclass
class Service:
    """One service process, started (again) by `start` and killed (-9) by `kill`."""

    module: str
    addr: str
    env: dict[str, str]
    log: pathlib.Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    _log_offset: int = 0

    async def start(self) -> None:
        assert self.process is None or self.process.returncode is not None
        self.starts += 1
        output = _open_log(self.log)
        try:
            self._log_offset = output.tell()
            output.write(f"--- start {self.starts} ---\n".encode())
            output.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                cwd=ROOT,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            output.close()

    async def kill(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGKILL)
            await process.wait()

    def logged_since_start(self, text: str) -> bool:
        with self.log.open("rb") as log:
            log.seek(self._log_offset)
            return text.encode() in log.read()

    async def wait_listening(self, within: float = 30.0) -> None:
        """Waits until this start of the process logs that it listens (it serves from then)."""

        async def listening() -> bool:
            assert self.process is not None
            assert self.process.returncode is None, f"exited: {self.process.returncode}"
            return self.logged_since_start(f"{self.module} listening on")

        await eventually(listening, within, f"{self.module} listening", self, interval=0.005)

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return f"{self.module}: no output"
        text = self.log.read_text(errors="replace").splitlines()
        return f"{self.module} output:\n" + "\n".join(text[-lines:])

    async def wait_healthy(self, *services: str, within: float = 30.0) -> None:
        """Waits until each health entry named (and the overall one) is SERVING."""
        async with client_channel(self.addr) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def serving() -> bool:
                assert self.process is not None
                assert self.process.returncode is None, f"exited: {self.process.returncode}"
                for name in ("", *services):
                    request = health_pb2.HealthCheckRequest(service=name)
                    try:
                        response = await health.Check(request, timeout=1)
                    except grpc.aio.AioRpcError:
                        return False
                    if response.status != SERVING:
                        return False
                return True

            await eventually(serving, within, f"{self.module} healthy", self)


@dataclass
class Shop:
    user: Service
    order: Service
    user_db: str
    order_db: str
    """The databases' URLs."""

    def tails(self) -> str:
        return f"{self.user.tail()}\n{self.order.tail()}"


@contextlib.asynccontextmanager
async def running_shop(tmp_path: pathlib.Path, databases: Databases) -> AsyncIterator[Shop]:
    """user_svc and order_svc, each on a database of its own; every process is killed at the
    end."""
    user_db, order_db = await databases.new_many(2)
    user_addr, order_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    common = {**services_env(), "SHOP_DATA_DIR": str(tmp_path / "data")}
    user = Service(
        "user_svc",
        user_addr,
        {
            **common,
            "USER_SVC_LISTEN": user_addr,
            "USER_SVC_DATABASE_URL": user_db,
        },
        tmp_path / "user_svc.log",
    )
    order = Service(
        "order_svc",
        order_addr,
        {
            **common,
            "ORDER_SVC_LISTEN": order_addr,
            "ORDER_SVC_DATABASE_URL": order_db,
            "ORDER_SVC_USER_SVC_ADDR": user_addr,
        },
        tmp_path / "order_svc.log",
    )
    found = Shop(user, order, user_db, order_db)
    try:
        await user.start()
        await user.wait_healthy()
        await order.start()
        await order.wait_healthy(FEED_HEALTH)
        yield found
    finally:
        await order.kill()
        await user.kill()


@contextlib.asynccontextmanager
async def client_channel(addr: str) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(addr, options=CLIENT_OPTIONS)
    try:
        yield channel
    finally:
        await channel.close(None)


async def eventually(
    predicate: Callable[[], Awaitable[bool]],
    within: float,
    what: str,
    *logs_of: Service | Shop,
    interval: float = 0.05,
) -> None:
    await support.eventually(
        predicate,
        within,
        what,
        interval=interval,
        context=lambda: "\n".join(s.tails() if isinstance(s, Shop) else s.tail() for s in logs_of),
    )


async def retried(
    call: Callable[[], Awaitable[T]],
    *,
    failures: list[grpc.StatusCode] | None = None,
    first_try: list[bool] | None = None,
) -> T:
    """`call` again while the server is away (UNAVAILABLE, DEADLINE_EXCEEDED); each such
    failure is added to `failures`."""
    give_up = time.monotonic() + 60
    attempt = 0
    while True:
        if first_try is not None:
            first_try[:] = [attempt == 0]
        attempt += 1
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            if error.code() not in RETRYABLE or time.monotonic() > give_up:
                raise
            if failures is not None:
                failures.append(error.code())
        await asyncio.sleep(0.05)


# -- reading the databases directly --------------------------------------------------------


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(driver_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


async def query(url: str, sql: str) -> list[tuple[object, ...]]:
    return await asyncio.to_thread(_query, url, sql)


async def user_table(shop: Shop) -> tuple[set[str], int]:
    """The ids in the users table and the user service's latest revision."""
    rows = await query(shop.user_db, "SELECT id FROM users")
    [(revision,)] = await query(shop.user_db, "SELECT revision FROM revision_counter")
    assert isinstance(revision, int)
    return {str(r[0]) for r in rows}, revision


async def user_view(shop: Shop) -> tuple[set[str], set[str], int | None]:
    """The order service's view: live ids, deleted ids, and its revision."""
    rows = await query(shop.order_db, "SELECT id, deleted FROM known_users")
    [(revision,)] = await query(shop.order_db, "SELECT revision FROM user_view_state")
    assert revision is None or isinstance(revision, int)
    live = {str(i) for i, deleted in rows if not deleted}
    return live, {str(i) for i, deleted in rows if deleted}, revision


async def wait_until_view_matches(shop: Shop, within: float = 45.0) -> None:
    async def view_matches_user_table() -> bool:
        table, revision = await user_table(shop)
        live, _deleted, view_revision = await user_view(shop)
        assert view_revision == revision, (view_revision, revision)
        assert live == table, (len(live), len(table))
        return True

    await eventually(view_matches_user_table, within, "the view equal to the user table", shop)


async def create_user(
    users: user_pb2_grpc.UserServiceAsyncStub,
    key: str,
    failures: list[grpc.StatusCode] | None = None,
) -> user_pb2.User:
    # The request id makes a retry of a create that did commit return that user.
    request = user_pb2.CreateUserRequest(
        user=user_pb2.User(email=f"{key}@example.com", display_name=f"User {key}"),
        request_id=key,
    )
    return (await retried(lambda: users.CreateUser(request, timeout=5), failures=failures)).user


async def delete_user(
    users: user_pb2_grpc.UserServiceAsyncStub,
    user_id: str,
    failures: list[grpc.StatusCode] | None = None,
) -> None:
    first_try = [True]
    try:
        await retried(
            lambda: users.DeleteUser(user_pb2.DeleteUserRequest(id=user_id), timeout=5),
            failures=failures,
            first_try=first_try,
        )
    except grpc.aio.AioRpcError as error:
        # A retry of a delete that did commit before the crash finds nothing left.
        if first_try[0] or error.code() != grpc.StatusCode.NOT_FOUND:
            raise


# -- the tests -----------------------------------------------------------------------------


@dataclass
class Burst:
    done: int = 0
    users: dict[str, str] = field(default_factory=dict)
    """What each writer did last to each user: created, updated or deleted."""
    failures: list[grpc.StatusCode] = field(default_factory=list)
    """The failures the writers retried."""


async def write_burst(
    users: user_pb2_grpc.UserServiceAsyncStub, writer: int, rounds: int, burst: Burst
) -> None:
    """Creates users; updates every third, deletes every third; retries through outages."""
    for n in range(rounds):
        user = await create_user(users, f"w{writer}-{n}-{os.urandom(4).hex()}", burst.failures)
        burst.users[user.id] = "created"
        if n % 3 == 1:
            request = user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=user.id, display_name=f"Renamed {n}")
            )
            update = functools.partial(users.UpdateUser, request, timeout=5)
            await retried(update, failures=burst.failures)
            burst.users[user.id] = "updated"
        elif n % 3 == 2:
            await delete_user(users, user.id, burst.failures)
            burst.users[user.id] = "deleted"
        burst.done += 1


async def test_user_svc_killed_in_a_write_burst(
    tmp_path: pathlib.Path, databases: Databases
) -> None:
    writers, rounds = 8, 30
    async with running_shop(tmp_path, databases) as shop, client_channel(shop.user.addr) as channel:
        users = user_pb2_grpc.UserServiceStub(channel)
        burst = Burst()
        tasks = [asyncio.create_task(write_burst(users, n, rounds, burst)) for n in range(writers)]
        try:

            async def a_third_done() -> bool:
                return burst.done >= writers * rounds // 3

            await eventually(a_third_done, 30, "a third of the burst written", shop)
            await shop.user.kill()  # with writes in flight
            done_at_kill = burst.done
            await asyncio.sleep(0.3)
            await shop.user.start()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await shop.user.wait_healthy()

        assert burst.done == writers * rounds
        # The writers ran into the outage, and went on writing after it.
        assert grpc.StatusCode.UNAVAILABLE in burst.failures
        assert done_at_kill < writers * rounds * 2 // 3
        await wait_until_view_matches(shop)
        table, _revision = await user_table(shop)
        live, deleted, _view_revision = await user_view(shop)
        kept = {u for u, last in burst.users.items() if last != "deleted"}
        assert table == kept == live
        assert {u for u, last in burst.users.items() if last == "deleted"} <= deleted
        # order_svc followed without a restart of its own.
        assert shop.order.starts == 1
        assert shop.order.process is not None
        assert shop.order.process.returncode is None


async def test_order_svc_killed_while_it_applies_deletions(
    tmp_path: pathlib.Path, databases: Databases
) -> None:
    count = 300
    async with (
        running_shop(tmp_path, databases) as shop,
        client_channel(shop.user.addr) as user_channel,
        client_channel(shop.order.addr) as order_channel,
    ):
        users = user_pb2_grpc.UserServiceStub(user_channel)
        orders = order_pb2_grpc.OrderServiceStub(order_channel)
        limit = asyncio.Semaphore(16)

        async def user_with_an_order(n: int) -> tuple[str, str]:
            async with limit:
                user = await create_user(users, f"b{n}")
                request = order_request(user.id, request_id=f"order-{n}")
                order = (await orders.CreateOrder(request, timeout=10)).order
                return user.id, order.id

        placed = dict(await asyncio.gather(*(user_with_an_order(n) for n in range(count))))
        await wait_until_view_matches(shop)
        await shop.order.kill()

        await asyncio.gather(*(delete_user_limited(users, u, limit) for u in placed))
        table, deleted_up_to = await user_table(shop)
        assert table == set()

        # Kill it again and again, each time a little later after it began to serve (and
        # to follow the feed), until a start got through applying the deletions: the
        # cancellation of 300 orders, in one transaction (or a few).
        kills: list[tuple[float, int | None]] = []
        for delay in [0.02 * n for n in range(10)] + [0.25, 0.35, 0.5, 0.75, 1, 1.5, 2, 3]:
            await shop.order.start()
            await shop.order.wait_listening()
            await asyncio.sleep(delay)
            await shop.order.kill()
            _live, _deleted, revision = await user_view(shop)
            kills.append((round(delay, 3), revision))
            if revision == deleted_up_to:
                break
        # (On a loaded machine even the first kill may come after the deletions were applied;
        # then the restarts still must not cancel anything again.)
        print("killed this long after listening (s), view revision then:", kills)

        await shop.order.start()
        await shop.order.wait_healthy(FEED_HEALTH)
        await wait_until_view_matches(shop)

        live, deleted, _revision = await user_view(shop)
        assert live == set()
        assert deleted == set(placed)
        states = {str(i): s for i, s in await query(shop.order_db, "SELECT id, state FROM orders")}
        assert states == dict.fromkeys(placed.values(), ORDER_CANCELLED)
        # The changelog holds each order's cancellation exactly once.
        cancellations: dict[str, int] = dict.fromkeys(placed.values(), 0)
        for resource_id, data in await query(
            shop.order_db, "SELECT resource_id, data FROM changes"
        ):
            if json.loads(str(data))["state"] == ORDER_CANCELLED:
                cancellations[str(resource_id)] += 1
        assert cancellations == dict.fromkeys(placed.values(), 1)
        # And the service says so too.
        for order_id in list(placed.values())[:20]:
            got = await orders.GetOrder(order_pb2.GetOrderRequest(id=order_id), timeout=5)
            assert got.order.state == order_pb2.Order.STATE_CANCELLED


async def delete_user_limited(
    users: user_pb2_grpc.UserServiceAsyncStub, user_id: str, limit: asyncio.Semaphore
) -> None:
    async with limit:
        await delete_user(users, user_id)
