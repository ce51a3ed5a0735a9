"""TLS settings from the environment: off unless files are named, all three or none."""

from __future__ import annotations

import pathlib

import pytest

from shop_common.process import ConfigError
from shop_common.security import TlsSettings

FILES = {
    "SHOP_TLS_CA_FILE": "certs/ca.pem",
    "SHOP_TLS_CERT_FILE": "certs/user_svc.pem",
    "SHOP_TLS_KEY_FILE": "certs/user_svc-key.pem",
}


def test_without_files_tls_is_off() -> None:
    assert TlsSettings.from_env({"SHOP_TLS_TRUST_DOMAIN": "bank.example"}) is None


def test_the_defaults() -> None:
    assert TlsSettings.from_env(FILES) == TlsSettings(
        ca_file=pathlib.Path("certs/ca.pem"),
        cert_file=pathlib.Path("certs/user_svc.pem"),
        key_file=pathlib.Path("certs/user_svc-key.pem"),
        trust_domain="shop.local",
        require_client_cert=True,
    )


def test_every_setting() -> None:
    settings = TlsSettings.from_env(
        {
            **FILES,
            "SHOP_TLS_TRUST_DOMAIN": "bank.example",
            "SHOP_TLS_REQUIRE_CLIENT_CERT": "false",
        }
    )
    assert settings is not None
    assert settings.trust_domain == "bank.example"
    assert not settings.require_client_cert


@pytest.mark.parametrize("missing", sorted(FILES))
def test_all_three_files_or_none(missing: str) -> None:
    with pytest.raises(ConfigError, match=missing):
        TlsSettings.from_env({k: v for k, v in FILES.items() if k != missing})
