"""`python -m <service>` serves; `python -m <service> migrate` only migrates."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import uvloop

from shop_common.process import ConfigError, configure_logging
from shop_common.serving.config import ServiceSettings
from shop_common.serving.server import RunningServer, serve_until_signal
from shop_common.storage import Database, Migration, migrate

S = TypeVar("S", bound=ServiceSettings)


@dataclass(frozen=True)
class Program(Generic[S]):
    """A service as its `__main__` runs it."""

    name: str
    settings: Callable[[Mapping[str, str]], S]
    """Reads the service's settings from the environment."""
    start: Callable[[S], Awaitable[RunningServer]]
    migrations: Sequence[Migration]


async def _migrate_only(url: str, migrations: Sequence[Migration]) -> list[int]:
    db = Database(url)
    try:
        return await migrate(db, migrations)
    finally:
        await db.close()


async def _serve(settings: S, start: Callable[[S], Awaitable[RunningServer]]) -> None:
    running = await start(settings)
    await serve_until_signal(
        running, grace=settings.common.grace_seconds, drain=settings.common.drain_seconds
    )


def main(program: Program[S], argv: list[str], env: Mapping[str, str]) -> int:
    try:
        settings = program.settings(env)
    except ConfigError as error:  # a bad setting: its message says which; no traceback
        print(f"{program.name}: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.common.log_level, settings.common.log_format)
    if argv == ["migrate"]:
        applied = asyncio.run(_migrate_only(settings.database_url, program.migrations))
        print(f"{program.name}: applied migrations {applied or 'none (up to date)'}")
        return 0
    if argv:
        print(f"usage: python -m {program.name} [migrate]", file=sys.stderr)
        return 2
    # uvloop: less CPU per call than asyncio's own loop (the README has the figure).
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(settings, program.start))
    return 0
