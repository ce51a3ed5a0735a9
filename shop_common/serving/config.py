"""The services' settings, read from the environment once, at start-up, into frozen objects.

Nothing else in the code base reads `os.environ`; `env` reads one variable.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from shop_common.feed import FeedSettings
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
    text,
    whole,
)
from shop_common.security import AuthMode, SecuritySettings
from shop_common.serving.limits import ServerLimits
from shop_common.telemetry import TracingSettings


@dataclass(frozen=True, slots=True)
class Common:
    """Settings every service shares."""

    data_dir: pathlib.Path
    log_level: str
    grace_seconds: float
    """How long in-flight calls may run on after SIGTERM."""
    drain_seconds: float
    """How long a stopping service reports NOT_SERVING before it stops accepting calls."""
    page_token_key: str | None = field(repr=False)
    """Hex key that signs page tokens; set it when several replicas serve one database.
    (Secrets are left out of the settings' repr, should one be logged.)"""
    feed: FeedSettings = field(default_factory=FeedSettings)
    limits: ServerLimits = field(default_factory=ServerLimits)
    """What one client may take of the gRPC server: message sizes, streams, pings."""
    security: SecuritySettings = field(default_factory=SecuritySettings)
    """Who callers are (`SHOP_AUTH`: dev or jwt) and TLS."""
    reflection: bool = True
    """Server reflection served (by default in dev mode only)."""
    log_format: LogFormat = LogFormat.TEXT
    """`SHOP_LOG_FORMAT`: readable text lines, or one JSON object per line."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Common:
        key = optional(env, "SHOP_PAGE_TOKEN_KEY")
        if key is not None:
            try:
                if len(bytes.fromhex(key)) < 16:
                    raise ValueError
            except ValueError:
                raise ConfigError("SHOP_PAGE_TOKEN_KEY must be at least 32 hex digits") from None
        feed, limits = _feed_settings(env), ServerLimits.from_env(env)
        security = SecuritySettings.from_env(env)
        if limits.max_concurrent_streams <= feed.max_watches_per_connection:
            # A connection whose streams were all watches could make no other call: the
            # order service's channel to the user service carries a watch and its GetUser.
            raise ConfigError(
                f"SHOP_GRPC_MAX_CONCURRENT_STREAMS ({limits.max_concurrent_streams}) must be "
                f"more than SHOP_MAX_WATCHES_PER_CONNECTION ({feed.max_watches_per_connection})"
            )
        return cls(
            data_dir=pathlib.Path(text(env, "SHOP_DATA_DIR", "data")),
            log_level=log_level(env),
            grace_seconds=number(env, "SHOP_GRACE_SECONDS", 5.0),
            drain_seconds=number(env, "SHOP_DRAIN_SECONDS", 0.0),
            page_token_key=key,
            feed=feed,
            limits=limits,
            security=security,
            reflection=flag(env, "SHOP_REFLECTION", security.mode is AuthMode.DEV),
            log_format=log_format(env),
        )

    def sqlite_url(self, service: str) -> str:
        return f"sqlite:///{self.data_dir / f'{service}.db'}"


def _feed_settings(env: Mapping[str, str]) -> FeedSettings:
    return FeedSettings(
        retention_seconds=number(env, "SHOP_FEED_RETENTION_SECONDS", 86_400.0),
        progress_seconds=number(env, "SHOP_WATCH_PROGRESS_SECONDS", 5.0, minimum=0.01),
        buffer_revisions=int(number(env, "SHOP_WATCH_BUFFER_REVISIONS", 4_096, minimum=1)),
        poll_seconds=number(env, "SHOP_FEED_POLL_SECONDS", 1.0, minimum=0.001),
        max_watches_per_connection=whole(env, "SHOP_MAX_WATCHES_PER_CONNECTION", 900, minimum=1),
        max_watches_per_caller=whole(env, "SHOP_MAX_WATCHES_PER_CALLER", 32, minimum=1),
        max_watches=whole(env, "SHOP_MAX_WATCHES", 10_000, minimum=1),
    )


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """What every service reads: where it listens, its database, the shared settings."""

    listen: str
    database_url: str = field(repr=False)
    """Its password, if any, left out of the repr."""
    common: Common
    health_listen: str | None = field(default=None, kw_only=True)
    """A plaintext port serving health only (for probes that speak no TLS); None: none."""
    admin_listen: str | None = field(default=None, kw_only=True)
    """The admin HTTP port serving `/metrics`; None: metrics off (none recorded)."""
    channelz: bool = field(default=False, kw_only=True)
    """gRPC's channelz served on the service's port, for admins (`<NAME>_CHANNELZ`)."""
    tracing: TracingSettings = field(default_factory=TracingSettings, kw_only=True)
    """Where spans go (`OTEL_*`); off by default."""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], name: str, default_port: int, *, admin_port: int
    ) -> ServiceSettings:
        """`<NAME>_LISTEN`, `<NAME>_DATABASE_URL` (SQLite under the data dir by default),
        `<NAME>_HEALTH_LISTEN` (none by default), `<NAME>_ADMIN_LISTEN` (`/metrics`;
        127.0.0.1:`admin_port` by default, empty: metrics off), `<NAME>_CHANNELZ` (channelz
        on the service's port; false by default) and the `OTEL_*` variables (traces, off
        unless they ask; `service.name` is `name` by default)."""
        common = Common.from_env(env)
        prefix = name.upper()
        listen = address(env, f"{prefix}_LISTEN", f"127.0.0.1:{default_port}")
        common.security.check_listen(listen, f"{prefix}_LISTEN")
        health = f"{prefix}_HEALTH_LISTEN"
        return cls(
            listen=listen,
            database_url=text(env, f"{prefix}_DATABASE_URL", common.sqlite_url(name)),
            common=common,
            health_listen=address(env, health, "") if optional(env, health) else None,
            admin_listen=address_or_off(env, f"{prefix}_ADMIN_LISTEN", f"127.0.0.1:{admin_port}"),
            channelz=flag(env, f"{prefix}_CHANNELZ", False),
            tracing=TracingSettings.from_env(env, name),
        )
