"""Reading configuration from the environment: once, at start-up, into frozen objects.

Each service defines its own settings dataclass with a `from_env` built on these
helpers; nothing else in the code base reads `os.environ`.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(ValueError):
    """A setting is present but unusable; the message names the variable."""


def text(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, "").strip() or default


def optional(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """`true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), any case."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not true or false")


def address(env: Mapping[str, str], name: str, default: str) -> str:
    """A `host:port` (port 0 picks a free one)."""
    value = text(env, name, default)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{name}={value!r} is not host:port")
    return value


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """How a service serves its change feed."""

    retention_seconds: float = 86_400.0
    """History older than this is compacted (the newest revision always stays)."""
    progress_seconds: float = 5.0
    """An idle watch that asked for it gets a progress notification this often."""
    buffer_revisions: int = 4_096
    """Revisions queued for one watcher before it is cut off as too slow."""
    poll_seconds: float = 1.0
    """The changelog is read at least this often, even when nothing wakes the feed."""
    memory_revisions: int = 8_192
    """Recent revisions kept in memory, so that a watcher a little behind needs no query."""

    @property
    def compaction_interval(self) -> float:
        """How often history is compacted: often enough to keep near the retention."""
        return min(300.0, max(1.0, self.retention_seconds / 2))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FeedSettings:
        return cls(
            retention_seconds=number(env, "SHOP_FEED_RETENTION_SECONDS", 86_400.0),
            progress_seconds=number(env, "SHOP_WATCH_PROGRESS_SECONDS", 5.0, minimum=0.01),
            buffer_revisions=int(number(env, "SHOP_WATCH_BUFFER_REVISIONS", 4_096, minimum=1)),
            poll_seconds=number(env, "SHOP_FEED_POLL_SECONDS", 1.0, minimum=0.001),
        )


@dataclass(frozen=True, slots=True)
class Common:
    """Settings every service shares."""

    data_dir: pathlib.Path
    log_level: str
    grace_seconds: float
    """How long in-flight calls may run on after SIGTERM."""
    drain_seconds: float
    """How long a stopping service reports NOT_SERVING before it stops accepting calls."""
    page_token_key: str | None
    """Hex key that signs page tokens; set it when several replicas serve one database."""
    feed: FeedSettings = FeedSettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Common:
        key = optional(env, "SHOP_PAGE_TOKEN_KEY")
        if key is not None:
            try:
                if len(bytes.fromhex(key)) < 16:
                    raise ValueError
            except ValueError:
                raise ConfigError("SHOP_PAGE_TOKEN_KEY must be at least 32 hex digits") from None
        return cls(
            data_dir=pathlib.Path(text(env, "SHOP_DATA_DIR", "data")),
            log_level=text(env, "SHOP_LOG_LEVEL", "INFO").upper(),
            grace_seconds=number(env, "SHOP_GRACE_SECONDS", 5.0),
            drain_seconds=number(env, "SHOP_DRAIN_SECONDS", 0.0),
            page_token_key=key,
            feed=FeedSettings.from_env(env),
        )

    def sqlite_url(self, service: str) -> str:
        return f"sqlite:///{self.data_dir / f'{service}.db'}"
