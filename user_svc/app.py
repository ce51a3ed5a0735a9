"""Wires the user service together: storage, feed, use cases, servicer, server."""

from __future__ import annotations

import grpc

from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common import periodic, server
from shop_common.changelog import Changelog
from shop_common.clock import utc_now
from shop_common.db import Database
from shop_common.feed import Feed
from shop_common.idempotency import IdempotencyStore
from shop_common.migrations import migrate
from shop_common.page_token import PageTokens, load_or_create_key
from shop_common.unit_of_work import UnitOfWork
from user_svc import schema
from user_svc.config import Settings
from user_svc.service import UserUseCases
from user_svc.servicer import UserServicer
from user_svc.store import user_table

NAME = "user_svc"
DESCRIPTOR = user_pb2.DESCRIPTOR.services_by_name["UserService"]


async def start(settings: Settings) -> server.RunningServer:
    """Migrates the database and starts serving; the caller stops the result."""
    db = Database(settings.database_url)
    changelog = Changelog(schema.changelog)
    feed = Feed(db, changelog, settings.common.feed)
    try:
        await migrate(db, schema.MIGRATIONS)
        key = load_or_create_key(
            settings.common.page_token_key, settings.common.data_dir / f"{NAME}.page_token.key"
        )
        keys = IdempotencyStore(schema.idempotency_keys)
        uow = UnitOfWork(db, changelog, keys, committed=feed.committed)
        await feed.start()
        use_cases = UserUseCases(uow, user_table(changelog), PageTokens(key))
        servicer = UserServicer(use_cases, feed)

        def register(grpc_server: grpc.aio.Server) -> None:
            user_pb2_grpc.add_UserServiceServicer_to_server(servicer, grpc_server)

        running = await server.start(NAME, settings.listen, [server.Service(DESCRIPTOR, register)])
    except BaseException:
        await feed.close()
        await db.close()
        raise
    running.on_stopping.append(feed.close)
    running.on_stop.extend(
        [
            periodic.every(3600, lambda: uow.expire_keys(utc_now())),
            periodic.every(settings.common.feed.compaction_interval, feed.compact),
            db.close,
        ]
    )
    return running
