"""Where a process's TLS identity is: the CA it trusts, its certificate and key, the SPIFFE
trust domain of its peers. Read once from the environment (`SHOP_TLS_*`); TLS is off when no
file is named."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from dataclasses import dataclass

from shop_common.process import ConfigError, flag, optional, text

TRUST_DOMAIN = "shop.local"
_FILES = ("SHOP_TLS_CA_FILE", "SHOP_TLS_CERT_FILE", "SHOP_TLS_KEY_FILE")


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """One identity, for serving and for calling: the same certificate does both."""

    ca_file: pathlib.Path
    """PEM CA certificates: peers' certificates must chain to one of them."""
    cert_file: pathlib.Path
    """PEM certificate chain, leaf first; its URI SAN `spiffe://<trust domain>/<name>` is
    the identity peers see."""
    key_file: pathlib.Path
    trust_domain: str = TRUST_DOMAIN
    """Peers' SPIFFE ids must be in this trust domain."""
    require_client_cert: bool = True
    """A server refuses a client without a certificate from the CA (mutual TLS)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TlsSettings | None:
        """None (plaintext) when none of the three files is named; all three or none."""
        named = {name: optional(env, name) for name in _FILES}
        if not any(named.values()):
            return None
        missing = [name for name, value in named.items() if value is None]
        if missing:
            raise ConfigError(f"{', '.join(missing)} must be set too: TLS needs all three files")
        ca, cert, key = (pathlib.Path(str(named[name])) for name in _FILES)
        return cls(
            ca_file=ca,
            cert_file=cert,
            key_file=key,
            trust_domain=text(env, "SHOP_TLS_TRUST_DOMAIN", TRUST_DOMAIN),
            require_client_cert=flag(env, "SHOP_TLS_REQUIRE_CLIENT_CERT", True),
        )
