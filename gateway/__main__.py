"""`python -m gateway`: serves the REST gateway, configured by the environment."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import uvloop

from gateway.config import Settings
from gateway.routes import RouteError
from gateway.server import serve
from shop_common.process import ConfigError, configure_logging


def main() -> int:
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    # uvicorn's own start/stop chatter; its errors still show.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(settings))
    except (OSError, RouteError) as error:  # a busy port, a rule the gateway refuses
        logging.getLogger("gateway").error("cannot start: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
