"""Serving the gateway with uvicorn (httptools, writing through `transport`) on a socket we
bind ourselves, so that port 0 works and the real port is known and logged; over HTTPS when
the gateway has a certificate (`https`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import socket
from dataclasses import dataclass

import uvicorn

from gateway.app import Gateway
from gateway.config import Settings
from gateway.https import ServerTls
from gateway.transport import GatewayHttpProtocol
from shop_common.telemetry import AdminServer, start_admin, start_tracing

log = logging.getLogger(__name__)


@dataclass
class RunningGateway:
    app: Gateway
    server: uvicorn.Server
    sockets: list[socket.socket]
    host: str
    port: int
    _main_loop: asyncio.Task[None]
    _stopped: asyncio.Task[None] | None = None
    https: bool = False
    _tls_fresh: asyncio.Task[None] | None = None
    admin: AdminServer | None = None
    """The admin port (`/metrics`), when metrics are on."""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}"

    async def stop(self) -> None:
        """Ends open streams, stops accepting, lets requests finish (up to the grace
        period), then closes the backend channels. Calling it again waits for the same stop."""
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopped)

    async def _stop(self) -> None:
        self.app.begin_stop()
        self.server.should_exit = True
        await self._main_loop
        await self.server.shutdown(sockets=self.sockets)
        if self._tls_fresh is not None:
            self._tls_fresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tls_fresh
        if self.admin is not None:
            await self.admin.stop()
        if self.app.tracing is not None:  # last: it exports the spans of the stop
            await self.app.tracing.shutdown()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it each reply on a kept-alive connection waits for the delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def start(settings: Settings, app: Gateway | None = None) -> RunningGateway:
    """Binds `settings.listen`, starts serving, and logs the address really bound; with
    metrics on, the admin port first (its address logged too); with tracing on, its spans."""
    app = app or Gateway(settings)
    app.tracing = start_tracing(settings.tracing)
    admin = None
    try:
        if settings.admin_listen is not None:
            admin = await start_admin("gateway", settings.admin_listen)
            app.measure(admin.registry)
        return await _start(settings, app, admin)
    except BaseException:
        if admin is not None:
            await admin.stop()
        if app.tracing is not None:
            await app.tracing.shutdown()
        raise


async def _start(settings: Settings, app: Gateway, admin: AdminServer | None) -> RunningGateway:
    tls = None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        tls = ServerTls(settings.tls_cert_file, settings.tls_key_file)
        await tls.load()
    sock = bind(settings.host, settings.port)
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        # httptools, head and body in one send, hostile clients refused (see transport).
        http=GatewayHttpProtocol.for_settings(settings, app.metrics),
        loop="uvloop",
        ws="none",
        lifespan="on",
        interface="asgi3",
        log_config=None,
        access_log=False,
        proxy_headers=False,  # the gateway forwards X-Forwarded-* itself
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.grace_seconds),
    )
    config.load()
    if tls is not None:
        config.ssl = tls.context
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup(sockets=[sock])
    except BaseException:
        sock.close()
        raise
    main_loop = asyncio.create_task(server.main_loop())
    running = RunningGateway(app, server, [sock], settings.host, port, main_loop, admin=admin)
    if tls is not None:
        running.https = True
        running._tls_fresh = asyncio.create_task(tls.keep_fresh(), name="https-certificate")
    log.info("gateway listening on %s", running.url)
    return running


async def serve(settings: Settings) -> None:
    """Serves until SIGTERM or SIGINT, then stops cleanly."""
    running = await start(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopping")
        await running.stop()
        log.info("stopped")
