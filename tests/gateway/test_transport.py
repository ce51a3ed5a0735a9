"""The gateway's transport: writes of one step of the event loop leave in one send."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from gateway.transport import CoalescingTransport


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
