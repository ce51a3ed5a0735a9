"""Wires the order service together: storage, feed, the view of users and its follower,
use cases, server."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2

from order_svc import schema, user_feed
from order_svc.config import Settings
from order_svc.service import OrderUseCases
from order_svc.servicer import OrderServicer
from order_svc.store import order_table
from order_svc.user_view import UserView
from order_svc.users import CHANNEL_OPTIONS, GrpcUserDirectory
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop_common import periodic, server
from shop_common.changelog import Changelog
from shop_common.clock import utc_now
from shop_common.db import Database
from shop_common.feed import Feed
from shop_common.idempotency import IdempotencyStore
from shop_common.migrations import migrate
from shop_common.page_token import PageTokens, load_or_create_key
from shop_common.unit_of_work import UnitOfWork

NAME = "order_svc"
DESCRIPTOR = order_pb2.DESCRIPTOR.services_by_name["OrderService"]
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def start(settings: Settings) -> server.RunningServer:
    """Migrates the database and starts serving; the caller stops the result."""
    db = Database(settings.database_url)
    changelog = Changelog(schema.changelog)
    feed = Feed(db, changelog, settings.common.feed)
    channel = grpc.aio.insecure_channel(settings.user_svc_addr, options=CHANNEL_OPTIONS)

    async def close() -> None:
        await channel.close(None)
        await db.close()

    try:
        await migrate(db, schema.MIGRATIONS)
        key = load_or_create_key(
            settings.common.page_token_key, settings.common.data_dir / f"{NAME}.page_token.key"
        )
        keys = IdempotencyStore(schema.idempotency_keys)
        uow = UnitOfWork(db, changelog, keys, committed=feed.committed)
        orders = order_table(changelog)
        view = UserView(uow, orders, utc_now)
        users = GrpcUserDirectory(channel, settings.user_svc_timeout_seconds)
        await feed.start()
        use_cases = OrderUseCases(uow, orders, view, users, PageTokens(key))
        servicer = OrderServicer(use_cases, feed)

        def register(grpc_server: grpc.aio.Server) -> None:
            order_pb2_grpc.add_OrderServiceServicer_to_server(servicer, grpc_server)

        running = await server.start(NAME, settings.listen, [server.Service(DESCRIPTOR, register)])
    except BaseException:
        await feed.close()
        await close()
        raise

    async def set_health(current: bool) -> None:
        await running.health.set(user_feed.HEALTH_NAME, _SERVING if current else _NOT_SERVING)

    await set_health(False)
    stop_follower = user_feed.start(user_feed.UserFeedFollower(channel, view, set_health))
    running.on_stopping.append(feed.close)
    running.on_stop.extend(
        [
            stop_follower,
            periodic.every(3600, lambda: uow.expire_keys(utc_now())),
            periodic.every(settings.common.feed.compaction_interval, feed.compact),
            close,
        ]
    )
    return running
