"""The gateway's settings: read once from the environment into a frozen object."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from google.protobuf.descriptor import FileDescriptor

from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from shop_common.process import ConfigError, address, flag, number, text

MIB = 1024 * 1024


def services_of(file: FileDescriptor, addr: str) -> dict[str, str]:
    """Every service of a proto file, by full name, served at `addr`."""
    return {service.full_name: addr for service in file.services_by_name.values()}


@dataclass(frozen=True, slots=True)
class Settings:
    backends: Mapping[str, str]
    """gRPC service full name → `host:port` of the backend serving it; only these are routed."""
    listen: str = "127.0.0.1:8080"
    max_body_bytes: int = 4 * MIB
    """Larger request bodies get 413 before they are parsed."""
    timeout_seconds: float = 10.0
    """Deadline of a unary call that comes without `Grpc-Timeout`."""
    max_timeout_seconds: float = 60.0
    """Cap on a client's `Grpc-Timeout`."""
    grace_seconds: float = 5.0
    """On stop, how long in-flight requests may finish."""
    log_level: str = "INFO"
    strict: bool = False
    """Refuse unknown JSON fields and query parameters, a body on a body-less route, and a
    field given both in the path and the body (by default the first two are ignored)."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call from a browser (`*` for any); none: no CORS headers."""
    sse_heartbeat_seconds: float = 15.0
    """How often an idle Server-Sent Events stream gets a comment line, to keep it open."""
    proto_names: bool = False
    """Print response fields by their proto names (`display_name`) instead of camelCase."""
    channel_options: tuple[tuple[str, int], ...] = field(
        default=(
            ("grpc.max_receive_message_length", 4 * MIB),
            ("grpc.max_send_message_length", 4 * MIB),
            # Watch streams stay open for long; the backends permit pings every 10 s.
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_timeout_ms", 20_000),
            # No retry machinery on every call (its cost is in the README): a
            # proxy passes UNAVAILABLE on and lets its client decide.
            ("grpc.enable_retries", 0),
        )
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        user_addr = address(env, "GATEWAY_USER_SVC_ADDR", "127.0.0.1:50051")
        order_addr = address(env, "GATEWAY_ORDER_SVC_ADDR", "127.0.0.1:50052")
        max_body = number(env, "GATEWAY_MAX_BODY_BYTES", float(4 * MIB), minimum=1)
        if not max_body.is_integer():
            raise ConfigError(f"GATEWAY_MAX_BODY_BYTES={max_body!r} is not a whole number")
        timeout = _positive(env, "GATEWAY_TIMEOUT_SECONDS", 10.0)
        return cls(
            backends=MappingProxyType(
                services_of(user_pb2.DESCRIPTOR, user_addr)
                | services_of(order_pb2.DESCRIPTOR, order_addr)
            ),
            listen=address(env, "GATEWAY_LISTEN", "127.0.0.1:8080"),
            max_body_bytes=int(max_body),
            timeout_seconds=timeout,
            max_timeout_seconds=max(timeout, number(env, "GATEWAY_MAX_TIMEOUT_SECONDS", 60.0)),
            grace_seconds=number(env, "SHOP_GRACE_SECONDS", 5.0),
            log_level=text(env, "SHOP_LOG_LEVEL", "INFO").upper(),
            strict=flag(env, "GATEWAY_STRICT", False),
            cors_origins=_origins(text(env, "GATEWAY_CORS_ORIGINS", "")),
            sse_heartbeat_seconds=_positive(env, "GATEWAY_SSE_HEARTBEAT_SECONDS", 15.0),
            proto_names=flag(env, "GATEWAY_PROTO_NAMES", False),
        )

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = number(env, name, default)
    if value <= 0 or not math.isfinite(value):
        raise ConfigError(f"{name} must be a positive number")
    return value


def _origins(value: str) -> tuple[str, ...]:
    """`GATEWAY_CORS_ORIGINS`: comma-separated origins (`https://app.example`), or `*`."""
    origins = tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and "://" not in origin:
            raise ConfigError(
                f"GATEWAY_CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port]) or *"
            )
    return origins
