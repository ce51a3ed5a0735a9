"""`python -m <service>` serves; `python -m <service> migrate` only migrates."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import uvloop

from shop_common import logs, server
from shop_common.config import Common
from shop_common.db import Database
from shop_common.migrations import Migration, migrate


class ServiceSettings(Protocol):
    @property
    def database_url(self) -> str: ...
    @property
    def common(self) -> Common: ...


S = TypeVar("S", bound=ServiceSettings)


async def _migrate_only(url: str, migrations: Sequence[Migration]) -> list[int]:
    db = Database(url)
    try:
        return await migrate(db, migrations)
    finally:
        await db.close()


async def _serve(settings: S, start: Callable[[S], Awaitable[server.RunningServer]]) -> None:
    running = await start(settings)
    await server.serve_until_signal(
        running, grace=settings.common.grace_seconds, drain=settings.common.drain_seconds
    )


def main(
    argv: list[str],
    *,
    name: str,
    settings: S,
    start: Callable[[S], Awaitable[server.RunningServer]],
    migrations: Sequence[Migration],
) -> int:
    logs.configure(settings.common.log_level)
    if argv == ["migrate"]:
        applied = asyncio.run(_migrate_only(settings.database_url, migrations))
        print(f"{name}: applied migrations {applied or 'none (up to date)'}")
        return 0
    if argv:
        print(f"usage: python -m {name} [migrate]", file=sys.stderr)
        return 2
    # uvloop: ~5% less CPU per call than asyncio's own loop, measured on GetUser.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(settings, start))
    return 0
