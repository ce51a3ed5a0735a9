"""Server-Sent Events end to end: a real EventSource (Node's `eventsource` package, run by
tests/node/sse-follow.mjs) follows `/v1/users:watch` through the gateway in front of the
real user service. Its connection is cut, users are created while it is away, and it
reconnects by itself with `Last-Event-ID`: it must get exactly the events after the last
one it saw, none twice and none missing, the event ids being the revisions.

Between the EventSource and the gateway sits a small TCP proxy of the test's own, which
records every request head and can cut connections, refuse new ones, or forward to
another gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway import RunningGateway, Settings, start
from gateway.config import services_of
from shop.user.v1 import user_pb2, user_pb2_grpc
from tests.node.test_node_client import ROOT, node_binary
from tests.support import channel_to, running_user_svc

pytestmark = pytest.mark.e2e

FOLLOW = ROOT / "tests" / "node" / "sse-follow.mjs"
WAIT_SECONDS = 20.0
Line = dict[str, Any]


class Proxy:
    """A TCP proxy to `upstream` that records each request's head (the requests are GETs:
    every blank line ends one), can cut every open connection and refuse new ones."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.refusing = False
        self.heads: list[str] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.cut()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            if self.refusing:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            except OSError:
                return
            self._writers.add(up_writer)
            try:
                pumps = [
                    asyncio.ensure_future(self._pump(reader, up_writer, record=True)),
                    asyncio.ensure_future(self._pump(up_reader, writer, record=False)),
                ]
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                self._writers.discard(up_writer)
                up_writer.transport.abort()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            self._handlers.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, record: bool
    ) -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if record:
                    pending += data
                    while b"\r\n\r\n" in pending:
                        head, pending = pending.split(b"\r\n\r\n", 1)
                        self.heads.append(head.decode("latin-1"))
                writer.write(data)
                await writer.drain()


def last_event_id(head: str) -> str | None:
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "last-event-id":
            return value.strip()
    return None


class Follower:
    """The EventSource in its node process: what it reported, line by line."""

    def __init__(self, process: asyncio.subprocess.Process, stderr: pathlib.Path) -> None:
        self.process = process
        self.lines: list[Line] = []
        self._stderr = stderr

    async def wait_for(self, what: str, predicate: Callable[[Line], bool]) -> Line:
        """Reads lines until one satisfies `predicate`, and returns it."""
        assert self.process.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while True:
            remaining = deadline - loop.time()
            try:
                raw = await asyncio.wait_for(self.process.stdout.readline(), max(remaining, 0))
            except TimeoutError:
                raise AssertionError(f"no {what} within {WAIT_SECONDS}s; {self}") from None
            if not raw:
                raise AssertionError(f"the EventSource ended before {what}; {self}")
            line: Line = json.loads(raw)
            self.lines.append(line)
            if predicate(line):
                return line

    async def message_of(self, user_id: str) -> Line:
        return await self.wait_for(
            f"the event of {user_id}",
            lambda line: (
                line["kind"] == "message"
                and any(e["user"]["id"] == user_id for e in line["data"]["events"])
            ),
        )

    async def connection_error(self, what: str) -> Line:
        return await self.wait_for(what, lambda line: line["kind"] == "connection-error")

    def messages(self) -> list[Line]:
        return [line for line in self.lines if line["kind"] == "message"]

    def __str__(self) -> str:
        reported = "\n".join(json.dumps(line) for line in self.lines)
        return f"it reported:\n{reported}\nstderr:\n{self._stderr.read_text()}"


@contextlib.asynccontextmanager
async def following(url: str, tmp_path: pathlib.Path) -> AsyncIterator[Follower]:
    stderr = tmp_path / "node-stderr.txt"
    with stderr.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            node_binary(),
            str(FOLLOW.relative_to(ROOT)),
            url,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
        )
        try:
            yield Follower(process, stderr)
        finally:
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.asynccontextmanager
async def gateway_for(user_addr: str) -> AsyncIterator[RunningGateway]:
    settings = Settings(
        backends=services_of(user_pb2.DESCRIPTOR, user_addr),
        listen="127.0.0.1:0",
        grace_seconds=1,
        sse_heartbeat_seconds=0.2,
    )
    running = await start(settings)
    try:
        yield running
    finally:
        await running.stop()


@contextlib.asynccontextmanager
async def proxy_to(port: int) -> AsyncIterator[tuple[Proxy, str]]:
    proxy = Proxy(port)
    proxy_port = await proxy.start()
    try:
        yield proxy, f"http://127.0.0.1:{proxy_port}/v1/users:watch?startRevision=1"
    finally:
        await proxy.close()


async def create_user(users: user_pb2_grpc.UserServiceAsyncStub, name: str) -> str:
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    request = user_pb2.CreateUserRequest(user=user_pb2.User(email=email, display_name=name))
    response = await users.CreateUser(request, timeout=10)
    return response.user.id


async def history(users: user_pb2_grpc.UserServiceAsyncStub) -> list[tuple[int, str]]:
    """Every (revision, user id) of the feed, as a watch from revision 1 replays it."""
    found: list[tuple[int, str]] = []
    call = users.WatchUsers(
        user_pb2.WatchUsersRequest(start_revision=1, progress_notify=True), timeout=10
    )
    async for response in call:
        if response.progress_notify:
            break
        found += [(event.revision, event.user.id) for event in response.events]
    call.cancel()
    return found


def delivered(follower: Follower) -> list[tuple[int, str]]:
    """(revision, user id) of every event the EventSource got, checking that each message's
    id is the revision of its last event."""
    found: list[tuple[int, str]] = []
    for line in follower.messages():
        events = line["data"]["events"]
        assert line["lastEventId"] == events[-1]["revision"], line
        found += [(int(event["revision"]), event["user"]["id"]) for event in events]
    return found


@contextlib.asynccontextmanager
async def user_service(tmp_path: pathlib.Path) -> AsyncIterator[tuple[str, Any]]:
    async with (
        running_user_svc(f"sqlite:///{tmp_path}/user_svc.db", tmp_path / "user_svc") as server,
        channel_to(server.port) as channel,
    ):
        yield f"127.0.0.1:{server.port}", user_pb2_grpc.UserServiceStub(channel)


async def test_an_event_source_resumes_after_a_dropped_connection_without_gap_or_duplicate(
    tmp_path: pathlib.Path,
) -> None:
    node_binary()  # fails before anything starts when Node.js is not ready
    async with (
        user_service(tmp_path) as (user_addr, users),
        gateway_for(user_addr) as gateway,
        proxy_to(gateway.port) as (proxy, url),
    ):
        before = [await create_user(users, name) for name in ("ada", "bob")]
        async with following(url, tmp_path) as follower:
            await follower.message_of(before[-1])  # history first
            live = await create_user(users, "cy")
            seen = await follower.message_of(live)

            proxy.refusing = True
            proxy.cut()
            await follower.connection_error("the drop")
            away = [await create_user(users, name) for name in ("dee", "eve")]
            await follower.connection_error("a reconnection refused")
            proxy.refusing = False
            await follower.wait_for("the reconnection", lambda line: line["kind"] == "open")

            await follower.message_of(away[-1])
            after = await create_user(users, "fay")
            await follower.message_of(after)

        assert delivered(follower) == await history(users), follower
        assert [user for _, user in delivered(follower)] == [*before, live, *away, after]
    resumed = [last_event_id(head) for head in proxy.heads]
    assert resumed[0] is None  # the first request: from the URL's startRevision
    assert set(resumed[1:]) == {seen["lastEventId"]}, proxy.heads


async def test_an_event_source_resumes_on_another_gateway_when_one_stops(
    tmp_path: pathlib.Path,
) -> None:
    node_binary()
    async with (
        user_service(tmp_path) as (user_addr, users),
        gateway_for(user_addr) as second,
    ):
        first = await start(
            Settings(
                backends=services_of(user_pb2.DESCRIPTOR, user_addr),
                listen="127.0.0.1:0",
                grace_seconds=1,
                sse_heartbeat_seconds=0.2,
            )
        )
        try:
            async with proxy_to(first.port) as (proxy, url), following(url, tmp_path) as follower:
                seen = await follower.message_of(await create_user(users, "ann"))
                proxy.refusing = True  # until the proxy forwards to the second gateway
                await first.stop()
                stopped = await follower.wait_for(
                    "the stopping gateway's error event", lambda line: line["kind"] == "error-event"
                )
                away = await create_user(users, "ben")
                proxy.upstream = second.port
                proxy.refusing = False
                await follower.message_of(away)
        finally:
            await first.stop()
        assert stopped["data"]["code"] == 14  # UNAVAILABLE
        assert stopped["data"]["details"][0]["reason"] == "GATEWAY_STOPPING"
        assert delivered(follower) == await history(users), follower
    assert last_event_id(proxy.heads[-1]) == seen["lastEventId"]
