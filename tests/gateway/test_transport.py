"""The gateway's connections: writes of one step of the event loop leave in one send; a
client that leaves mid-call cancels the gRPC call."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import httpx
import pytest

from gateway import RunningGateway
from gateway.transport import CoalescingTransport
from tests.gateway.conftest import Backend


class RecordingTransport:
    """The calls an asyncio transport would get, recorded."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("127.0.0.1", 5)}.get(name)


def coalescing() -> tuple[CoalescingTransport, RecordingTransport]:
    real = RecordingTransport()
    wrapped = CoalescingTransport(cast(asyncio.Transport, real), asyncio.get_running_loop())
    return wrapped, real


async def test_head_and_body_written_in_one_step_go_out_in_one_send() -> None:
    transport, real = coalescing()
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert real.sent == []
    await asyncio.sleep(0)
    assert real.sent == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


async def test_writes_of_later_steps_are_sent_apart_as_a_stream_needs() -> None:
    transport, real = coalescing()
    for chunk in (b'{"a":1}\n', b'{"a":2}\n'):
        transport.write(chunk)
        await asyncio.sleep(0)
    assert real.sent == [b'{"a":1}\n', b'{"a":2}\n']


async def test_close_sends_what_is_pending_first() -> None:
    transport, real = coalescing()
    transport.write(b"HTTP/1.1 413 Content Too Large\r\n\r\n")
    transport.close()
    assert real.sent == [b"HTTP/1.1 413 Content Too Large\r\n\r\n"]
    assert real.closed
    await asyncio.sleep(0)  # the flush scheduled earlier finds nothing left to send
    assert len(real.sent) == 1


async def test_nothing_is_written_to_a_transport_already_closing() -> None:
    transport, real = coalescing()
    transport.write(b"late")
    real.closed = True  # the client went away within the step
    await asyncio.sleep(0)
    assert real.sent == []


async def test_everything_else_reaches_the_real_transport() -> None:
    transport, _ = coalescing()
    assert transport.get_extra_info("peername") == ("127.0.0.1", 5)


async def _send_and_leave(gateway: RunningGateway, backend: Backend, request: bytes) -> None:
    """Sends `request` on a connection of its own, and closes it while the backend works."""
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    await asyncio.wait_for(backend.recorder.arrived.wait(), timeout=10)
    assert [c.rpc for c in backend.recorder.calls] == ["GetUser"]
    assert not backend.recorder.cancelled.is_set()  # the call is in flight
    writer.close()
    await writer.wait_closed()


async def test_a_client_that_leaves_mid_call_cancels_the_backend_call(
    gateway: RunningGateway,
    backend: Backend,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        await _send_and_leave(gateway, backend, b"GET /v1/users/hang HTTP/1.1\r\nhost: t\r\n\r\n")
        await asyncio.wait_for(backend.recorder.cancelled.wait(), timeout=10)
        # Nothing logged as an error for a client that simply left; the gateway serves on.
        response = await client.get("/v1/users/u-2")
    assert response.status_code == 200
    assert response.json()["id"] == "u-2"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
