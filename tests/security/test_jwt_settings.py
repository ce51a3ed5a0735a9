"""Token settings from the environment: required, defaults, and what is refused."""

from __future__ import annotations

import pathlib

import pytest

from shop_common.process import ConfigError
from shop_common.security import JwtSettings

REQUIRED = {
    "SHOP_JWT_ISSUER": "https://issuer.example",
    "SHOP_JWT_AUDIENCE": "shop",
    "SHOP_JWT_JWKS": "/etc/shop/jwks.json",
}


def test_the_defaults() -> None:
    settings = JwtSettings.from_env(REQUIRED)
    assert settings == JwtSettings(
        issuer="https://issuer.example",
        audience="shop",
        jwks="/etc/shop/jwks.json",
        algorithms=("RS256", "ES256", "EdDSA"),
        leeway_seconds=30.0,
        admin_scope="shop.admin",
        jwks_ca_file=None,
        jwks_cache_seconds=300.0,
        jwks_refetch_seconds=30.0,
        jwks_timeout_seconds=5.0,
    )
    assert settings.jwks_file == pathlib.Path("/etc/shop/jwks.json")
    assert settings.jwks_url is None


def test_every_setting() -> None:
    settings = JwtSettings.from_env(
        {
            **REQUIRED,
            "SHOP_JWT_JWKS": "https://issuer.example/.well-known/jwks.json",
            "SHOP_JWT_ALGORITHMS": "ES256, PS256",
            "SHOP_JWT_LEEWAY_SECONDS": "5",
            "SHOP_JWT_ADMIN_SCOPE": "shop:admin",
            "SHOP_JWT_JWKS_CA_FILE": "/etc/ssl/issuer-ca.pem",
            "SHOP_JWT_JWKS_CACHE_SECONDS": "600",
            "SHOP_JWT_JWKS_REFETCH_SECONDS": "10",
            "SHOP_JWT_JWKS_TIMEOUT_SECONDS": "2",
        }
    )
    assert settings.algorithms == ("ES256", "PS256")
    assert settings.leeway_seconds == 5.0
    assert settings.admin_scope == "shop:admin"
    assert settings.jwks_url == "https://issuer.example/.well-known/jwks.json"
    assert settings.jwks_file is None
    assert settings.jwks_ca_file == pathlib.Path("/etc/ssl/issuer-ca.pem")
    assert (settings.jwks_cache_seconds, settings.jwks_refetch_seconds) == (600.0, 10.0)
    assert settings.jwks_timeout_seconds == 2.0


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_issuer_audience_and_keys_are_required(missing: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        JwtSettings.from_env(env)


@pytest.mark.parametrize("algorithms", ["HS256", "RS256,HS512", "none", "ES256 none", ","])
def test_hmac_and_none_cannot_be_allowed(algorithms: str) -> None:
    with pytest.raises(ConfigError, match="SHOP_JWT_ALGORITHMS"):
        JwtSettings.from_env({**REQUIRED, "SHOP_JWT_ALGORITHMS": algorithms})


@pytest.mark.parametrize(
    "url", ["http://issuer.example/jwks.json", "http://10.0.0.1/jwks.json", "https:///jwks"]
)
def test_keys_in_the_clear_only_from_this_machine(url: str) -> None:
    with pytest.raises(ConfigError, match="SHOP_JWT_JWKS"):
        JwtSettings.from_env({**REQUIRED, "SHOP_JWT_JWKS": url})


@pytest.mark.parametrize(
    "url", ["http://localhost:8080/jwks.json", "http://127.0.0.1/j", "http://[::1]:9/j"]
)
def test_a_loopback_http_url_is_accepted(url: str) -> None:
    assert JwtSettings.from_env({**REQUIRED, "SHOP_JWT_JWKS": url}).jwks_url == url


@pytest.mark.parametrize("leeway", ["301", "-1", "soon"])
def test_a_leeway_beyond_five_minutes_is_refused(leeway: str) -> None:
    with pytest.raises(ConfigError, match="SHOP_JWT_LEEWAY_SECONDS"):
        JwtSettings.from_env({**REQUIRED, "SHOP_JWT_LEEWAY_SECONDS": leeway})


@pytest.mark.parametrize("scope", ["shop.admin shop.root", " "])
def test_the_admin_scope_is_one_scope(scope: str) -> None:
    with pytest.raises(ConfigError, match="SHOP_JWT_ADMIN_SCOPE"):
        JwtSettings(issuer="i", audience="a", jwks="f", admin_scope=scope)
