"""Bearer tokens: what is accepted, and every way a token is refused (each with its reason)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import pathlib
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from shop_common.domain import Unauthenticated, Unavailable
from shop_common.security import Claims, TokenVerifier
from shop_common.security.tokens import REASONS
from tests.tokens import SigningKey, claims, new_signing_key, settings, write_jwks

ALGORITHMS = ["RS256", "ES256", "EdDSA"]


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {alg: new_signing_key(alg) for alg in ALGORITHMS}


@pytest.fixture
def jwks_file(tmp_path: pathlib.Path, keys: dict[str, SigningKey]) -> pathlib.Path:
    path = tmp_path / "jwks.json"
    write_jwks(path, *keys.values())
    return path


@pytest.fixture
async def verifier(jwks_file: pathlib.Path) -> TokenVerifier:
    verifier = TokenVerifier(settings(jwks_file))
    await verifier.refresh()
    return verifier


def refused(verifier: TokenVerifier, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token)
    for part in (token, *token.split(".")):
        assert len(part) < 8 or part not in caught.value.message
    return caught.value


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(payload).encode()), part(signature)]
    )


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_a_token_signed_by_a_published_key_gives_its_claims(
    verifier: TokenVerifier, keys: dict[str, SigningKey], alg: str
) -> None:
    token = keys[alg].sign(claims("alice", lifetime=60))
    found = verifier.verify(token)
    assert found.subject == "alice"
    assert found.scopes == frozenset()
    assert not found.is_admin
    assert 50 < found.expires_at.timestamp() - time.time() <= 60


@pytest.mark.parametrize(
    "extra",
    [
        {"scope": "shop.read shop.admin"},
        {"scp": ["shop.admin"]},
        {"scp": "shop.read shop.admin"},
    ],
    ids=["scope string", "scp list", "scp string"],
)
def test_the_admin_scope_makes_an_admin(
    verifier: TokenVerifier, keys: dict[str, SigningKey], extra: dict[str, Any]
) -> None:
    found = verifier.verify(keys["ES256"].sign(claims("root", **extra)))
    assert found.is_admin
    assert "shop.admin" in found.scopes


def test_another_scope_is_no_admin(verifier: TokenVerifier, keys: dict[str, SigningKey]) -> None:
    found = verifier.verify(keys["ES256"].sign(claims(scope="shop.read admin shop.administrator")))
    assert found == Claims(
        "alice", frozenset({"shop.read", "admin", "shop.administrator"}), False, found.expires_at
    )


def test_an_audience_among_several_is_accepted(
    verifier: TokenVerifier, keys: dict[str, SigningKey]
) -> None:
    assert verifier.verify(keys["ES256"].sign(claims(audience=["other", "shop"]))).subject


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": -31}, "TOKEN_EXPIRED"),
        ({"nbf": 60}, "TOKEN_NOT_YET_VALID"),
        ({"iat": 60}, "TOKEN_NOT_YET_VALID"),
        ({"iss": "https://evil.test"}, "TOKEN_ISSUER"),
        ({"iss": None}, "TOKEN_ISSUER"),
        ({"aud": "other"}, "TOKEN_AUDIENCE"),
        ({"aud": None}, "TOKEN_AUDIENCE"),
        ({"sub": None}, "TOKEN_INVALID"),
        ({"sub": ""}, "TOKEN_INVALID"),
        ({"sub": 42}, "TOKEN_INVALID"),
        ({"exp": None}, "TOKEN_INVALID"),
        ({"exp": "tomorrow"}, "TOKEN_INVALID"),
        ({"scope": ["shop.admin", 1]}, "TOKEN_INVALID"),
    ],
    ids=[
        "expired beyond the leeway",
        "not before a minute from now",
        "issued a minute from now",
        "another issuer",
        "no issuer",
        "another audience",
        "no audience",
        "no subject",
        "empty subject",
        "subject not a string",
        "no expiry",
        "expiry not a time",
        "scope not strings",
    ],
)
def test_a_token_whose_claims_are_wrong_is_refused(
    verifier: TokenVerifier,
    keys: dict[str, SigningKey],
    alg: str,
    changes: dict[str, Any],
    reason: str,
) -> None:
    # Times are given from now, taken when the test runs (not when the suite is collected:
    # a minute ahead then may be in the past by now).
    now = int(time.time())
    changes = {k: now + v if k in _TIMES and type(v) is int else v for k, v in changes.items()}
    assert refused(verifier, keys[alg].sign(claims(**changes))).reason == reason


_TIMES = frozenset({"exp", "nbf", "iat"})
"""Claims whose integer values in the table above are seconds from now."""


def test_an_expiry_within_the_leeway_is_forgiven(
    verifier: TokenVerifier, keys: dict[str, SigningKey]
) -> None:
    token = keys["ES256"].sign(claims(exp=int(time.time()) - 20))
    assert verifier.verify(token).subject == "alice"


@pytest.mark.parametrize("with_kid", [True, False], ids=["with a kid", "without a kid"])
def test_alg_none_is_refused(
    verifier: TokenVerifier, keys: dict[str, SigningKey], with_kid: bool
) -> None:
    header = {"alg": "none", "typ": "JWT", **({"kid": keys["ES256"].kid} if with_kid else {})}
    assert refused(verifier, unsigned(header, claims())).reason == "TOKEN_ALGORITHM"


def test_hs256_signed_with_the_public_key_as_secret_is_refused(
    verifier: TokenVerifier, keys: dict[str, SigningKey]
) -> None:
    """The classic algorithm confusion: the public key, which anyone has, as an HMAC secret."""
    public_pem = (
        keys["RS256"]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    token = unsigned({"alg": "HS256", "typ": "JWT", "kid": keys["RS256"].kid}, claims())
    signing_input = token.rsplit(".", 1)[0].encode()
    mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    forged = f"{signing_input.decode()}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert refused(verifier, forged).reason == "TOKEN_ALGORITHM"


async def test_an_algorithm_off_the_allow_list_is_refused(
    jwks_file: pathlib.Path, keys: dict[str, SigningKey]
) -> None:
    only_es256 = TokenVerifier(settings(jwks_file, algorithms=("ES256",)))
    await only_es256.refresh()
    assert only_es256.verify(keys["ES256"].sign(claims())).subject == "alice"
    assert refused(only_es256, keys["RS256"].sign(claims())).reason == "TOKEN_ALGORITHM"


def test_a_header_alg_other_than_its_keys_type_is_refused(
    verifier: TokenVerifier, keys: dict[str, SigningKey]
) -> None:
    """Signed with the RSA key, but naming the EC key: the EC key verifies ES256 only."""
    rsa_signed = keys["RS256"].sign(claims(), headers={"kid": keys["ES256"].kid})
    assert refused(verifier, rsa_signed).reason == "TOKEN_ALGORITHM"


async def test_a_header_alg_other_than_its_jwks_alg_is_refused(tmp_path: pathlib.Path) -> None:
    """An RSA key published for RS256 does not verify PS256, though both are allowed."""
    key = new_signing_key("RS256")
    write_jwks(tmp_path / "jwks.json", key)
    verifier = TokenVerifier(settings(tmp_path / "jwks.json", algorithms=("RS256", "PS256")))
    await verifier.refresh()
    assert refused(verifier, key.sign(claims(), alg="PS256")).reason == "TOKEN_ALGORITHM"


def test_a_signature_by_another_key_under_a_published_kid_is_refused(
    verifier: TokenVerifier, keys: dict[str, SigningKey]
) -> None:
    impostor = new_signing_key("ES256", kid=keys["ES256"].kid)
    assert refused(verifier, impostor.sign(claims())).reason == "TOKEN_SIGNATURE"


def test_a_tampered_payload_is_refused(
    verifier: TokenVerifier, keys: dict[str, SigningKey]
) -> None:
    header, _, signature = keys["EdDSA"].sign(claims("alice")).split(".")
    payload = unsigned({}, claims("bob", scope="shop.admin")).split(".")[1]
    assert refused(verifier, f"{header}.{payload}.{signature}").reason == "TOKEN_SIGNATURE"


@pytest.mark.parametrize(
    "token",
    ["", "alice", "a.b.c", "a.b", "....", "x" * 20_000],
    ids=[
        "empty",
        "a bare subject",
        "not base64 json",
        "two parts",
        "empty parts",
        "huge",
    ],
)
def test_a_malformed_token_is_refused(verifier: TokenVerifier, token: str) -> None:
    assert refused(verifier, token).reason == "TOKEN_INVALID"


def test_a_signature_that_is_not_base64_is_refused(
    verifier: TokenVerifier, keys: dict[str, SigningKey]
) -> None:
    header, payload, _ = keys["ES256"].sign(claims()).split(".")
    assert refused(verifier, f"{header}.{payload}.%%%").reason == "TOKEN_INVALID"


def test_a_token_naming_no_key_is_refused(
    verifier: TokenVerifier, keys: dict[str, SigningKey]
) -> None:
    token = jwt.encode(claims(), keys["ES256"].private, algorithm="ES256")
    assert refused(verifier, token).reason == "TOKEN_KEY_UNKNOWN"


async def test_a_token_naming_an_unknown_key_is_refused(verifier: TokenVerifier) -> None:
    stranger = new_signing_key("ES256")
    assert refused(verifier, stranger.sign(claims())).reason == "TOKEN_KEY_UNKNOWN"
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify_async(stranger.sign(claims()))
    assert caught.value.reason == "TOKEN_KEY_UNKNOWN"


def test_without_keys_read_a_token_is_not_the_callers_fault(
    jwks_file: pathlib.Path, keys: dict[str, SigningKey]
) -> None:
    never_refreshed = TokenVerifier(settings(jwks_file))
    with pytest.raises(Unavailable) as caught:
        never_refreshed.verify(keys["ES256"].sign(claims()))
    assert caught.value.reason == "KEYS_UNAVAILABLE"


def test_every_refusal_reason_is_distinct() -> None:
    assert len(set(REASONS)) == len(REASONS)


# --- verified tokens remembered -------------------------------------------------------------------


async def test_a_token_verified_once_is_not_checked_again(
    verifier: TokenVerifier, keys: dict[str, SigningKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = keys["ES256"].sign(claims())
    first = verifier.verify(token)

    def no_more_checks(token: str) -> Claims:
        raise AssertionError("checked again")

    monkeypatch.setattr(verifier, "_verify", no_more_checks)
    assert verifier.verify(token) is first
    with pytest.raises(AssertionError):
        verifier.verify(keys["ES256"].sign(claims("bob")))  # another token is checked


async def test_a_remembered_token_still_expires(
    jwks_file: pathlib.Path, keys: dict[str, SigningKey]
) -> None:
    verifier = TokenVerifier(settings(jwks_file, leeway_seconds=0))
    await verifier.refresh()
    expiry = int(time.time()) + 2
    token = keys["ES256"].sign(claims(exp=expiry))
    assert verifier.verify(token).subject == "alice"
    await asyncio.sleep(expiry + 0.2 - time.time())
    assert refused(verifier, token).reason == "TOKEN_EXPIRED"


async def test_a_withdrawn_key_takes_its_remembered_tokens_with_it(
    verifier: TokenVerifier, jwks_file: pathlib.Path, keys: dict[str, SigningKey]
) -> None:
    token = keys["ES256"].sign(claims())
    assert verifier.verify(token).subject == "alice"
    write_jwks(jwks_file, keys["RS256"])  # the ES256 key withdrawn
    await verifier.refresh()
    assert refused(verifier, token).reason == "TOKEN_KEY_UNKNOWN"
