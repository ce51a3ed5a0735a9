"""Settings from the environment: defaults, and a clear error for each unusable value."""

from __future__ import annotations

import pathlib

import pytest

import gateway.config
import order_svc.config
import order_svc.user_client
import user_svc.app
from shop_common.feed import FeedSettings
from shop_common.process import ConfigError, address, whole
from shop_common.security import SecuritySettings
from shop_common.serving import Common, ServerLimits

KEY = "00112233445566778899aabbccddeeff"


def test_defaults() -> None:
    users = user_svc.app.settings({})
    orders = order_svc.config.Settings.read({})
    assert users.listen == "127.0.0.1:50051"
    assert users.database_url == "sqlite:///data/user_svc.db"
    assert orders.listen == "127.0.0.1:50052"
    assert orders.user_svc_addr == "127.0.0.1:50051"
    assert orders.user_svc_timeout_seconds == 2.0
    assert orders.common == Common(pathlib.Path("data"), "INFO", 5.0, 0.0, None)


def test_values_are_read_and_trimmed() -> None:
    env = {
        "SHOP_DATA_DIR": " /srv/shop ",
        "SHOP_LOG_LEVEL": "debug",
        "SHOP_GRACE_SECONDS": "0",
        "SHOP_DRAIN_SECONDS": "2.5",
        "SHOP_PAGE_TOKEN_KEY": KEY,
        "ORDER_SVC_LISTEN": "0.0.0.0:0",
        "SHOP_AUTH_DEV_ANY_ADDRESS": "true",
        "ORDER_SVC_USER_SVC_ADDR": "users.internal:443",
        "ORDER_SVC_USER_SVC_TIMEOUT_SECONDS": "0.25",
        "ORDER_SVC_DATABASE_URL": "postgresql://u@db/orders",
    }
    settings = order_svc.config.Settings.read(env)
    assert settings.common == Common(
        pathlib.Path("/srv/shop"),
        "DEBUG",
        0.0,
        2.5,
        KEY,
        security=SecuritySettings(dev_any_address=True),
    )
    assert settings.listen == "0.0.0.0:0"
    assert settings.user_svc_addr == "users.internal:443"
    assert settings.user_svc_timeout_seconds == 0.25
    assert settings.database_url == "postgresql://u@db/orders"
    assert settings.common.sqlite_url("x") == "sqlite:////srv/shop/x.db"


@pytest.mark.parametrize(
    "value", ["50051", "localhost", ":50051", "localhost:", "host:http", "host:65536", "host:-1"]
)
def test_bad_address_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="USER_SVC_LISTEN"):
        user_svc.app.settings({"USER_SVC_LISTEN": value})


@pytest.mark.parametrize("value", ["[::1]:50051", "127.0.0.1:0", "svc:65535"])
def test_good_address_is_accepted(value: str) -> None:
    assert address({"X": value}, "X", "unused:1") == value


@pytest.mark.parametrize("value", ["two", "1,5", "1.5s", "0x10", "--1"])
def test_bad_number_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="SHOP_GRACE_SECONDS"):
        Common.from_env({"SHOP_GRACE_SECONDS": value})


def test_number_below_its_minimum_is_refused() -> None:
    with pytest.raises(ConfigError, match="ORDER_SVC_USER_SVC_TIMEOUT_SECONDS"):
        order_svc.config.Settings.read({"ORDER_SVC_USER_SVC_TIMEOUT_SECONDS": "0"})
    with pytest.raises(ConfigError, match="SHOP_DRAIN_SECONDS"):
        Common.from_env({"SHOP_DRAIN_SECONDS": "-1"})


@pytest.mark.parametrize("value", ["nan", "NaN", "-nan"])
def test_not_a_number_is_refused(value: str) -> None:
    # float("nan") parses, and NaN compares false with the minimum: it must still be refused.
    with pytest.raises(ConfigError, match="ORDER_SVC_USER_SVC_TIMEOUT_SECONDS"):
        order_svc.config.Settings.read({"ORDER_SVC_USER_SVC_TIMEOUT_SECONDS": value})


@pytest.mark.parametrize("value", ["abcd", KEY[:-2], "zz" * 16, KEY + "0"])
def test_short_or_malformed_page_token_key_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="SHOP_PAGE_TOKEN_KEY"):
        Common.from_env({"SHOP_PAGE_TOKEN_KEY": value})


def test_feed_settings_default_and_from_env() -> None:
    assert Common.from_env({}).feed == FeedSettings(
        retention_seconds=86_400.0, progress_seconds=5.0, buffer_revisions=4_096, poll_seconds=1.0
    )
    feed = Common.from_env(
        {
            "SHOP_FEED_RETENTION_SECONDS": "600",
            "SHOP_WATCH_PROGRESS_SECONDS": "0.5",
            "SHOP_WATCH_BUFFER_REVISIONS": "64",
            "SHOP_FEED_POLL_SECONDS": "0.25",
        }
    ).feed
    assert feed == FeedSettings(
        retention_seconds=600.0, progress_seconds=0.5, buffer_revisions=64, poll_seconds=0.25
    )
    assert feed.compaction_interval == 300.0
    assert FeedSettings(retention_seconds=10).compaction_interval == 5.0
    assert FeedSettings(retention_seconds=0).compaction_interval == 1.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHOP_WATCH_PROGRESS_SECONDS", "0"),
        ("SHOP_WATCH_BUFFER_REVISIONS", "0"),
        ("SHOP_FEED_POLL_SECONDS", "0"),
        ("SHOP_FEED_RETENTION_SECONDS", "-1"),
        ("SHOP_FEED_RETENTION_SECONDS", "a day"),
    ],
)
def test_unusable_feed_setting_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Common.from_env({name: value})


# -- the gRPC servers' limits ------------------------------------------------------------

MIB = 1024 * 1024


def test_server_limits_default_and_become_grpc_options() -> None:
    limits = Common.from_env({}).limits
    assert limits == ServerLimits()
    assert dict(limits.server_options()) == {
        "grpc.max_receive_message_length": 4 * MIB,
        "grpc.max_send_message_length": 4 * MIB,
        "grpc.max_concurrent_streams": 1000,
        "grpc.http2.min_ping_interval_without_data_ms": 10_000,
        "grpc.http2.max_ping_strikes": 2,
        "grpc.keepalive_permit_without_calls": 1,
        "grpc.keepalive_time_ms": 60_000,
        "grpc.keepalive_timeout_ms": 20_000,
    }  # no idle or age limit: gRPC's default, never
    feed = Common.from_env({}).feed
    assert (feed.max_watches_per_connection, feed.max_watches) == (900, 10_000)


def test_watches_per_caller_default() -> None:
    assert Common.from_env({}).feed.max_watches_per_caller == 32


def test_server_limits_from_env() -> None:
    env = {
        "SHOP_GRPC_MAX_RECEIVE_BYTES": "65536",
        "SHOP_GRPC_MAX_SEND_BYTES": " 8388608 ",
        "SHOP_GRPC_MAX_CONCURRENT_STREAMS": "1e3",
        "SHOP_GRPC_MIN_PING_INTERVAL_SECONDS": "30",
        "SHOP_GRPC_MAX_PING_STRIKES": "0",
        "SHOP_GRPC_PERMIT_KEEPALIVE_WITHOUT_CALLS": "false",
        "SHOP_GRPC_KEEPALIVE_TIME_SECONDS": "7200",
        "SHOP_GRPC_KEEPALIVE_TIMEOUT_SECONDS": "2.5",
        "SHOP_GRPC_MAX_CONNECTION_IDLE_SECONDS": "600",
        "SHOP_GRPC_MAX_CONNECTION_AGE_SECONDS": "300",
        "SHOP_GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS": "15",
        "SHOP_MAX_WATCHES_PER_CONNECTION": "999",
        "SHOP_MAX_WATCHES": "50",
        "SHOP_MAX_WATCHES_PER_CALLER": " 7 ",
    }
    common = Common.from_env(env)
    assert common.limits == ServerLimits(
        max_receive_bytes=65536,
        max_send_bytes=8 * MIB,
        max_concurrent_streams=1000,
        min_ping_interval_seconds=30.0,
        max_ping_strikes=0,
        permit_keepalive_without_calls=False,
        keepalive_time_seconds=7200.0,
        keepalive_timeout_seconds=2.5,
        max_connection_idle_seconds=600.0,
        max_connection_age_seconds=300.0,
        max_connection_age_grace_seconds=15.0,
    )
    assert (common.feed.max_watches_per_connection, common.feed.max_watches) == (999, 50)
    assert common.feed.max_watches_per_caller == 7
    options = dict(common.limits.server_options())
    assert options["grpc.keepalive_permit_without_calls"] == 0
    assert options["grpc.keepalive_timeout_ms"] == 2500
    assert options["grpc.max_connection_idle_ms"] == 600_000
    assert options["grpc.max_connection_age_ms"] == 300_000
    assert options["grpc.max_connection_age_grace_ms"] == 15_000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHOP_GRPC_MAX_RECEIVE_BYTES", "4MiB"),
        ("SHOP_GRPC_MAX_RECEIVE_BYTES", "4"),  # meant MiB, surely: below 64 KiB
        ("SHOP_GRPC_MAX_RECEIVE_BYTES", "65536.5"),
        ("SHOP_GRPC_MAX_RECEIVE_BYTES", "2147483648"),  # gRPC's arguments are C ints
        ("SHOP_GRPC_MAX_SEND_BYTES", "1048576"),  # below a watch response
        ("SHOP_GRPC_MAX_CONCURRENT_STREAMS", "1"),
        ("SHOP_GRPC_MAX_CONCURRENT_STREAMS", "0"),
        ("SHOP_GRPC_MIN_PING_INTERVAL_SECONDS", "-1"),
        ("SHOP_GRPC_MAX_PING_STRIKES", "-1"),
        ("SHOP_GRPC_MAX_PING_STRIKES", "two"),
        ("SHOP_GRPC_PERMIT_KEEPALIVE_WITHOUT_CALLS", "sometimes"),
        ("SHOP_GRPC_KEEPALIVE_TIME_SECONDS", "0.5"),
        ("SHOP_GRPC_KEEPALIVE_TIMEOUT_SECONDS", "0"),
        ("SHOP_GRPC_MAX_CONNECTION_AGE_SECONDS", "3000000"),  # over 24 days in ms
        ("SHOP_GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS", "inf"),
        ("SHOP_GRPC_MAX_CONNECTION_IDLE_SECONDS", "-5"),
        ("SHOP_MAX_WATCHES_PER_CONNECTION", "0"),
        ("SHOP_MAX_WATCHES_PER_CONNECTION", "2.5"),
        ("SHOP_MAX_WATCHES", "0"),
        ("SHOP_MAX_WATCHES_PER_CALLER", "0"),
        ("SHOP_MAX_WATCHES_PER_CALLER", "1.5"),
        ("SHOP_MAX_WATCHES_PER_CALLER", "many"),
    ],
)
def test_unusable_server_limit_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Common.from_env({name: value})


def test_a_connection_full_of_watches_must_still_have_a_stream_for_other_calls() -> None:
    env = {"SHOP_GRPC_MAX_CONCURRENT_STREAMS": "100", "SHOP_MAX_WATCHES_PER_CONNECTION": "100"}
    with pytest.raises(ConfigError, match=r"SHOP_GRPC_MAX_CONCURRENT_STREAMS.*more than"):
        Common.from_env(env)
    env["SHOP_GRPC_MAX_CONCURRENT_STREAMS"] = "101"
    assert Common.from_env(env).limits.max_concurrent_streams == 101


def test_our_own_clients_stay_within_the_servers_limits() -> None:
    """The order service's channel to the user service: it sends what the server receives,
    receives what it sends, and pings no more often than the server permits."""
    assert dict(ServerLimits().client_options()) == {
        "grpc.max_send_message_length": 4 * MIB,
        "grpc.max_receive_message_length": 4 * MIB,
        "grpc.keepalive_time_ms": 30_000,
        "grpc.keepalive_timeout_ms": 10_000,
    }
    strict = ServerLimits(
        max_receive_bytes=MIB, max_send_bytes=16 * MIB, min_ping_interval_seconds=300
    )
    options = dict(strict.client_options())
    assert options["grpc.max_send_message_length"] == MIB
    assert options["grpc.max_receive_message_length"] == 16 * MIB
    assert options["grpc.keepalive_time_ms"] == 600_000
    channel = dict(order_svc.user_client.channel_options(strict))
    assert channel["grpc.keepalive_time_ms"] == 600_000
    assert channel["grpc.enable_retries"] == 1


@pytest.mark.parametrize(("raw", "value"), [("12", 12), (" 1_000 ", 1000), ("1e3", 1000), ("", 7)])
def test_whole_numbers(raw: str, value: int) -> None:
    assert whole({"N": raw}, "N", 7) == value


@pytest.mark.parametrize("raw", ["1.5", "x", "-1", "11"])
def test_whole_number_not_whole_or_out_of_range_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="N="):
        whole({"N": raw}, "N", 7, maximum=10)


def test_admin_ports_default_to_loopback_one_per_process_and_empty_turns_metrics_off() -> None:
    order_env = {"ORDER_SVC_USER_SVC_ADDR": "127.0.0.1:50051"}
    assert user_svc.app.settings({}).admin_listen == "127.0.0.1:9091"
    assert order_svc.config.Settings.read(order_env).admin_listen == "127.0.0.1:9092"
    assert gateway.config.Settings.from_env({}).admin_listen == "127.0.0.1:9093"
    assert user_svc.app.settings({"USER_SVC_ADMIN_LISTEN": ""}).admin_listen is None
    off = {**order_env, "ORDER_SVC_ADMIN_LISTEN": " "}
    assert order_svc.config.Settings.read(off).admin_listen is None
    assert gateway.config.Settings.from_env({"GATEWAY_ADMIN_LISTEN": ""}).admin_listen is None
    free = {"USER_SVC_ADMIN_LISTEN": "127.0.0.1:0"}
    assert user_svc.app.settings(free).admin_listen == "127.0.0.1:0"


@pytest.mark.parametrize("value", ["9091", "localhost", "127.0.0.1:99999", ":9091"])
def test_a_bad_admin_address_is_refused_by_name(value: str) -> None:
    with pytest.raises(ConfigError, match="USER_SVC_ADMIN_LISTEN"):
        user_svc.app.settings({"USER_SVC_ADMIN_LISTEN": value})
    with pytest.raises(ConfigError, match="GATEWAY_ADMIN_LISTEN"):
        gateway.config.Settings.from_env({"GATEWAY_ADMIN_LISTEN": value})


def test_channelz_is_off_unless_a_service_turns_it_on() -> None:
    order_env = {"ORDER_SVC_USER_SVC_ADDR": "127.0.0.1:50051"}
    assert not user_svc.app.settings({}).channelz
    assert not order_svc.config.Settings.read(order_env).channelz
    assert user_svc.app.settings({"USER_SVC_CHANNELZ": "true"}).channelz
    on = {**order_env, "ORDER_SVC_CHANNELZ": "true"}
    assert order_svc.config.Settings.read(on).channelz
    # Each service its own switch.
    assert not order_svc.config.Settings.read({**order_env, "USER_SVC_CHANNELZ": "true"}).channelz
    with pytest.raises(ConfigError, match="USER_SVC_CHANNELZ"):
        user_svc.app.settings({"USER_SVC_CHANNELZ": "maybe"})


def test_no_secret_is_in_the_settings_repr() -> None:
    """Settings logged or shown in a traceback's message say nothing secret."""
    env = {
        "USER_SVC_DATABASE_URL": "postgresql://shop:pw-s3cr3t@db.internal/users",
        "ORDER_SVC_DATABASE_URL": "postgresql://shop:pw-s3cr3t@db.internal/orders",
        "SHOP_PAGE_TOKEN_KEY": KEY,
    }
    users, orders = user_svc.app.settings(env), order_svc.config.Settings.read(env)
    assert users.database_url.endswith("@db.internal/users")
    assert users.common.page_token_key == KEY
    for settings in (users, orders):
        assert "pw-s3cr3t" not in repr(settings)
        assert KEY not in repr(settings)
