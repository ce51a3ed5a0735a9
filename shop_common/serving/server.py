"""The server bootstrap every service shares: one grpc.aio server with health,
reflection (v1 and v1alpha) and the boundary interceptor; graceful stop on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from shop_common.serving import reflection
from shop_common.serving.interceptor import BoundaryInterceptor
from shop_common.serving.limits import ServerLimits

log = logging.getLogger(__name__)

REFUSING_SECONDS = 0.05
"""How long a stopping server refuses new calls (UNAVAILABLE) before it stops: long enough
for the calls grpc has queued to be handed on and refused, instead of cancelled."""

SERVER_OPTIONS: Sequence[tuple[str, int]] = (
    # A busy port must fail to bind, not be shared silently with another process.
    ("grpc.so_reuseport", 0),
)
"""Besides the limits (`ServerLimits`: message sizes, streams, keepalive)."""


@dataclass
class Service:
    """One gRPC service of the application: its descriptor and how to add it."""

    descriptor: ServiceDescriptor
    register: Callable[[grpc.aio.Server], None]


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: Any  # grpc_health.v1.health.aio.HealthServicer (untyped package)
    port: int
    services: Sequence[Service]
    boundary: BoundaryInterceptor
    on_stopping: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run once no new call is accepted, while calls in flight finish (e.g. end streams)."""
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run after the server has stopped (e.g. close the database)."""

    async def stop(
        self, *, grace: float, drain: float = 0.0, refuse: float = REFUSING_SECONDS
    ) -> None:
        """NOT_SERVING first and a moment for load balancers (`drain`, calls still served),
        then new calls refused as UNAVAILABLE (`refuse`), then a graceful stop: calls in
        flight may finish for `grace` seconds, and those still running then are cut
        (UNAVAILABLE too)."""
        await self.health.enter_graceful_shutdown()
        if drain:
            await asyncio.sleep(drain)
        self.boundary.refuse()
        await asyncio.sleep(refuse)
        stopping = asyncio.create_task(self.server.stop(grace))
        await asyncio.sleep(0)  # the server stops accepting calls first
        for hook in self.on_stopping:
            await hook()
        await stopping
        for hook in self.on_stop:
            await hook()


async def start_server(
    name: str, listen: str, services: Sequence[Service], *, limits: ServerLimits
) -> RunningServer:
    """Starts serving `services` on `listen` (port 0 picks one) within `limits`, and logs
    where."""
    names = frozenset(s.descriptor.full_name for s in services)
    boundary = BoundaryInterceptor(names)
    server = grpc.aio.server(
        interceptors=[boundary], options=[*SERVER_OPTIONS, *limits.server_options()]
    )
    for service in services:
        service.register(server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]  # stubs lag
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable(
        server, [*sorted(names), health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    )
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"{name} could not bind {listen}")
    await server.start()
    serving = health_pb2.HealthCheckResponse.SERVING
    await health_servicer.set("", serving)
    for service_name in names:
        await health_servicer.set(service_name, serving)
    host = listen.rpartition(":")[0]
    log.info("%s listening on %s:%d", name, host, port)
    return RunningServer(
        server=server, health=health_servicer, port=port, services=services, boundary=boundary
    )


async def serve_until_signal(running: RunningServer, *, grace: float, drain: float) -> None:
    """Serves until SIGTERM or SIGINT, then stops gracefully."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("stopping: draining for %.1fs, then a %.1fs grace period", drain, grace)
    await running.stop(grace=grace, drain=drain)
    log.info("stopped")
