"""Test signing keys, the JWKS that publishes them, and tokens they sign (for tests only)."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from shop_common.security import JwtSettings

ISSUER = "https://issuer.test"
AUDIENCE = "shop"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKey:
    """An issuer's private key, published under `kid` for `alg`."""

    kid: str
    alg: str
    private: PrivateKey

    def public_jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        jwk.update(kid=self.kid, use="sig")
        if with_alg:
            jwk["alg"] = self.alg
        return jwk

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        alg: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        return jwt.encode(
            dict(claims),
            self.private,
            algorithm=alg or self.alg,
            headers={"kid": self.kid, **(headers or {})},
        )


def new_signing_key(alg: str = "ES256", kid: str | None = None) -> SigningKey:
    """A fresh key for `alg`: RS256/PS256 (RSA 2048), ES256 (P-256) or EdDSA (Ed25519)."""
    private: PrivateKey
    if alg in ("RS256", "PS256"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"no test key for {alg}")
    return SigningKey(kid=kid or f"{alg.lower()}-{secrets.token_hex(4)}", alg=alg, private=private)


def jwks_document(*keys: SigningKey) -> bytes:
    return json.dumps({"keys": [key.public_jwk() for key in keys]}).encode()


def write_jwks(path: pathlib.Path, *keys: SigningKey) -> None:
    """Replaces the file at once (a new file renamed over it), as a key rotation would."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    partial.write_bytes(jwks_document(*keys))
    os.replace(partial, path)


def claims(
    subject: str = "alice",
    *,
    issuer: str = ISSUER,
    audience: str | list[str] = AUDIENCE,
    lifetime: float = 300,
    **extra: Any,
) -> dict[str, Any]:
    """Claims a verifier with `settings()` accepts; `extra` adds to or replaces them (a value
    of None removes the claim)."""
    now = int(time.time())
    found: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "exp": now + int(lifetime),
    }
    found.update(extra)
    return {k: v for k, v in found.items() if v is not None}


def settings(jwks: str | pathlib.Path, **overrides: Any) -> JwtSettings:
    return JwtSettings(issuer=ISSUER, audience=AUDIENCE, jwks=str(jwks), **overrides)
