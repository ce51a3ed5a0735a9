"""A development token issuer, for trying jwt mode on one machine (never for production: a
real identity provider issues the tokens and publishes the JWKS).

    python tools/issuer.py keys                 # certs/issuer-key.pem (0600), certs/jwks.json
    python tools/issuer.py token alice          # prints a token for the subject alice
    python tools/issuer.py token root --admin   # ... granting the scope shop.admin

Tokens are ES256, `iss` https://issuer.shop.local, `aud` shop: run the services with
`SHOP_JWT_ISSUER=https://issuer.shop.local SHOP_JWT_AUDIENCE=shop SHOP_JWT_JWKS=certs/jwks.json`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Sequence

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from shop_common.process import private_dir, private_file

ISSUER = "https://issuer.shop.local"
AUDIENCE = "shop"
ADMIN_SCOPE = "shop.admin"
KEY_FILE = "issuer-key.pem"
JWKS_FILE = "jwks.json"


def _kid(key: ec.EllipticCurvePrivateKey) -> str:
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return str(jwk["x"])[:16]


def keys(directory: pathlib.Path, *, force: bool = False) -> list[pathlib.Path]:
    """Writes the signing key and the JWKS that publishes it; kept if present unless `force`."""
    private_dir(directory)
    key_path, jwks_path = directory / KEY_FILE, directory / JWKS_FILE
    if key_path.exists() and jwks_path.exists() and not force:
        return []
    key = ec.generate_private_key(ec.SECP256R1())
    private_file(key_path)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=_kid(key), use="sig", alg="ES256")
    jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
    return [key_path, jwks_path]


def token(
    directory: pathlib.Path, subject: str, *, admin: bool = False, minutes: float = 60
) -> str:
    key = serialization.load_pem_private_key((directory / KEY_FILE).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / KEY_FILE} is not an EC key")
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now,
        "exp": now + int(minutes * 60),
        "scope": ADMIN_SCOPE if admin else "",
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": _kid(key)})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("certs"))
    commands = parser.add_subparsers(dest="command", required=True)
    making = commands.add_parser("keys", help="write the signing key and its JWKS")
    making.add_argument("--force", action="store_true", help="replace them")
    signing = commands.add_parser("token", help="print a token")
    signing.add_argument("subject")
    signing.add_argument("--admin", action="store_true", help=f"grant {ADMIN_SCOPE}")
    signing.add_argument("--minutes", type=float, default=60)
    args = parser.parse_args(argv)
    if args.command == "keys":
        written = keys(args.out, force=args.force)
        for path in written:
            print(f"wrote {path}")
        if not written:
            print(f"{args.out / KEY_FILE} and {args.out / JWKS_FILE} exist; --force replaces them")
        return 0
    print(token(args.out, args.subject, admin=args.admin, minutes=args.minutes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
