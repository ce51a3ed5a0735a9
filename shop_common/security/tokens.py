"""Bearer tokens verified: a JWT signed by one of the issuer's keys, for us, in date.

`verify` is synchronous and cheap (the key is looked up by `kid`, nothing is read); when a
token names a key not held it fails, and has the keys looked for again in the background.
`verify_async` waits for that look instead, so that a rotation costs no failed call.

A client sends the same token with call after call, and checking its signature costs
100 to 175 µs (RS256, ES256, EdDSA): what a token verified to is remembered, until the token
expires or the keys are read again (a key withdrawn from the set takes its tokens with it),
for at most `MAX_REMEMBERED` tokens at once.

Every refusal is `Unauthenticated` with a reason of its own (`REASONS`); no message holds the
token or anything taken from it."""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import exceptions

from shop_common.domain import Unauthenticated, Unavailable
from shop_common.security.jwks import SigningKeys
from shop_common.security.jwt_settings import JwtSettings

MAX_TOKEN_BYTES = 16 * 1024
MAX_REMEMBERED = 4096
"""Verified tokens remembered at once (when full, all are forgotten: bounded, O(1))."""

TOKEN_INVALID = "TOKEN_INVALID"
"""Not a well-formed JWT, or its claims are missing or of the wrong type (`sub`, `exp`, `scope`)."""
TOKEN_ALGORITHM = "TOKEN_ALGORITHM"
"""Its `alg` is refused (`none`, HMAC, not allowed) or is not the one its key is for."""
TOKEN_KEY_UNKNOWN = "TOKEN_KEY_UNKNOWN"
"""It names no `kid`, or one the issuer's key set does not hold."""
TOKEN_SIGNATURE = "TOKEN_SIGNATURE"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
TOKEN_NOT_YET_VALID = "TOKEN_NOT_YET_VALID"
TOKEN_ISSUER = "TOKEN_ISSUER"
TOKEN_AUDIENCE = "TOKEN_AUDIENCE"
KEYS_UNAVAILABLE = "KEYS_UNAVAILABLE"
"""(Unavailable, not Unauthenticated) no key set was ever read: the service's fault."""

REASONS = (
    TOKEN_INVALID,
    TOKEN_ALGORITHM,
    TOKEN_KEY_UNKNOWN,
    TOKEN_SIGNATURE,
    TOKEN_EXPIRED,
    TOKEN_NOT_YET_VALID,
    TOKEN_ISSUER,
    TOKEN_AUDIENCE,
)

_REQUIRED = ["exp", "iss", "aud", "sub"]

# Most specific first: PyJWT's exceptions subclass one another.
_REFUSALS: tuple[tuple[type[Exception], str, str], ...] = (
    (exceptions.ExpiredSignatureError, TOKEN_EXPIRED, "the token has expired"),
    (exceptions.ImmatureSignatureError, TOKEN_NOT_YET_VALID, "the token is not valid yet"),
    (exceptions.InvalidIssuerError, TOKEN_ISSUER, "the token is from another issuer"),
    (exceptions.InvalidAudienceError, TOKEN_AUDIENCE, "the token is not for this audience"),
    (exceptions.InvalidSignatureError, TOKEN_SIGNATURE, "the token's signature does not verify"),
    (exceptions.InvalidAlgorithmError, TOKEN_ALGORITHM, "the token's algorithm is refused"),
    (exceptions.InvalidTokenError, TOKEN_INVALID, "the token is not a valid JWT"),
)
_MISSING = {"iss": TOKEN_ISSUER, "aud": TOKEN_AUDIENCE}


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says about its bearer."""

    subject: str
    scopes: frozenset[str]
    is_admin: bool
    expires_at: datetime.datetime


class TokenVerifier:
    """Verifies tokens against `settings`. Read the keys before the first call (`await
    refresh()`: it raises if they cannot be read) and keep them fresh (`keep_fresh()` as a
    task for as long as tokens are verified)."""

    def __init__(self, settings: JwtSettings, keys: SigningKeys | None = None) -> None:
        self._settings = settings
        self._keys = keys or SigningKeys(settings)
        self._jwt = jwt.PyJWT({"require": _REQUIRED, "enforce_minimum_key_length": True})
        self._verified: dict[str, tuple[Claims, float, object]] = {}
        """token → its claims, the time past which it is expired (leeway included), and the
        key set that verified it."""

    async def refresh(self) -> None:
        await self._keys.refresh()

    async def keep_fresh(self) -> None:
        await self._keys.keep_fresh()

    def remembers(self, token: str) -> bool:
        """Whether `token` was verified and is still good: checking it again costs nothing."""
        remembered = self._verified.get(token)
        return (
            remembered is not None
            and remembered[2] is self._keys.current
            and time.time() <= remembered[1]
        )

    def verify(self, token: str) -> Claims:
        """The claims of `token`, or Unauthenticated saying why not."""
        remembered = self._verified.get(token)
        if remembered is not None:
            claims, expired_after, keys = remembered
            if keys is self._keys.current and time.time() <= expired_after:
                return claims
            del self._verified[token]  # verified again below, to say why not
        claims = self._verify(token)
        if len(self._verified) >= MAX_REMEMBERED:
            self._verified.clear()
        expired_after = claims.expires_at.timestamp() + self._settings.leeway_seconds
        self._verified[token] = (claims, expired_after, self._keys.current)
        return claims

    def _verify(self, token: str) -> Claims:
        header = _header(token)
        alg = header.get("alg")
        if alg not in self._settings.algorithms:
            raise Unauthenticated("the token's algorithm is refused", reason=TOKEN_ALGORITHM)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("the token names no signing key", reason=TOKEN_KEY_UNKNOWN)
        if not self._keys.loaded:
            raise Unavailable("the issuer's signing keys are not loaded", reason=KEYS_UNAVAILABLE)
        by_alg = self._keys.get(kid)
        if by_alg is None:
            self._keys.request_refresh_for(kid)
            raise Unauthenticated("the token's signing key is not known", reason=TOKEN_KEY_UNKNOWN)
        key = by_alg.get(alg)
        if key is None:
            raise Unauthenticated("the token's algorithm is not its key's", reason=TOKEN_ALGORITHM)
        try:
            payload = self._jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self._settings.issuer,
                audience=self._settings.audience,
                leeway=self._settings.leeway_seconds,
            )
        except exceptions.PyJWTError as error:
            raise _refusal(error) from None
        return self._claims(payload)

    async def verify_async(self, token: str) -> Claims:
        """As `verify`, but a token naming a key not held waits while the keys are looked for
        again (a changed file, or the URL at most every `jwks_refetch_seconds`)."""
        try:
            return self.verify(token)
        except Unauthenticated as error:
            if error.reason != TOKEN_KEY_UNKNOWN or not isinstance(
                kid := _header(token).get("kid"), str
            ):
                raise
        await self._keys.refresh_for(kid)
        return self.verify(token)

    def _claims(self, payload: Mapping[str, Any]) -> Claims:
        subject = payload["sub"]
        if not isinstance(subject, str) or not subject.strip():
            raise Unauthenticated("the token's subject is not a name", reason=TOKEN_INVALID)
        scopes = _scopes(payload)
        return Claims(
            subject=subject,
            scopes=scopes,
            is_admin=self._settings.admin_scope in scopes,
            expires_at=datetime.datetime.fromtimestamp(int(payload["exp"]), datetime.UTC),
        )


def _header(token: str) -> dict[str, Any]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise Unauthenticated("the token is not a signed JWT", reason=TOKEN_INVALID)
    try:
        return jwt.get_unverified_header(token)
    except exceptions.PyJWTError:
        raise Unauthenticated("the token is not a signed JWT", reason=TOKEN_INVALID) from None


def _refusal(error: exceptions.PyJWTError) -> Unauthenticated:
    if isinstance(error, exceptions.MissingRequiredClaimError):
        reason = _MISSING.get(error.claim, TOKEN_INVALID)
        return Unauthenticated(f"the token has no '{error.claim}' claim", reason=reason)
    for kind, reason, message in _REFUSALS:
        if isinstance(error, kind):
            return Unauthenticated(message, reason=reason)
    return Unauthenticated("the token is not a valid JWT", reason=TOKEN_INVALID)


def _scopes(payload: Mapping[str, Any]) -> frozenset[str]:
    """`scope` (a space-separated string) and `scp` (a list, or a string), together."""
    found: set[str] = set()
    for claim in ("scope", "scp"):
        value = payload.get(claim)
        if value is None:
            continue
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            found.update(value)
        else:
            raise Unauthenticated(f"the token's '{claim}' claim is malformed", reason=TOKEN_INVALID)
    return frozenset(found)
