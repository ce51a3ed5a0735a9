"""Reading one variable of the environment: typed, trimmed, with a clear error naming it."""

from __future__ import annotations

import math
from collections.abc import Mapping


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


def whole(
    env: Mapping[str, str], name: str, default: int, *, minimum: int = 0, maximum: int | None = None
) -> int:
    """A whole number (`1e6` and `1_000_000` are fine; `1.5` is not)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    value = number(env, name, float(default), minimum=minimum)
    if not value.is_integer():
        raise ConfigError(f"{name}={raw!r} is not a whole number")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={raw!r} must be at most {maximum}")
    return int(value)


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


def address_or_off(env: Mapping[str, str], name: str, default: str) -> str | None:
    """A `host:port` that is `default` when unset and None (switched off) when set empty."""
    if name not in env:
        return default
    return address(env, name, "") if env[name].strip() else None
