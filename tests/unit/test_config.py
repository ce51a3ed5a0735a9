"""Settings from the environment: defaults, and a clear error for each unusable value."""

from __future__ import annotations

import pathlib

import pytest

import order_svc.config
import user_svc.app
from shop_common.feed import FeedSettings
from shop_common.process import ConfigError, address
from shop_common.serving import Common

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
        "ORDER_SVC_USER_SVC_ADDR": "users.internal:443",
        "ORDER_SVC_USER_SVC_TIMEOUT_SECONDS": "0.25",
        "ORDER_SVC_DATABASE_URL": "postgresql://u@db/orders",
    }
    settings = order_svc.config.Settings.read(env)
    assert settings.common == Common(pathlib.Path("/srv/shop"), "DEBUG", 0.0, 2.5, KEY)
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
