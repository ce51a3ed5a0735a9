"""The server bootstrap every service shares: one grpc.aio server with health,
reflection (v1 and v1alpha, unless turned off) and the boundary interceptor, on a plaintext
or a (mutual) TLS port; optionally a second, plaintext port that serves health only (for
Kubernetes' gRPC probes, which speak no TLS); graceful stop on SIGTERM/SIGINT.
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

from shop_common.security import SecuritySettings, server_credentials
from shop_common.serving import channelz, reflection
from shop_common.serving.authentication import Authenticator, start_authentication
from shop_common.serving.interceptor import BoundaryInterceptor
from shop_common.serving.limits import ServerLimits
from shop_common.telemetry import AdminServer, GrpcServerMetrics, Tracing

log = logging.getLogger(__name__)

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
_SERVING = health_pb2.HealthCheckResponse.SERVING

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
    health_server: grpc.aio.Server | None = None
    """The plaintext health-only server, when one is configured."""
    health_port: int | None = None
    admin: AdminServer | None = None
    """The admin port (`/metrics`), when metrics are on."""
    tracing: Tracing | None = None
    """The service's tracing, when on (`OTEL_*`)."""
    on_stopping: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run once no new call is accepted, while calls in flight finish (e.g. end streams)."""
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run after the server has stopped (e.g. close the database)."""

    def serving_statuses(self) -> dict[str, bool]:
        """Whether each name the health service knows is SERVING (`shop_health_serving`).
        Called on the admin thread at scrape time: a copy of the servicer's table, taken
        in one step (the health package keeps no other public view of it)."""
        statuses = dict(self.health._server_status)
        return {name: status == _SERVING for name, status in statuses.items()}

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
        if self.health_server is not None:  # the probes see NOT_SERVING until the end
            await self.health_server.stop(None)
        for hook in self.on_stop:
            await hook()


async def start_server(
    name: str,
    listen: str,
    services: Sequence[Service],
    *,
    limits: ServerLimits,
    security: SecuritySettings | None = None,
    reflection_on: bool = True,
    health_listen: str | None = None,
    metrics: GrpcServerMetrics | None = None,
    channelz_on: bool = False,
    tracing: Tracing | None = None,
) -> RunningServer:
    """Starts serving `services` on `listen` (port 0 picks one) within `limits`, callers
    established as `security` says (development identity by default), over TLS when it has
    a TLS identity; health alone, in plaintext, on `health_listen` too if given; the calls
    to `services` recorded in `metrics` if given (every method at zero from the start);
    channelz served too if `channelz_on` (for admins only: see `channelz`); their unary calls
    traced with `tracing` if given (a SERVER span each, around the boundary). Logs where."""
    security = security or SecuritySettings()
    security.check_listen(listen, "listen")
    authenticator, stop_authentication = await start_authentication(security)
    try:
        running = await _start(
            name,
            listen,
            services,
            limits,
            security,
            authenticator,
            reflection_on,
            health_listen,
            metrics,
            channelz_on,
            tracing,
        )
    except BaseException:
        await stop_authentication()
        raise
    running.on_stop.append(stop_authentication)
    return running


async def _start(
    name: str,
    listen: str,
    services: Sequence[Service],
    limits: ServerLimits,
    security: SecuritySettings,
    authenticator: Authenticator,
    reflection_on: bool,
    health_listen: str | None,
    metrics: GrpcServerMetrics | None,
    channelz_on: bool,
    tracing: Tracing | None,
) -> RunningServer:
    names = frozenset(s.descriptor.full_name for s in services)
    operator = [channelz.DESCRIPTOR] if channelz_on else []
    if metrics is not None:
        metrics.register([*(s.descriptor for s in services), *operator])
    # Channelz crosses the boundary as the services do (authenticated, admins only).
    guarded = names | {d.full_name for d in operator}
    boundary = BoundaryInterceptor(guarded, authenticator, metrics, exemplars=tracing is not None)
    interceptors: list[Any] = [boundary]  # grpc-stubs: generic, at run time not
    if tracing is not None:  # outside the boundary: its span sees the status sent
        unary = frozenset(
            f"/{s.descriptor.full_name}/{m.name}"
            for s in services
            for m in s.descriptor.methods
            if not m.server_streaming
        )
        interceptors.insert(0, tracing.server_interceptor(unary))
    options = [*SERVER_OPTIONS, *limits.server_options()]
    server = grpc.aio.server(interceptors=interceptors, options=options)
    for service in services:
        service.register(server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]  # stubs lag
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if channelz_on:
        channelz.enable(server)
    if reflection_on:
        reflection.enable(server, [*sorted(guarded), HEALTH_SERVICE])
    if security.tls is None:
        port = server.add_insecure_port(listen)
    else:
        port = server.add_secure_port(listen, await server_credentials(security.tls))
    if port == 0:
        raise OSError(f"{name} could not bind {listen}")
    health_server, health_port = None, None
    if health_listen is not None:
        # The same servicer: one state, answered on both ports.
        health_server = grpc.aio.server(options=options)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        health_port = health_server.add_insecure_port(health_listen)
        if health_port == 0:
            raise OSError(f"{name} could not bind {health_listen} (health)")
    await server.start()
    if health_server is not None:
        await health_server.start()
    serving = health_pb2.HealthCheckResponse.SERVING
    await health_servicer.set("", serving)
    for service_name in names:
        await health_servicer.set(service_name, serving)
    host = listen.rpartition(":")[0]
    transport = "plaintext" if security.tls is None else "TLS"
    if security.tls is not None and security.tls.require_client_cert:
        transport = "mutual TLS"
    log.info("%s listening on %s:%d (%s)", name, host, port, transport)
    if health_listen is not None:
        log.info(
            "%s health (plaintext) on %s:%d", name, health_listen.rpartition(":")[0], health_port
        )
    return RunningServer(
        server=server,
        health=health_servicer,
        port=port,
        services=services,
        boundary=boundary,
        health_server=health_server,
        health_port=health_port,
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
