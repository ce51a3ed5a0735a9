"""The gateway's settings: read once from the environment into a frozen object."""

from __future__ import annotations

import math
import pathlib
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from google.protobuf.descriptor import FileDescriptor

from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from shop_common.process import (
    ConfigError,
    LogFormat,
    address,
    address_or_off,
    flag,
    log_format,
    log_level,
    number,
    optional,
    target,
    text,
)
from shop_common.security import AuthMode, SecuritySettings
from shop_common.telemetry import TracingSettings

MIB = 1024 * 1024
KIB = 1024


def default_max_connections() -> int:
    """Three quarters of the open-file limit (`RLIMIT_NOFILE`, soft): the other quarter
    (256 of the usual 1,024) stays for the backend channels, log files, the listening socket,
    and the connections being refused at the cap, which hold a descriptor for a moment. An
    unlimited or huge limit counts as 65,536."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft > 65_536:
        soft = 65_536
    return max(1, soft * 3 // 4)


def services_of(file: FileDescriptor, addr: str) -> dict[str, str]:
    """Every service of a proto file, by full name, served at the target `addr`."""
    return {service.full_name: addr for service in file.services_by_name.values()}


@dataclass(frozen=True, slots=True)
class Settings:
    backends: Mapping[str, str]
    """gRPC service full name → the gRPC target of the backend serving it (`host:port`,
    `dns:///name:port`, `ipv4:a:p,b:p`…, calls going round robin over every address it
    resolves to); only these are routed."""
    listen: str = "127.0.0.1:8080"
    admin_listen: str | None = None
    """The admin HTTP port serving `/metrics` (`GATEWAY_ADMIN_LISTEN`, 127.0.0.1:9093 unless
    set; empty: metrics off). None here: off."""
    tracing: TracingSettings = field(default_factory=TracingSettings)
    """Where spans go (the `OTEL_*` variables; `service.name` gateway by default); off here."""
    max_body_bytes: int = 4 * MIB
    """Larger request bodies get 413 before they are parsed."""
    timeout_seconds: float = 10.0
    """Deadline of a unary call that comes without `Grpc-Timeout`."""
    max_timeout_seconds: float = 60.0
    """Cap on a client's `Grpc-Timeout`."""
    grace_seconds: float = 5.0
    """On stop, how long in-flight requests may finish."""
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT
    """`SHOP_LOG_FORMAT`: readable text lines, or one JSON object per line."""
    access_log: bool = True
    """One INFO line per request on the `gateway.access` logger (`GATEWAY_ACCESS_LOG`):
    writing it costs tens of µs a request, more than the metrics."""
    strict: bool = False
    """Refuse unknown JSON fields and query parameters, a body on a body-less route, and a
    field given both in the path and the body (by default the first two are ignored)."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call from a browser (`*` for any); none: no CORS headers."""
    sse_heartbeat_seconds: float = 15.0
    """How often an idle Server-Sent Events stream gets a comment line, to keep it open."""
    proto_names: bool = False
    """Print response fields by their proto names (`display_name`) instead of camelCase."""
    max_connections: int = field(default_factory=default_max_connections)
    """Open client connections at most; one more is answered 503 (`Retry-After`) and closed."""
    idle_seconds: float = 5.0
    """A kept-alive connection with no request begun for this long is closed."""
    head_seconds: float = 10.0
    """A request head (request line and headers) must be complete this long after the
    connection opened or, on a kept-alive connection, after its first byte: else 408 (a
    connection that sent nothing is closed without an answer)."""
    body_seconds: float = 30.0
    """A request body must be complete this long after its head: else 408, and no call."""
    max_head_bytes: int = 64 * KIB
    """Larger request heads (request line and headers) get 431."""
    max_url_bytes: int = 8 * KIB
    """Longer request targets (path and query) get 414."""
    rate_limit_per_second: float = 50.0
    """Requests one caller may make per second, sustained (a token bucket per caller: its
    verified subject, else its IP address); one more is answered 429. 0: no rate limit."""
    rate_limit_burst: int = 100
    """Requests one caller may make at once (the bucket's size)."""
    rate_limit_max_callers: int = 100_000
    """Callers whose buckets are kept (about 200 bytes each); past it, the least recently
    seen caller's is dropped."""
    max_streams_per_caller: int = 8
    """Streams (watches) one caller may have open through the gateway; one more: 429."""
    security: SecuritySettings = field(default_factory=SecuritySettings)
    """Who callers are (`SHOP_AUTH`): in jwt mode tokens are verified here too, so that a bad
    one is refused early; `security.tls` is the gateway's identity towards the services."""
    docs: bool = True
    """`/docs` and `/openapi.json` served (by default in dev mode only)."""
    console: bool = True
    """The live console served at `/console` (by default in dev mode only)."""
    tls_cert_file: pathlib.Path | None = None
    """HTTPS on the gateway's own listener: its certificate chain (PEM), and key."""
    tls_key_file: pathlib.Path | None = None
    server_names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Backend target → the name its certificate must carry (with TLS towards the services),
    whatever the target: a host dialed, a list of addresses, a headless Service's name."""
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
        user_addr = target(env, "GATEWAY_USER_SVC_ADDR", "127.0.0.1:50051")
        order_addr = target(env, "GATEWAY_ORDER_SVC_ADDR", "127.0.0.1:50052")
        max_body = number(env, "GATEWAY_MAX_BODY_BYTES", float(4 * MIB), minimum=1)
        if not max_body.is_integer():
            raise ConfigError(f"GATEWAY_MAX_BODY_BYTES={max_body!r} is not a whole number")
        timeout = _positive(env, "GATEWAY_TIMEOUT_SECONDS", 10.0)
        max_head = _whole(env, "GATEWAY_MAX_HEAD_BYTES", 64 * KIB, minimum=1024)
        max_url = _whole(env, "GATEWAY_MAX_URL_BYTES", 8 * KIB, minimum=16)
        if max_url > max_head:
            raise ConfigError(
                f"GATEWAY_MAX_URL_BYTES={max_url} is more than GATEWAY_MAX_HEAD_BYTES={max_head}"
            )
        rate, burst = _rate_limit(env)
        security = SecuritySettings.from_env(env)
        listen = address(env, "GATEWAY_LISTEN", "127.0.0.1:8080")
        security.check_listen(listen, "GATEWAY_LISTEN")
        cert, key = optional(env, "GATEWAY_TLS_CERT_FILE"), optional(env, "GATEWAY_TLS_KEY_FILE")
        if (cert is None) != (key is None):
            raise ConfigError("GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE go together")
        names = {
            order_addr: text(env, "GATEWAY_ORDER_SVC_TLS_NAME", "order-svc"),
            user_addr: text(env, "GATEWAY_USER_SVC_TLS_NAME", "user-svc"),
        }
        return cls(
            backends=MappingProxyType(
                services_of(user_pb2.DESCRIPTOR, user_addr)
                | services_of(order_pb2.DESCRIPTOR, order_addr)
            ),
            listen=listen,
            admin_listen=address_or_off(env, "GATEWAY_ADMIN_LISTEN", "127.0.0.1:9093"),
            tracing=TracingSettings.from_env(env, "gateway"),
            max_body_bytes=int(max_body),
            timeout_seconds=timeout,
            max_timeout_seconds=max(timeout, number(env, "GATEWAY_MAX_TIMEOUT_SECONDS", 60.0)),
            grace_seconds=number(env, "SHOP_GRACE_SECONDS", 5.0),
            log_level=log_level(env),
            log_format=log_format(env),
            access_log=flag(env, "GATEWAY_ACCESS_LOG", True),
            strict=flag(env, "GATEWAY_STRICT", False),
            cors_origins=_origins(text(env, "GATEWAY_CORS_ORIGINS", "")),
            sse_heartbeat_seconds=_positive(env, "GATEWAY_SSE_HEARTBEAT_SECONDS", 15.0),
            proto_names=flag(env, "GATEWAY_PROTO_NAMES", False),
            max_connections=_max_connections(env),
            idle_seconds=_positive(env, "GATEWAY_IDLE_SECONDS", 5.0),
            head_seconds=_positive(env, "GATEWAY_HEAD_SECONDS", 10.0),
            body_seconds=_positive(env, "GATEWAY_BODY_SECONDS", 30.0),
            max_head_bytes=max_head,
            max_url_bytes=max_url,
            rate_limit_per_second=rate,
            rate_limit_burst=burst,
            rate_limit_max_callers=_whole(
                env, "GATEWAY_RATE_LIMIT_MAX_CALLERS", 100_000, minimum=1
            ),
            max_streams_per_caller=_whole(env, "GATEWAY_MAX_STREAMS_PER_CALLER", 8, minimum=1),
            security=security,
            docs=flag(env, "GATEWAY_DOCS", security.mode is AuthMode.DEV),
            console=flag(env, "GATEWAY_CONSOLE", security.mode is AuthMode.DEV),
            tls_cert_file=pathlib.Path(cert) if cert else None,
            tls_key_file=pathlib.Path(key) if key else None,
            server_names=MappingProxyType(names),
        )

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def https(self) -> bool:
        return self.tls_cert_file is not None


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = number(env, name, default)
    if value <= 0 or not math.isfinite(value):
        raise ConfigError(f"{name} must be a positive number")
    return value


def _whole(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    value = number(env, name, float(default), minimum=minimum)
    if not value.is_integer():
        raise ConfigError(f"{name}={value!r} is not a whole number")
    return int(value)


def _rate_limit(env: Mapping[str, str]) -> tuple[float, int]:
    """`GATEWAY_RATE_LIMIT_PER_SECOND` (0: off) and `GATEWAY_RATE_LIMIT_BURST`."""
    rate = number(env, "GATEWAY_RATE_LIMIT_PER_SECOND", 50.0, minimum=0)
    burst = _whole(env, "GATEWAY_RATE_LIMIT_BURST", 100, minimum=0)
    if rate > 0 and burst < 1:
        raise ConfigError(
            "GATEWAY_RATE_LIMIT_BURST must be at least 1 while GATEWAY_RATE_LIMIT_PER_SECOND "
            "is set (0 turns the rate limit off)"
        )
    return rate, burst


def _max_connections(env: Mapping[str, str]) -> int:
    """`GATEWAY_MAX_CONNECTIONS`, below the open-file limit: at the limit, accepting fails
    and every client waits, which the cap is there to prevent."""
    value = _whole(env, "GATEWAY_MAX_CONNECTIONS", default_max_connections(), minimum=1)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and value >= soft:
        raise ConfigError(
            f"GATEWAY_MAX_CONNECTIONS={value} is not below the open-file limit ({soft}): "
            "lower it, or raise the limit (ulimit -n)"
        )
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
