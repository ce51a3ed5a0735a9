"""Wires the user service together: its table, use cases and servicer."""

from __future__ import annotations

from collections.abc import Mapping

from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.serving import (
    Parts,
    Program,
    RunningServer,
    Service,
    ServiceSettings,
    Wired,
    start_service,
)
from user_svc import schema
from user_svc.service import UserUseCases
from user_svc.servicer import UserServicer
from user_svc.store import user_table

NAME = "user_svc"
DESCRIPTOR = user_pb2.DESCRIPTOR.services_by_name["UserService"]


def settings(env: Mapping[str, str]) -> ServiceSettings:
    """`USER_SVC_LISTEN` (127.0.0.1:50051), `USER_SVC_DATABASE_URL`, `USER_SVC_ADMIN_LISTEN`
    (127.0.0.1:9091), `USER_SVC_CHANNELZ` (false), and the shared ones."""
    return ServiceSettings.from_env(env, NAME, 50051, admin_port=9091)


def _wire(parts: Parts) -> Wired:
    users = user_table(parts.changelog)
    use_cases = UserUseCases(parts.uow, users, parts.pages(users))
    servicer = UserServicer(use_cases, parts.feed)
    return Wired(
        Service(
            DESCRIPTOR,
            lambda server: user_pb2_grpc.add_UserServiceServicer_to_server(servicer, server),
        )
    )


async def start(settings: ServiceSettings) -> RunningServer:
    """Migrates the database and starts serving; the caller stops the result."""
    return await start_service(NAME, settings, schema, _wire, feed="users")


PROGRAM = Program(NAME, settings, start, schema.MIGRATIONS)
