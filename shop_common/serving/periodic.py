"""Housekeeping that runs every so often beside a server, and stops with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def every(seconds: float, job: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    """Starts running `job` every `seconds` (first run right away); returns its stopper."""

    async def loop() -> None:
        while True:
            try:
                await job()
            except Exception:
                log.exception("periodic job failed; it runs again in %.0fs", seconds)
            await asyncio.sleep(seconds)

    task = asyncio.create_task(loop())

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
