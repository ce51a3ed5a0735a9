"""`SHOP_AUTH` and what it decides, read from the environment of each process: development
identity only on loopback addresses (unless said otherwise), never in jwt mode; reflection
and the docs on in dev mode, off in jwt mode unless enabled."""

from __future__ import annotations

import pathlib

import pytest

import gateway.config
import order_svc.config
import user_svc.app
from shop_common.process import ConfigError
from shop_common.security import AuthMode, SecuritySettings, is_loopback
from shop_common.serving import ServerLimits, Service, start_server
from tests import tokens


@pytest.fixture
def jwt_env(tmp_path: pathlib.Path) -> dict[str, str]:
    jwks = tmp_path / "jwks.json"
    tokens.write_jwks(jwks, tokens.new_signing_key())
    return {
        "SHOP_AUTH": "jwt",
        "SHOP_JWT_ISSUER": tokens.ISSUER,
        "SHOP_JWT_AUDIENCE": tokens.AUDIENCE,
        "SHOP_JWT_JWKS": str(jwks),
    }


def test_dev_is_the_default_with_reflection_and_docs() -> None:
    users = user_svc.app.settings({})
    assert users.common.security == SecuritySettings(mode=AuthMode.DEV)
    assert users.common.reflection
    assert users.health_listen is None
    assert gateway.config.Settings.from_env({}).docs


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "[::]:50051", "10.1.2.3:1", "svc:1"])
def test_dev_mode_refuses_a_non_loopback_listen(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"USER_SVC_LISTEN.*SHOP_AUTH"):
        user_svc.app.settings({"USER_SVC_LISTEN": listen})
    with pytest.raises(ConfigError, match="GATEWAY_LISTEN"):
        gateway.config.Settings.from_env({"GATEWAY_LISTEN": listen})


def test_dev_mode_on_any_address_must_be_asked_for() -> None:
    env = {"ORDER_SVC_LISTEN": "0.0.0.0:50052", "SHOP_AUTH_DEV_ANY_ADDRESS": "true"}
    assert order_svc.config.Settings.read(env).listen == "0.0.0.0:50052"
    env["GATEWAY_LISTEN"] = "0.0.0.0:8080"
    assert gateway.config.Settings.from_env(env).listen == "0.0.0.0:8080"


@pytest.mark.parametrize("listen", ["127.0.0.1:1", "127.9.9.9:1", "localhost:1", "[::1]:1"])
def test_loopback_addresses(listen: str) -> None:
    assert is_loopback(listen)


def test_jwt_mode_listens_anywhere_with_reflection_and_docs_off(jwt_env: dict[str, str]) -> None:
    env = {**jwt_env, "USER_SVC_LISTEN": "0.0.0.0:50051", "GATEWAY_LISTEN": "0.0.0.0:8080"}
    users = user_svc.app.settings(env)
    assert users.common.security.mode is AuthMode.JWT
    assert users.common.security.jwt == tokens.settings(jwt_env["SHOP_JWT_JWKS"])
    assert not users.common.reflection
    assert not gateway.config.Settings.from_env(env).docs
    env |= {"SHOP_REFLECTION": "true", "GATEWAY_DOCS": "true"}
    assert user_svc.app.settings(env).common.reflection
    assert gateway.config.Settings.from_env(env).docs


def test_jwt_mode_has_the_console_off_unless_enabled(jwt_env: dict[str, str]) -> None:
    assert gateway.config.Settings.from_env({}).console
    assert not gateway.config.Settings.from_env(jwt_env).console
    assert gateway.config.Settings.from_env({**jwt_env, "GATEWAY_CONSOLE": "true"}).console


def test_nothing_turns_development_identity_on_in_jwt_mode(jwt_env: dict[str, str]) -> None:
    env = {**jwt_env, "SHOP_AUTH_DEV_ANY_ADDRESS": "true"}
    security = user_svc.app.settings(env).common.security
    assert security.mode is AuthMode.JWT
    assert not security.dev_any_address
    with pytest.raises(ConfigError):
        SecuritySettings(mode=AuthMode.DEV, jwt=security.jwt)


@pytest.mark.parametrize("value", ["JWT", " jwt "])
def test_the_mode_is_read_in_any_case(jwt_env: dict[str, str], value: str) -> None:
    assert user_svc.app.settings({**jwt_env, "SHOP_AUTH": value}).common.security.jwt


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="SHOP_AUTH"):
        user_svc.app.settings({"SHOP_AUTH": "none"})


def test_jwt_mode_needs_the_token_settings() -> None:
    with pytest.raises(ConfigError, match="SHOP_JWT_ISSUER"):
        user_svc.app.settings({"SHOP_AUTH": "jwt"})


def test_service_subjects_are_read(jwt_env: dict[str, str]) -> None:
    env = {**jwt_env, "SHOP_SERVICE_SUBJECTS": " order_svc = sa:order , billing=sa:billing"}
    subjects = user_svc.app.settings(env).common.security.service_subjects
    assert dict(subjects) == {"sa:order": "order_svc", "sa:billing": "billing"}
    for bad in ("order_svc", "=x", "a=s,b=s"):
        with pytest.raises(ConfigError, match="SHOP_SERVICE_SUBJECTS"):
            user_svc.app.settings({**jwt_env, "SHOP_SERVICE_SUBJECTS": bad})


def test_the_order_service_needs_an_identity_in_jwt_mode_without_tls(
    jwt_env: dict[str, str], tmp_path: pathlib.Path
) -> None:
    with pytest.raises(ConfigError, match="ORDER_SVC_SERVICE_TOKEN_FILE"):
        order_svc.config.Settings.read(jwt_env)
    env = {**jwt_env, "ORDER_SVC_SERVICE_TOKEN_FILE": str(tmp_path / "token")}
    assert order_svc.config.Settings.read(env).service_token_file == tmp_path / "token"
    tls = {
        "SHOP_TLS_CA_FILE": "ca.pem",
        "SHOP_TLS_CERT_FILE": "order_svc.pem",
        "SHOP_TLS_KEY_FILE": "order_svc-key.pem",
    }
    assert order_svc.config.Settings.read({**jwt_env, **tls}).user_svc_tls_name == "user-svc"
    with pytest.raises(ConfigError, match="ORDER_SVC_SERVICE_TOKEN_FILE"):
        order_svc.config.Settings.read({**env, **tls})


def test_the_health_port_is_read() -> None:
    assert user_svc.app.settings({"USER_SVC_HEALTH_LISTEN": "0.0.0.0:8086"}).health_listen
    with pytest.raises(ConfigError, match="USER_SVC_HEALTH_LISTEN"):
        user_svc.app.settings({"USER_SVC_HEALTH_LISTEN": "8086"})
    orders = order_svc.config.Settings.read({"ORDER_SVC_HEALTH_LISTEN": "0.0.0.0:8087"})
    assert orders.health_listen == "0.0.0.0:8087"
    assert user_svc.app.settings({"ORDER_SVC_HEALTH_LISTEN": "0.0.0.0:8087"}).health_listen is None


def test_the_gateways_https_files_go_together() -> None:
    settings = gateway.config.Settings.from_env(
        {"GATEWAY_TLS_CERT_FILE": "gw.pem", "GATEWAY_TLS_KEY_FILE": "gw-key.pem"}
    )
    assert settings.https
    with pytest.raises(ConfigError, match="GATEWAY_TLS_KEY_FILE"):
        gateway.config.Settings.from_env({"GATEWAY_TLS_CERT_FILE": "gw.pem"})


async def test_a_server_in_dev_mode_will_not_start_on_a_non_loopback_address() -> None:
    with pytest.raises(ConfigError, match="SHOP_AUTH"):
        await start_server("user_svc", "0.0.0.0:0", list[Service](), limits=ServerLimits())
