"""Wires the order service together: its table, the view of users and its follower, the
user service's client, use cases and servicer."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2

from order_svc import schema, user_feed
from order_svc.config import NAME, Settings
from order_svc.ownership import Ownership
from order_svc.service import OrderUseCases
from order_svc.servicer import OrderServicer
from order_svc.store import order_table
from order_svc.user_client import GrpcUserDirectory, open_user_service_channel
from order_svc.user_view import UserView
from order_svc.view_progress import ViewProgress
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2
from shop_common.domain import utc_now
from shop_common.security import AuthMode
from shop_common.serving import (
    Parts,
    Program,
    RunningServer,
    Service,
    Stopper,
    Wired,
    channel_credentials,
    development_service_credentials,
    start_admin_port,
    start_service,
)
from shop_common.telemetry import GrpcClientMetrics, ViewMetrics, start_tracing

DESCRIPTOR = order_pb2.DESCRIPTOR.services_by_name["OrderService"]
USERS = user_pb2.DESCRIPTOR.services_by_name["UserService"]
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _wiring(settings: Settings, channel: grpc.aio.Channel) -> Callable[[Parts], Wired]:
    def wire(parts: Parts) -> Wired:
        orders = order_table(parts.changelog)
        view = UserView(parts.uow, orders, utc_now)
        # The order service calls the user service as itself: one provider for every call.
        # In jwt mode the channel carries its identity (certificate or service token).
        credentials = (
            development_service_credentials(NAME)
            if settings.common.security.mode is AuthMode.DEV
            else channel_credentials
        )
        users = GrpcUserDirectory(channel, settings.user_svc_timeout_seconds, credentials)
        use_cases = OrderUseCases(parts.uow, orders, view, Ownership(), users, parts.pages(orders))
        servicer = OrderServicer(use_cases, parts.feed)

        async def follow_users(running: RunningServer) -> Stopper:
            async def set_health(current: bool) -> None:
                status = _SERVING if current else _NOT_SERVING
                await running.health.set(user_feed.HEALTH_NAME, status)

            await set_health(False)
            admin = running.admin
            metrics = None if admin is None else ViewMetrics(admin.registry, "users")
            follower = user_feed.UserFeedFollower(
                channel,
                view,
                set_health,
                credentials,
                progress=ViewProgress(metrics),
                tracing=parts.tracing,
            )
            return user_feed.start(follower)

        def register(server: grpc.aio.Server) -> None:
            order_pb2_grpc.add_OrderServiceServicer_to_server(servicer, server)

        return Wired(Service(DESCRIPTOR, register), started=[follow_users])

    return wire


async def start(settings: Settings) -> RunningServer:
    """Migrates the database and starts serving; the caller stops the result."""
    tracing = start_tracing(settings.tracing)
    admin = await start_admin_port(NAME, settings)
    try:
        # Its calls to the user service are counted in its own registry (grpc_client_*),
        # and traced by its own tracing.
        client_metrics = None if admin is None else GrpcClientMetrics(admin.registry, [USERS])
        channel, close_channel = await open_user_service_channel(settings, client_metrics, tracing)
    except BaseException:
        if admin is not None:
            await admin.stop()
        if tracing is not None:
            await tracing.shutdown()
        raise
    try:
        running = await start_service(
            NAME,
            settings,
            schema,
            _wiring(settings, channel),
            feed="orders",
            admin=admin,
            tracing=tracing,
        )
    except BaseException:
        await close_channel()
        raise
    running.on_stop.append(close_channel)  # after the database: nothing calls out then
    return running


PROGRAM = Program(NAME, Settings.read, start, schema.MIGRATIONS)
