"""`python -m order_svc` serves; `python -m order_svc migrate` only migrates."""

from __future__ import annotations

import asyncio
import os
import sys

from order_svc import app
from order_svc.config import Settings
from shop_common import logs, server


async def _serve(settings: Settings) -> None:
    running = await app.start(settings)
    await server.serve_until_signal(
        running, grace=settings.common.grace_seconds, drain=settings.common.drain_seconds
    )


def main(argv: list[str]) -> int:
    settings = Settings.from_env(os.environ)
    logs.configure(settings.common.log_level)
    if argv == ["migrate"]:
        applied = asyncio.run(app.run_migrations(settings))
        print(f"{app.NAME}: applied migrations {applied or 'none (up to date)'}")
        return 0
    if argv:
        print(f"usage: python -m {app.NAME} [migrate]", file=sys.stderr)
        return 2
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
