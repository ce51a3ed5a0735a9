"""The channel to the user service, with the order service's own identity, and whether a
user exists and who owns it, asked of the user service with a deadline-bound call made as
the order service itself (never with its caller's credentials)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.domain import DeadlineExceeded, FailedPrecondition, Unavailable
from shop_common.process import REQUEST_ID_KEY, current_request_id
from shop_common.security import TokenFile, open_channel, service_token_interceptors
from shop_common.serving import CallMetadata, Deadline, ServerLimits, Stopper
from shop_common.telemetry import GrpcClientMetrics, Tracing, client_interceptors

if TYPE_CHECKING:
    from order_svc.config import Settings

# Reads may be retried by gRPC itself, on UNAVAILABLE only, with throttling.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "shop.user.v1.UserService", "method": "GetUser"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    }
)


def channel_options(limits: ServerLimits) -> list[tuple[str, str | int]]:
    """The channel to the user service, within its limits (every service reads the same
    `SHOP_GRPC_*`): messages, and keepalive pings the server permits; it carries one watch
    (the user feed) and GetUser calls, which `SHOP_GRPC_MAX_CONCURRENT_STREAMS` leaves room
    for."""
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _SERVICE_CONFIG),
        *limits.client_options(),
    ]


async def open_user_service_channel(
    settings: Settings, metrics: GrpcClientMetrics | None = None, tracing: Tracing | None = None
) -> tuple[grpc.aio.Channel, Stopper]:
    """The one channel to the user service (GetUser and the WatchUsers follower share it),
    and what closes it; its calls recorded in `metrics` if given, its unary calls made within
    a trace traced with `tracing` if given. The order service calls
    as itself, never with its callers' tokens: with TLS by its certificate (the user
    service's must name `user_svc_tls_name`; the channel is rebuilt when the files change);
    in jwt mode without TLS by its own token (`service_token_file`, read again when it
    changes)."""
    options = channel_options(settings.common.limits)
    tls = settings.common.security.tls
    interceptors: list[Any] = []  # grpc-stubs: ClientInterceptor is a placeholder
    if metrics is not None:  # first: it sees the call as the caller does
        interceptors += client_interceptors(metrics)
    if tracing is not None:  # a CLIENT span per call, its context sent as `traceparent`
        interceptors += tracing.client_interceptors()
    token_task: asyncio.Task[None] | None = None
    if settings.service_token_file is not None and tls is None:
        token = TokenFile(settings.service_token_file)
        await token.refresh()  # no token, no start: every call would be anonymous
        token_task = asyncio.create_task(token.keep_fresh(), name="service-token")
        interceptors += service_token_interceptors(token)
    try:
        channel = await open_channel(
            settings.user_svc_addr,
            options,
            tls,
            server_name=settings.user_svc_tls_name,
            interceptors=interceptors,
        )
    except BaseException:
        if token_task is not None:
            token_task.cancel()
        raise

    async def close() -> None:
        if token_task is not None:
            token_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await token_task
        await channel.close(None)

    return channel, close


@dataclass(frozen=True, slots=True)
class FoundUser:
    revision: int
    subject: str | None
    """The subject that owns the user; None when none does."""


class UserDirectory(Protocol):
    async def find(self, user_id: str, deadline: Deadline) -> FoundUser | None:
        """The user's current revision and owner; None if there is no such user."""


def user_not_found(user_id: str, *, deleted: bool = False) -> FailedPrecondition:
    return FailedPrecondition(
        f"user {user_id} {'was deleted' if deleted else 'does not exist'}",
        reason="USER_NOT_FOUND",
        metadata={"user_id": user_id},
    )


class GrpcUserDirectory:
    def __init__(
        self, channel: grpc.aio.Channel, max_timeout: float, credentials: CallMetadata
    ) -> None:
        self._stub = user_pb2_grpc.UserServiceStub(channel)
        self._max_timeout = max_timeout
        self._credentials = credentials

    async def find(self, user_id: str, deadline: Deadline) -> FoundUser | None:
        timeout = deadline.timeout(self._max_timeout)
        metadata = self._credentials()
        request_id = current_request_id()
        if request_id is not None:  # one request id across the hops, in every service's logs
            metadata = (*metadata, (REQUEST_ID_KEY, request_id))
        try:
            found = await self._stub.GetUser(
                user_pb2.GetUserRequest(id=user_id), timeout=timeout, metadata=metadata
            )
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise DeadlineExceeded(
                    "the user service did not answer in time", reason="USER_SERVICE_TIMEOUT"
                ) from None
            raise Unavailable(
                f"the user service could not check the user: {code.name}",
                reason="USER_SERVICE_UNAVAILABLE",
            ) from None
        # The etag is the user's revision; an etag that is not (another implementation of the
        # contract) gives 0, which any event of the feed about the user supersedes.
        etag = found.user.etag
        return FoundUser(int(etag) if etag.isdigit() else 0, found.user.subject or None)
