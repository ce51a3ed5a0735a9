"""The real system for a browser test: user_svc and order_svc on SQLite and the gateway, on
ephemeral ports, served by an event loop in a thread of their own, so that the test itself
may block on the browser (Selenium's calls are synchronous) while they answer it."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import threading
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

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


class _Loop:
    """An event loop running in a daemon thread until `close()`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="shop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Awaitable[T], timeout: float = START_SECONDS) -> T:
        async def wrapped() -> T:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def running_shop(data: pathlib.Path, **gateway_settings: Any) -> Iterator[Shop]:
    """The three parts, in development identity unless `gateway_settings` say otherwise;
    stopped on leaving."""
    runner = _Loop()
    stack = contextlib.AsyncExitStack()

    async def begin() -> Shop:
        users = await stack.enter_async_context(
            running_user_svc(f"sqlite:///{data}/user_svc.db", data / "user_svc")
        )
        user_addr = f"127.0.0.1:{users.port}"
        orders = await stack.enter_async_context(
            running_order_svc(f"sqlite:///{data}/order_svc.db", data / "order_svc", user_addr)
        )
        order_addr = f"127.0.0.1:{orders.port}"
        settings = Settings(
            backends=services_of(user_pb2.DESCRIPTOR, user_addr)
            | services_of(order_pb2.DESCRIPTOR, order_addr),
            listen="127.0.0.1:0",
            grace_seconds=1,
        )
        gateway = await start(replace(settings, **gateway_settings))
        stack.push_async_callback(gateway.stop)
        return Shop(gateway.url, user_addr, order_addr)

    try:
        yield runner.run(begin())
    finally:
        try:
            runner.run(stack.aclose())
        finally:
            runner.close()
