"""HTTP/1.1 over a bare socket, for requests no HTTP client would send: malformed, huge,
trickled, or never finished."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from gateway import RunningGateway

WAIT = 10.0
"""Generous: how long a test waits for what must happen (never a bound on speed)."""


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def parse(raw: bytes) -> RawResponse:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)


@contextlib.asynccontextmanager
async def connection(
    gateway: RunningGateway,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Writes `data`; the gateway may have closed already (it answered early)."""
    with contextlib.suppress(ConnectionError):
        writer.write(data)
        await writer.drain()


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the gateway sends until it closes the connection."""
    chunks = []
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(65536), WAIT):
            chunks.append(chunk)
    return b"".join(chunks)


async def exchange(gateway: RunningGateway, data: bytes) -> RawResponse:
    """Sends `data` on a connection of its own; the answer, read until the gateway closes."""
    async with connection(gateway) as (reader, writer):
        await send(writer, data)
        return parse(await until_closed(reader))


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    """One response with a `Content-Length`, leaving the connection open."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    response = parse(head)
    length = int(response.headers["content-length"])
    response.body = await asyncio.wait_for(reader.readexactly(length), WAIT)
    return response
