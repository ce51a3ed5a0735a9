"""Wires the order service together: storage, the user directory, use cases, server."""

from __future__ import annotations

import grpc

from order_svc.config import Settings
from order_svc.schema import MIGRATIONS
from order_svc.service import OrderUseCases, utc_now
from order_svc.servicer import OrderServicer
from order_svc.store import order_store
from order_svc.users import CHANNEL_OPTIONS, GrpcUserDirectory
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop_common import periodic, server
from shop_common.db import Database
from shop_common.migrations import migrate
from shop_common.page_token import PageTokens, load_or_create_key

NAME = "order_svc"
DESCRIPTOR = order_pb2.DESCRIPTOR.services_by_name["OrderService"]


async def start(settings: Settings) -> server.RunningServer:
    """Migrates the database and starts serving; the caller stops the result."""
    db = Database(settings.database_url)
    channel = grpc.aio.insecure_channel(settings.user_svc_addr, options=CHANNEL_OPTIONS)

    async def close() -> None:
        await channel.close(None)
        await db.close()

    try:
        await migrate(db, MIGRATIONS)
        key = load_or_create_key(
            settings.common.page_token_key, settings.common.data_dir / f"{NAME}.page_token.key"
        )
        users = GrpcUserDirectory(channel, settings.user_svc_timeout_seconds)
        store = order_store(db)
        servicer = OrderServicer(OrderUseCases(store, users, PageTokens(key)))

        def register(grpc_server: grpc.aio.Server) -> None:
            order_pb2_grpc.add_OrderServiceServicer_to_server(servicer, grpc_server)

        running = await server.start(NAME, settings.listen, [server.Service(DESCRIPTOR, register)])
    except BaseException:
        await close()
        raise
    running.on_stop.extend([periodic.every(3600, lambda: store.expire_keys(utc_now())), close])
    return running
