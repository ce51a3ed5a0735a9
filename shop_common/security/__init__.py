"""Security: who a caller is, proven. Bearer tokens (JWT) verified against the issuer's keys
(`jwt_settings`, `jwks`, `tokens`), read off the event loop."""

from shop_common.security.jwks import JwksError, SigningKeys
from shop_common.security.jwt_settings import JwtSettings
from shop_common.security.tokens import Claims, TokenVerifier

__all__ = [
    "Claims",
    "JwksError",
    "JwtSettings",
    "SigningKeys",
    "TokenVerifier",
]
