"""How bearer tokens are verified: who issues them, for whom, signed how, with which keys, and
what makes a caller an admin. Read once from the environment (`SHOP_JWT_*`)."""

from __future__ import annotations

import ipaddress
import pathlib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from shop_common.process import ConfigError, number, optional, text

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""What may be allowed: public-key signatures only. `none` and the HMAC algorithms never are
(an HS256 token "signed" with the issuer's public key as its secret is the classic forgery)."""

DEFAULT_ALGORITHMS = ("RS256", "ES256", "EdDSA")
ADMIN_SCOPE = "shop.admin"
MAX_LEEWAY_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class JwtSettings:
    """What a token must say and how its signature is checked.

    An admin is a caller whose token grants the scope `admin_scope` (`shop.admin`): in the
    `scope` claim (a space-separated string, OAuth 2 style) or the `scp` claim (a list, or a
    string)."""

    issuer: str
    """The `iss` a token must carry, exactly."""
    audience: str
    """A value the token's `aud` (a string or a list) must contain."""
    jwks: str
    """Where the issuer's public keys are: a JWKS file, or an `https://` URL (`http://` for a
    loopback host only)."""
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway_seconds: float = 30.0
    """Clock skew forgiven on `exp`, `nbf` and `iat`."""
    admin_scope: str = ADMIN_SCOPE
    jwks_ca_file: pathlib.Path | None = None
    """CA bundle for an `https://` JWKS URL (the system's by default)."""
    jwks_cache_seconds: float = 300.0
    """A fetched key set is fetched again after this long."""
    jwks_refetch_seconds: float = 30.0
    """A token naming an unknown `kid` fetches the keys again, at most this often."""
    jwks_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        refused = [a for a in self.algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if refused or not self.algorithms:
            raise ConfigError(
                f"SHOP_JWT_ALGORITHMS: {', '.join(refused) or 'nothing'} refused; allowed are "
                f"public-key algorithms only: {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
            )
        if not 0 <= self.leeway_seconds <= MAX_LEEWAY_SECONDS:
            raise ConfigError(f"SHOP_JWT_LEEWAY_SECONDS must be 0 to {MAX_LEEWAY_SECONDS:.0f}")
        if not self.issuer or not self.audience:
            raise ConfigError("SHOP_JWT_ISSUER, SHOP_JWT_AUDIENCE must not be empty")
        if not self.admin_scope or len(self.admin_scope.split()) != 1:
            raise ConfigError("SHOP_JWT_ADMIN_SCOPE must be one scope, without spaces")
        if self.jwks_url is not None:
            _check_url(self.jwks_url)

    @property
    def jwks_url(self) -> str | None:
        return self.jwks if self.jwks.startswith(("https://", "http://")) else None

    @property
    def jwks_file(self) -> pathlib.Path | None:
        return None if self.jwks_url else pathlib.Path(self.jwks)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JwtSettings:
        """`SHOP_JWT_ISSUER`, `SHOP_JWT_AUDIENCE` and `SHOP_JWT_JWKS` are required."""
        missing = [
            name
            for name in ("SHOP_JWT_ISSUER", "SHOP_JWT_AUDIENCE", "SHOP_JWT_JWKS")
            if optional(env, name) is None
        ]
        if missing:
            raise ConfigError(f"{', '.join(missing)} must be set to verify tokens")
        ca_file = optional(env, "SHOP_JWT_JWKS_CA_FILE")
        algorithms = text(env, "SHOP_JWT_ALGORITHMS", ",".join(DEFAULT_ALGORITHMS))
        return cls(
            issuer=text(env, "SHOP_JWT_ISSUER", ""),
            audience=text(env, "SHOP_JWT_AUDIENCE", ""),
            jwks=text(env, "SHOP_JWT_JWKS", ""),
            algorithms=tuple(a for a in algorithms.replace(",", " ").split()),
            leeway_seconds=number(env, "SHOP_JWT_LEEWAY_SECONDS", 30.0),
            admin_scope=text(env, "SHOP_JWT_ADMIN_SCOPE", ADMIN_SCOPE),
            jwks_ca_file=pathlib.Path(ca_file) if ca_file else None,
            jwks_cache_seconds=number(env, "SHOP_JWT_JWKS_CACHE_SECONDS", 300.0, minimum=1.0),
            jwks_refetch_seconds=number(env, "SHOP_JWT_JWKS_REFETCH_SECONDS", 30.0),
            jwks_timeout_seconds=number(env, "SHOP_JWT_JWKS_TIMEOUT_SECONDS", 5.0, minimum=0.1),
        )


def _check_url(url: str) -> None:
    """Keys fetched in the clear could be anyone's: plain http only on this machine."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise ConfigError(f"SHOP_JWT_JWKS={url!r} names no host")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError("SHOP_JWT_JWKS: an http:// URL must be a loopback host; use https://")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
