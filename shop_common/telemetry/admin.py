"""A process's admin HTTP port: `/metrics` from a registry of its own (the process and
Python collectors in it), served by prometheus-client's HTTP server on a thread of its own,
so that a scrape never waits on, nor stalls, the event loop."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

log = logging.getLogger(__name__)


@dataclass
class AdminServer:
    """The admin port of one process, and the registry it serves."""

    registry: CollectorRegistry
    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def stop(self) -> None:
        # shutdown() waits for the serving thread's next poll: not on the loop.
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def new_registry() -> CollectorRegistry:
    """A registry with the process (CPU, memory, file descriptors) and Python (GC,
    platform) collectors; each process, each server a test starts, has its own."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


async def start_admin(name: str, listen: str) -> AdminServer:
    """Serves a new registry's `/metrics` on `listen` (`host:port`, port 0 picks one) and
    logs where (`<name> metrics on http://host:port/metrics`, which `make run` shows)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    registry = new_registry()
    server, thread = await asyncio.to_thread(start_http_server, int(port), host, registry)
    admin = AdminServer(registry, host, int(server.server_address[1]), server, thread)
    log.info("%s metrics on %s", name, admin.url)
    return admin
