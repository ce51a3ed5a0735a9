"""Settings read once from the environment."""

from __future__ import annotations

import resource

import pytest

from gateway.config import Settings, default_max_connections
from shop_common.process import ConfigError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.listen == "127.0.0.1:8080"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.backends == {
        "shop.user.v1.UserService": "127.0.0.1:50051",
        "shop.order.v1.OrderService": "127.0.0.1:50052",
    }
    assert settings.max_body_bytes == 4 * 1024 * 1024
    assert settings.timeout_seconds == 10.0
    assert settings.max_timeout_seconds == 60.0
    assert settings.admin_listen == "127.0.0.1:9093"
    assert settings.access_log is True


def test_everything_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "GATEWAY_LISTEN": "[::1]:0",
            "GATEWAY_USER_SVC_ADDR": "users:1",
            "GATEWAY_ORDER_SVC_ADDR": "orders:2",
            "GATEWAY_MAX_BODY_BYTES": "1000",
            "GATEWAY_TIMEOUT_SECONDS": "2.5",
            "GATEWAY_MAX_TIMEOUT_SECONDS": "30",
            "SHOP_GRACE_SECONDS": "1",
            "SHOP_LOG_LEVEL": "debug",
            "GATEWAY_ACCESS_LOG": "false",
        }
    )
    assert (settings.host, settings.port) == ("::1", 0)
    assert set(settings.backends.values()) == {"users:1", "orders:2"}
    assert settings.max_body_bytes == 1000
    assert settings.timeout_seconds == 2.5
    assert settings.max_timeout_seconds == 30.0
    assert settings.grace_seconds == 1.0
    assert settings.log_level == "DEBUG"
    assert settings.access_log is False


def test_per_caller_limits_default() -> None:
    settings = Settings.from_env({})
    assert (settings.rate_limit_per_second, settings.rate_limit_burst) == (50.0, 100)
    assert settings.rate_limit_max_callers == 100_000
    assert settings.max_streams_per_caller == 8
    # What the dataclass gives code that builds its settings is the same.
    defaults = Settings(backends={})
    assert (defaults.rate_limit_per_second, defaults.rate_limit_burst) == (50.0, 100)
    assert (defaults.rate_limit_max_callers, defaults.max_streams_per_caller) == (100_000, 8)


def test_per_caller_limits_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "GATEWAY_RATE_LIMIT_PER_SECOND": " 2.5 ",
            "GATEWAY_RATE_LIMIT_BURST": "1e1",
            "GATEWAY_RATE_LIMIT_MAX_CALLERS": "500",
            "GATEWAY_MAX_STREAMS_PER_CALLER": "3",
        }
    )
    assert (settings.rate_limit_per_second, settings.rate_limit_burst) == (2.5, 10)
    assert (settings.rate_limit_max_callers, settings.max_streams_per_caller) == (500, 3)


@pytest.mark.parametrize("burst", ["0", "7"])
def test_a_rate_of_0_turns_the_rate_limit_off_whatever_the_burst(burst: str) -> None:
    env = {"GATEWAY_RATE_LIMIT_PER_SECOND": "0", "GATEWAY_RATE_LIMIT_BURST": burst}
    assert Settings.from_env(env).rate_limit_per_second == 0


def test_the_cap_is_never_below_the_default_deadline() -> None:
    settings = Settings.from_env({"GATEWAY_TIMEOUT_SECONDS": "90"})
    assert settings.max_timeout_seconds == 90.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_LISTEN", "8080"),
        ("GATEWAY_USER_SVC_ADDR", "nowhere"),
        ("GATEWAY_MAX_BODY_BYTES", "1.5"),
        ("GATEWAY_MAX_BODY_BYTES", "0"),
        ("GATEWAY_TIMEOUT_SECONDS", "0"),
        ("GATEWAY_TIMEOUT_SECONDS", "soon"),
        ("GATEWAY_MAX_CONNECTIONS", "0"),
        ("GATEWAY_MAX_CONNECTIONS", "10.5"),
        ("GATEWAY_IDLE_SECONDS", "0"),
        ("GATEWAY_HEAD_SECONDS", "-1"),
        ("GATEWAY_BODY_SECONDS", "inf"),
        ("GATEWAY_MAX_HEAD_BYTES", "100"),
        ("GATEWAY_MAX_URL_BYTES", "many"),
        ("GATEWAY_RATE_LIMIT_PER_SECOND", "-1"),
        ("GATEWAY_RATE_LIMIT_PER_SECOND", "inf"),
        ("GATEWAY_RATE_LIMIT_PER_SECOND", "fast"),
        ("GATEWAY_RATE_LIMIT_BURST", "2.5"),
        ("GATEWAY_RATE_LIMIT_BURST", "-1"),
        ("GATEWAY_RATE_LIMIT_BURST", "0"),  # with a rate: nothing would ever pass
        ("GATEWAY_RATE_LIMIT_MAX_CALLERS", "0"),
        ("GATEWAY_MAX_STREAMS_PER_CALLER", "0"),
        ("GATEWAY_MAX_STREAMS_PER_CALLER", "1.5"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_connection_limits_and_deadlines_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "GATEWAY_MAX_CONNECTIONS": "20",
            "GATEWAY_IDLE_SECONDS": "0.5",
            "GATEWAY_HEAD_SECONDS": "2",
            "GATEWAY_BODY_SECONDS": "3.5",
            "GATEWAY_MAX_HEAD_BYTES": "16384",
            "GATEWAY_MAX_URL_BYTES": "4096",
        }
    )
    assert settings.max_connections == 20
    assert (settings.idle_seconds, settings.head_seconds, settings.body_seconds) == (0.5, 2, 3.5)
    assert (settings.max_head_bytes, settings.max_url_bytes) == (16384, 4096)


def test_connection_defaults_leave_a_quarter_of_the_open_file_limit() -> None:
    settings = Settings.from_env({})
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert settings.max_connections == default_max_connections()
    assert 0 < settings.max_connections <= soft * 3 // 4
    assert (settings.idle_seconds, settings.head_seconds, settings.body_seconds) == (5, 10, 30)
    assert (settings.max_head_bytes, settings.max_url_bytes) == (64 * 1024, 8 * 1024)


def test_the_connection_cap_must_be_below_the_open_file_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    with pytest.raises(ConfigError, match=r"GATEWAY_MAX_CONNECTIONS.*open-file limit"):
        Settings.from_env({"GATEWAY_MAX_CONNECTIONS": str(soft)})


def test_the_url_limit_must_fit_in_the_head_limit() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_MAX_URL_BYTES"):
        Settings.from_env({"GATEWAY_MAX_HEAD_BYTES": "2048", "GATEWAY_MAX_URL_BYTES": "4096"})
