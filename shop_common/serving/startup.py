"""What every service does around its own wiring: at start, the database migrated, the
changelog and feed, units of work and page tokens; then the server; on stop, the watches
ended, housekeeping stopped and whatever the wiring opened closed, the database last."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import sqlalchemy as sa

from shop_common.domain import PageTokens, load_or_create_key, utc_now
from shop_common.feed import Feed
from shop_common.serving.config import ServiceSettings
from shop_common.serving.identity import current_limit_key
from shop_common.serving.periodic import every
from shop_common.serving.server import RunningServer, Service, start_server
from shop_common.storage import (
    Changelog,
    ChangelogTables,
    Database,
    IdempotencyStore,
    Migration,
    Pages,
    Resource,
    ResourceTable,
    UnitOfWork,
    kind_of,
    migrate,
)
from shop_common.telemetry import (
    AdminServer,
    FeedMetrics,
    GrpcServerMetrics,
    HealthMetrics,
    StorageMetrics,
    Tracing,
    start_admin,
    start_tracing,
)

R = TypeVar("R", bound=Resource)
log = logging.getLogger(__name__)

KEY_EXPIRY_SECONDS = 3600.0
"""How often idempotency keys past their retention are forgotten."""

Stopper = Callable[[], Awaitable[None]]


class ServiceSchema(Protocol):
    """A service's `schema` module: its tables and their migrations."""

    @property
    def changelog(self) -> ChangelogTables: ...
    @property
    def idempotency_keys(self) -> sa.Table: ...
    @property
    def MIGRATIONS(self) -> Sequence[Migration]: ...  # the module's constant


@dataclass(frozen=True)
class Parts:
    """What a service's wiring is handed."""

    changelog: Changelog
    feed: Feed
    uow: UnitOfWork
    tokens: PageTokens
    closing: contextlib.AsyncExitStack
    """Closed when the service has stopped (or failed to start); the database closes last."""
    tracing: Tracing | None = None
    """The service's tracing, when on (`OTEL_*`)."""

    def pages(self, table: ResourceTable[R]) -> Pages[R]:
        return Pages(self.uow, table, self.tokens)


@dataclass(frozen=True)
class Wired:
    """What a service's wiring gives back: its gRPC service, and what runs once it serves."""

    service: Service
    started: Sequence[Callable[[RunningServer], Awaitable[Stopper]]] = field(default=())


async def start_admin_port(name: str, settings: ServiceSettings) -> AdminServer | None:
    """The service's admin port (`/metrics`), if metrics are on (`<NAME>_ADMIN_LISTEN`)."""
    if settings.admin_listen is None:
        return None
    return await start_admin(name, settings.admin_listen)


async def start_service(
    name: str,
    settings: ServiceSettings,
    schema: ServiceSchema,
    wire: Callable[[Parts], Wired],
    *,
    feed: str,
    admin: AdminServer | None = None,
    tracing: Tracing | None = None,
) -> RunningServer:
    """Migrates the database and starts serving; the caller stops the result. `feed` names
    the service's change feed in its metrics (`users`). The admin port and tracing are
    started here (if on), unless the caller started them already (to record its own client
    calls in them); either way, they stop with the service, tracing last (it exports what
    the stop did)."""
    if tracing is None:
        tracing = start_tracing(settings.tracing)
    try:
        if admin is None:
            admin = await start_admin_port(name, settings)
        try:
            running = await _start_service(name, settings, schema, wire, feed, admin, tracing)
        except BaseException:
            if admin is not None:
                await admin.stop()
            raise
    except BaseException:
        if tracing is not None:
            await tracing.shutdown()
        raise
    if admin is not None:
        running.on_stop.append(admin.stop)
    if tracing is not None:
        running.tracing = tracing
        running.on_stop.append(tracing.shutdown)
    return running


async def _start_service(
    name: str,
    settings: ServiceSettings,
    schema: ServiceSchema,
    wire: Callable[[Parts], Wired],
    feed_name: str,
    admin: AdminServer | None,
    tracing: Tracing | None,
) -> RunningServer:
    registry = None if admin is None else admin.registry
    storage_metrics, feed_metrics = None, None
    if registry is not None:
        storage_metrics = StorageMetrics(registry, kind_of(settings.database_url))
        feed_metrics = FeedMetrics(registry, feed_name)
    db = Database(settings.database_url, storage_metrics, tracing=tracing)
    changelog = Changelog(schema.changelog)
    feed = Feed(
        db, changelog, settings.common.feed, caller_key=current_limit_key, metrics=feed_metrics
    )
    closing = contextlib.AsyncExitStack()
    closing.push_async_callback(db.close)
    try:
        await migrate(db, schema.MIGRATIONS)
        common = settings.common
        key = load_or_create_key(common.page_token_key, common.data_dir / f"{name}.page_token.key")
        keys = IdempotencyStore(schema.idempotency_keys)
        uow = UnitOfWork(db, changelog, keys, committed=feed.committed)
        await feed.start()
        wired = wire(Parts(changelog, feed, uow, PageTokens(key), closing, tracing))
        running = await start_server(
            name,
            settings.listen,
            [wired.service],
            limits=common.limits,
            security=common.security,
            reflection_on=common.reflection,
            health_listen=settings.health_listen,
            metrics=None if registry is None else GrpcServerMetrics(registry),
            channelz_on=settings.channelz,
            tracing=tracing,
        )
        running.admin = admin  # before `started`: what starts then may record in it
        if registry is not None:
            HealthMetrics(registry, running.serving_statuses)
    except BaseException:
        await feed.close()
        await closing.aclose()
        raise
    running.on_stopping.append(feed.close)
    running.on_stop.extend(
        [
            every(KEY_EXPIRY_SECONDS, lambda: uow.expire_keys(utc_now())),
            every(common.feed.compaction_interval, feed.compact),
            closing.aclose,
        ]
    )
    try:
        for started in wired.started:
            running.on_stop.insert(0, await started(running))
    except BaseException:
        await running.stop(grace=0)  # what has started stops with it
        raise
    return running
