"""One client cannot starve the others: a cap on open connections answered at once with 503,
and deadlines for an idle connection, a request head and a request body, on real sockets.
Deadlines are short here (DEADLINE) and waits generous (WAIT): what is tested is what
happens, never how fast."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from gateway import RunningGateway, start, transport
from tests.gateway.conftest import Backend, settings_for
from tests.gateway.rawhttp import (
    WAIT,
    connection,
    exchange,
    parse,
    read_response,
    send,
    until_closed,
)
from tests.gateway.test_refusals import GET, POST, assert_status_body

CAP = 20
DEADLINE = 0.5
DEADLINE_EXCEEDED, UNAVAILABLE = 4, 14


@contextlib.asynccontextmanager
async def serving(backend: Backend, **overrides: object) -> AsyncIterator[RunningGateway]:
    running = await start(settings_for(backend.address, **overrides))
    try:
        yield running
    finally:
        await running.stop()


async def open_connections(gateway: RunningGateway, count: int) -> int:
    """Waits until the gateway counts `count` open connections; the count it reached."""
    connections = gateway.server.server_state.connections
    for _ in range(int(WAIT / 0.01)):  # the gateway sees a connection a moment later
        if len(connections) >= count:
            break
        await asyncio.sleep(0.01)
    return len(connections)


async def test_at_the_cap_a_new_connection_gets_503_with_retry_after_at_once(
    backend: Backend,
) -> None:
    async with (
        serving(backend, max_connections=CAP) as gateway,
        contextlib.AsyncExitStack() as held,
    ):
        idle = [await held.enter_async_context(connection(gateway)) for _ in range(CAP)]
        assert await open_connections(gateway, CAP) == CAP

        refused = await exchange(gateway, GET + b"\r\n")
        body = assert_status_body(refused, 503, UNAVAILABLE, "TOO_MANY_CONNECTIONS")
        assert refused.headers["retry-after"] == "1"
        assert body["details"][0]["metadata"] == {"limit": str(CAP)}

        # One leaves: a normal client is served in its place.
        _, writer = idle.pop()
        writer.close()
        async with httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as client:
            for _ in range(50):  # the gateway sees the close a moment later
                response = await client.get("/v1/users/u-1")
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.05)
        assert response.status_code == 200
    assert [call.rpc for call in backend.recorder.calls] == ["GetUser"]


async def test_a_connection_over_the_cap_that_sends_nothing_is_answered_503_all_the_same(
    backend: Backend,
) -> None:
    async with (
        serving(backend, max_connections=1) as gateway,
        connection(gateway),
        connection(gateway) as (reader, _),
    ):
        refused = parse(await until_closed(reader))
    assert_status_body(refused, 503, UNAVAILABLE, "TOO_MANY_CONNECTIONS")


async def test_with_no_place_left_to_wait_the_oldest_silent_connection_makes_room(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Over the cap, a connection waits (a descriptor outside the cap) for its request, to be
    # answered without a reset. Places to wait are few; a silent one gives its place up.
    monkeypatch.setattr(transport, "LINGER_SECONDS", 60.0)  # no timer answers in this test
    async with (
        serving(backend, max_connections=1) as gateway,
        connection(gateway),
    ):
        protocol = gateway.server.config.http_protocol_class
        assert issubclass(protocol, transport.GatewayHttpProtocol)
        protocol.linger_budget = transport.LingerBudget(free=1)
        async with connection(gateway) as (silent, _):
            for _ in range(int(WAIT / 0.01)):  # it waits in the one place
                if protocol.linger_budget.silent:
                    break
                await asyncio.sleep(0.01)
            assert protocol.linger_budget.free == 0
            newcomer = await exchange(gateway, GET + b"\r\n")
            assert_status_body(newcomer, 503, UNAVAILABLE, "TOO_MANY_CONNECTIONS")
            made_room = parse(await until_closed(silent))
        assert_status_body(made_room, 503, UNAVAILABLE, "TOO_MANY_CONNECTIONS")


async def trickle(writer: asyncio.StreamWriter, start: bytes, byte: bytes) -> None:
    """Sends `start`, then `byte` every 50 ms, without end, until the gateway hangs up or
    `writer` is closed. (Read the answer meanwhile: once the gateway has closed, more bytes
    get a reset, and a reset discards what was not read yet.)"""
    await send(writer, start)
    with contextlib.suppress(ConnectionError):
        while not writer.is_closing():
            writer.write(byte)
            await writer.drain()
            await asyncio.sleep(0.05)


async def test_slow_and_idle_clients_are_cut_off_while_a_normal_client_is_served(
    backend: Backend,
) -> None:
    deadlines = {"idle_seconds": DEADLINE, "head_seconds": DEADLINE, "body_seconds": DEADLINE}
    async with (
        serving(backend, max_connections=CAP, **deadlines) as gateway,
        contextlib.AsyncExitStack() as held,
        asyncio.TaskGroup() as tasks,
    ):
        # A head that never ends, a body that never ends, and connections that send nothing.
        slow_heads = [await held.enter_async_context(connection(gateway)) for _ in range(5)]
        slow_bodies = [await held.enter_async_context(connection(gateway)) for _ in range(5)]
        silent = [await held.enter_async_context(connection(gateway)) for _ in range(8)]
        for _, writer in slow_heads:
            tasks.create_task(trickle(writer, GET + b"x-slow: ", b"a"))
        for _, writer in slow_bodies:
            head = POST + b"content-length: 1000\r\n\r\n"  # under the body limit
            tasks.create_task(trickle(writer, head + b'{"user": {"displayName": "', b"a"))

        async with httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as client:
            response = await client.get("/v1/users/u-1")
        assert response.status_code == 200

        for reader, _ in slow_heads:
            cut = parse(await until_closed(reader))
            assert_status_body(cut, 408, DEADLINE_EXCEEDED, "HEAD_TIMEOUT")
        for reader, _ in slow_bodies:
            cut = parse(await until_closed(reader))
            assert_status_body(cut, 408, DEADLINE_EXCEEDED, "BODY_TIMEOUT")
        for reader, _ in silent:  # nothing asked, nothing answered: just closed
            assert await until_closed(reader) == b""
        for _, writer in slow_heads + slow_bodies:
            writer.close()
    # The slow bodies never became calls.
    assert [call.rpc for call in backend.recorder.calls] == ["GetUser"]


async def test_a_kept_alive_connection_is_closed_after_the_idle_timeout(
    backend: Backend,
) -> None:
    async with (
        serving(backend, idle_seconds=DEADLINE) as gateway,
        connection(gateway) as (reader, writer),
    ):
        for _ in range(2):  # kept alive between requests made at once
            await send(writer, GET + b"\r\n")
            response = await read_response(reader)
            assert response.status == 200
            assert "connection" not in response.headers
        assert await until_closed(reader) == b""


@pytest.mark.parametrize(
    ("idle", "head"),
    [(30, DEADLINE), (DEADLINE / 2, 2 * DEADLINE)],
    ids=["idle-longer", "idle-shorter"],
)
async def test_a_trickled_head_on_a_kept_alive_connection_is_cut_off_at_its_deadline(
    backend: Backend, idle: float, head: float
) -> None:
    # Bytes keep coming, and a head begun is not idle: it is cut off at its own deadline.
    async with (
        serving(backend, idle_seconds=idle, head_seconds=head) as gateway,
        connection(gateway) as (reader, writer),
    ):
        await send(writer, GET + b"\r\n")
        assert (await read_response(reader)).status == 200
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(trickle(writer, GET + b"x-slow: ", b"a"))
            cut = parse(await until_closed(reader))
            writer.close()
    assert_status_body(cut, 408, DEADLINE_EXCEEDED, "HEAD_TIMEOUT")


async def test_a_watch_streams_on_long_after_every_deadline(backend: Backend) -> None:
    deadlines = {"idle_seconds": DEADLINE, "head_seconds": DEADLINE, "body_seconds": DEADLINE}
    async with (
        serving(backend, **deadlines) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as client,
    ):
        params = {"startRevision": "1", "progressNotify": "true"}
        loop = asyncio.get_running_loop()
        async with client.stream("GET", "/v1/users:watch", params=params) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            until = loop.time() + 4 * DEADLINE
            received = 0
            while loop.time() < until:
                assert "result" in orjson.loads(await anext(lines))
                received += 1
        assert received > 1


async def test_pipelined_requests_are_answered_in_order_then_the_connection_idles_out(
    backend: Backend,
) -> None:
    async with (
        serving(backend, idle_seconds=DEADLINE) as gateway,
        connection(gateway) as (reader, writer),
    ):
        body = b'{"user": {"email": "p@example.com"}}'
        create = POST + b"content-length: %d\r\n\r\n%s" % (len(body), body)
        await send(writer, GET + b"\r\n" + create + b"GET /v1/users/u-3 HTTP/1.1\r\n\r\n")
        answers = [await read_response(reader) for _ in range(3)]
        assert [a.status for a in answers] == [200, 201, 200]
        assert [a.json().get("id") for a in answers] == ["u-1", "u-1", "u-3"]
        assert await until_closed(reader) == b""


async def test_a_client_leaving_mid_body_cancels_its_request_and_holds_no_place(
    backend: Backend,
) -> None:
    async with serving(backend) as gateway:
        protocol = gateway.server.config.http_protocol_class
        assert issubclass(protocol, transport.GatewayHttpProtocol)
        places = protocol.linger_budget.free
        async with connection(gateway) as (_, writer):
            await send(writer, POST + b'content-length: 1000\r\n\r\n{"user": ')
            assert await open_connections(gateway, 1) == 1
        for _ in range(int(WAIT / 0.01)):  # the gateway sees the close a moment later
            if not gateway.server.server_state.connections:
                break
            await asyncio.sleep(0.01)
        assert not gateway.server.server_state.connections
        assert protocol.linger_budget.free == places
    assert backend.recorder.calls == []
