"""The gateway's connections as a client meets them, in whatever event loop serves it."""

from __future__ import annotations

import socket

import httpx
import pytest

from gateway import RunningGateway

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def test_a_kept_alive_connection_sends_without_waiting_for_acks(
    gateway: RunningGateway,
) -> None:
    """A response goes out in two writes (head, then body). With Nagle's algorithm on, the
    second waits for the client's delayed ACK: ~40 ms per request on a kept-alive
    connection. asyncio turns it off only on sockets whose protocol is IPPROTO_TCP, and
    uvloop always; the gateway binds its own socket, so it must say so (or set it)."""
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        assert (await http.get("/v1/items/special")).status_code == 200
        connections = gateway.server.server_state.connections
        assert connections
        for connection in connections:
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
