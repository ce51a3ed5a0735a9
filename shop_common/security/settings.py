"""How a process establishes who calls it (`SHOP_AUTH`) and over what transport, read once
from the environment: the identity mode, the token settings in jwt mode, TLS, and which token
subjects are services of the system.

- `dev` (the default; `make run`): plaintext unless TLS is configured, and development
  identity: a bearer is believed without verification and a call without credentials acts as
  an admin. Only on loopback addresses, unless `SHOP_AUTH_DEV_ANY_ADDRESS=true` says
  otherwise.
- `jwt`: every bearer is verified (`SHOP_JWT_*` required); a call without one is anonymous,
  or the service its client certificate names. No setting brings development identity back.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from shop_common.process import ConfigError, flag, optional, text
from shop_common.security.jwt_settings import JwtSettings
from shop_common.security.tls_settings import TlsSettings


class AuthMode(enum.StrEnum):
    DEV = "dev"
    JWT = "jwt"


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """What every process (the gateway's included) reads to know its callers."""

    mode: AuthMode = AuthMode.DEV
    jwt: JwtSettings | None = None
    """How bearer tokens are verified; set exactly in jwt mode."""
    tls: TlsSettings | None = None
    """This process's TLS identity, for serving and for calling; None: plaintext."""
    service_subjects: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Token subject → the service of the system it is (jwt mode, where TLS does not name
    the calling service): `SHOP_SERVICE_SUBJECTS=order_svc=<sub>`."""
    dev_any_address: bool = False
    """Development identity allowed on a non-loopback address (never in jwt mode)."""

    def __post_init__(self) -> None:
        if (self.mode is AuthMode.JWT) != (self.jwt is not None):
            raise ConfigError("token settings are for SHOP_AUTH=jwt, and it needs them")

    @property
    def verifies_tokens(self) -> bool:
        return self.mode is AuthMode.JWT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SecuritySettings:
        raw = text(env, "SHOP_AUTH", AuthMode.DEV.value).lower()
        try:
            mode = AuthMode(raw)
        except ValueError:
            raise ConfigError(f"SHOP_AUTH={raw!r} is not dev or jwt") from None
        tls = TlsSettings.from_env(env)
        if mode is AuthMode.DEV:
            return cls(
                mode=mode,
                tls=tls,
                dev_any_address=flag(env, "SHOP_AUTH_DEV_ANY_ADDRESS", False),
            )
        return cls(
            mode=mode,
            jwt=JwtSettings.from_env(env),
            tls=tls,
            service_subjects=_service_subjects(optional(env, "SHOP_SERVICE_SUBJECTS") or ""),
        )

    def check_listen(self, listen: str, variable: str) -> None:
        """Development identity trusts anyone who can connect: loopback only, unless
        `SHOP_AUTH_DEV_ANY_ADDRESS=true`."""
        if self.mode is AuthMode.DEV and not self.dev_any_address and not is_loopback(listen):
            raise ConfigError(
                f"{variable}={listen!r} is not a loopback address, and SHOP_AUTH=dev believes "
                "any caller: set SHOP_AUTH=jwt (production), or SHOP_AUTH_DEV_ANY_ADDRESS=true "
                "if this network is yours alone"
            )


def is_loopback(listen: str) -> bool:
    """Whether `host:port` listens on this machine only (`localhost`, 127.0.0.0/8, `[::1]`)."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _service_subjects(value: str) -> Mapping[str, str]:
    """`order_svc=<sub>[,<service>=<sub>...]` → {sub: service}."""
    found: dict[str, str] = {}
    for pair in value.split(","):
        if not pair.strip():
            continue
        service, sep, subject = (part.strip() for part in pair.partition("="))
        if not sep or not service or not subject:
            raise ConfigError(f"SHOP_SERVICE_SUBJECTS: {pair.strip()!r} is not <service>=<sub>")
        if subject in found:
            raise ConfigError(f"SHOP_SERVICE_SUBJECTS: {subject!r} is named twice")
        found[subject] = service
    return MappingProxyType(found)
