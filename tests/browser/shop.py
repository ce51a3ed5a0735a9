"""The real system for a browser test, served by an event loop in a thread of its own, so
that the test itself may block on the browser (Selenium's calls are synchronous) while the
system answers it: `in_thread(running_shop(...))`, or any other system's context manager."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TypeVar

from gateway import Settings, start
from gateway.config import services_of
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.support import running_order_svc, running_user_svc

T = TypeVar("T")
START_SECONDS = 60.0


@dataclass(frozen=True)
class Shop:
    gateway_url: str
    user_addr: str
    order_addr: str


@contextlib.asynccontextmanager
async def running_shop(data: pathlib.Path) -> AsyncIterator[Shop]:
    """user_svc and order_svc on SQLite, and the gateway, on ephemeral ports, in development
    identity (as `make run` starts them)."""
    async with running_user_svc(f"sqlite:///{data}/user_svc.db", data / "user_svc") as users:
        user_addr = f"127.0.0.1:{users.port}"
        async with running_order_svc(
            f"sqlite:///{data}/order_svc.db", data / "order_svc", user_addr
        ) as orders:
            order_addr = f"127.0.0.1:{orders.port}"
            settings = Settings(
                backends=services_of(user_pb2.DESCRIPTOR, user_addr)
                | services_of(order_pb2.DESCRIPTOR, order_addr),
                listen="127.0.0.1:0",
                grace_seconds=1,
            )
            gateway = await start(settings)
            try:
                yield Shop(gateway.url, user_addr, order_addr)
            finally:
                await gateway.stop()


@contextlib.contextmanager
def in_thread(system: AbstractAsyncContextManager[T]) -> Iterator[T]:
    """Enters `system` on an event loop running in a daemon thread; leaves it there, then
    ends the loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="system", daemon=True)
    thread.start()
    try:
        entered = asyncio.run_coroutine_threadsafe(system.__aenter__(), loop)
        value = entered.result(START_SECONDS)
        try:
            yield value
        finally:
            left = asyncio.run_coroutine_threadsafe(system.__aexit__(None, None, None), loop)
            left.result(START_SECONDS)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
