"""The issuer's keys: read from a file or fetched from a URL, and found again after a
rotation (a token naming a new kid) without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import pathlib
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import certs
import pytest

from shop_common.domain import Unauthenticated
from shop_common.security import JwksError, SigningKeys, TokenVerifier
from shop_common.security.jwks import parse_jwks
from tests.tokens import SigningKey, claims, jwks_document, new_signing_key, settings, write_jwks


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class JwksServer:
    """A JWKS URL served by http.server in a thread: what it serves, how often it was asked."""

    def __init__(self) -> None:
        self.document = b'{"keys": []}'
        self.status = 200
        self.location: str | None = None
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                self.send_response(owner.status)
                if owner.location:
                    self.send_header("Location", owner.location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(owner.document)))
                self.end_headers()
                self.wfile.write(owner.document)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def publish(self, *keys: SigningKey) -> None:
        self.document = jwks_document(*keys)

    def use_tls(self, identity: certs.Identity, directory: pathlib.Path) -> None:
        files = certs.Files.of(directory, "issuer")
        files.write(identity)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(files.cert, files.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = self.url.replace("http://127.0.0.1", "https://localhost")


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    served = JwksServer()
    served.thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()
        served.thread.join()


@pytest.fixture(scope="module")
def old_key() -> SigningKey:
    return new_signing_key("ES256", kid="2026-old")


@pytest.fixture(scope="module")
def new_key() -> SigningKey:
    return new_signing_key("EdDSA", kid="2026-new")


async def test_a_key_added_to_the_file_is_used_on_the_first_token_naming_it(
    tmp_path: pathlib.Path, old_key: SigningKey, new_key: SigningKey
) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, old_key)
    verifier = TokenVerifier(settings(path))
    await verifier.refresh()
    write_jwks(path, old_key, new_key)
    assert (await verifier.verify_async(new_key.sign(claims("bob")))).subject == "bob"


async def test_a_key_removed_from_the_file_is_refused_after_a_refresh(
    tmp_path: pathlib.Path, old_key: SigningKey, new_key: SigningKey
) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, old_key, new_key)
    verifier = TokenVerifier(settings(path))
    await verifier.refresh()
    assert verifier.verify(old_key.sign(claims())).subject == "alice"
    write_jwks(path, new_key)
    await verifier.refresh()
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(old_key.sign(claims()))
    assert caught.value.reason == "TOKEN_KEY_UNKNOWN"


async def test_a_file_rewritten_in_place_is_read_again(
    tmp_path: pathlib.Path, old_key: SigningKey, new_key: SigningKey
) -> None:
    """Same inode and, on a coarse clock, maybe the same mtime: the size differs."""
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks_document(old_key))
    keys = SigningKeys(settings(path))
    await keys.refresh()
    path.write_bytes(jwks_document(old_key, new_key))
    await keys.refresh()
    assert keys.get(new_key.kid) is not None


async def test_the_synchronous_verify_looks_for_an_unknown_kid_in_the_background(
    tmp_path: pathlib.Path, old_key: SigningKey, new_key: SigningKey
) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, old_key)
    verifier = TokenVerifier(settings(path))
    await verifier.refresh()
    write_jwks(path, old_key, new_key)
    token = new_key.sign(claims())
    with pytest.raises(Unauthenticated):
        verifier.verify(token)
    for _ in range(100):
        await asyncio.sleep(0.01)
        with contextlib.suppress(Unauthenticated):
            assert verifier.verify(token).subject == "alice"
            return
    pytest.fail("the new key was never read")


async def test_a_broken_file_keeps_the_keys_held(
    tmp_path: pathlib.Path, old_key: SigningKey
) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, old_key)
    verifier = TokenVerifier(settings(path))
    await verifier.refresh()
    path.write_text('{"keys": [')
    with pytest.raises(JwksError, match="not a JWKS document"):
        await verifier.refresh()
    assert verifier.verify(old_key.sign(claims())).subject == "alice"
    path.unlink()
    with pytest.raises(JwksError, match="No such file"):
        await verifier.refresh()
    assert verifier.verify(old_key.sign(claims())).subject == "alice"


async def test_a_missing_file_fails_the_first_refresh(tmp_path: pathlib.Path) -> None:
    with pytest.raises(JwksError):
        await SigningKeys(settings(tmp_path / "absent.json")).refresh()


async def test_keep_fresh_reads_the_file_until_cancelled(
    tmp_path: pathlib.Path, old_key: SigningKey
) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, old_key)
    keys = SigningKeys(settings(path))
    task = asyncio.create_task(keys.keep_fresh())
    for _ in range(100):
        if keys.loaded:
            break
        await asyncio.sleep(0.01)
    assert keys.get(old_key.kid) is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_keys_are_fetched_from_a_url_and_cached(
    jwks_server: JwksServer, old_key: SigningKey
) -> None:
    jwks_server.publish(old_key)
    clock = Clock()
    keys = SigningKeys(settings(jwks_server.url, jwks_cache_seconds=300), monotonic=clock)
    verifier = TokenVerifier(settings(jwks_server.url), keys)
    await verifier.refresh()
    assert verifier.verify(old_key.sign(claims())).subject == "alice"
    clock.now += 299
    await verifier.refresh()
    assert jwks_server.requests == 1
    clock.now += 1
    await verifier.refresh()
    assert jwks_server.requests == 2


async def test_a_rotated_key_is_fetched_from_the_url_on_the_first_token_naming_it(
    jwks_server: JwksServer, old_key: SigningKey, new_key: SigningKey
) -> None:
    jwks_server.publish(old_key)
    clock = Clock()
    keys = SigningKeys(settings(jwks_server.url), monotonic=clock)
    verifier = TokenVerifier(settings(jwks_server.url), keys)
    await verifier.refresh()
    jwks_server.publish(old_key, new_key)
    clock.now += 30
    assert (await verifier.verify_async(new_key.sign(claims("bob")))).subject == "bob"
    assert jwks_server.requests == 2


async def test_unknown_kids_fetch_the_url_at_most_once_per_refetch_interval(
    jwks_server: JwksServer, old_key: SigningKey
) -> None:
    jwks_server.publish(old_key)
    clock = Clock()
    keys = SigningKeys(settings(jwks_server.url, jwks_refetch_seconds=30), monotonic=clock)
    verifier = TokenVerifier(settings(jwks_server.url), keys)
    await verifier.refresh()
    strangers = [new_signing_key("ES256").sign(claims()) for _ in range(3)]
    clock.now += 29  # the first fetch was an attempt too
    for token in strangers:
        with pytest.raises(Unauthenticated):
            await verifier.verify_async(token)
    assert jwks_server.requests == 1
    clock.now += 1
    for token in strangers:
        with pytest.raises(Unauthenticated):
            await verifier.verify_async(token)
    assert jwks_server.requests == 2


async def test_a_failing_url_keeps_the_keys_held(
    jwks_server: JwksServer, old_key: SigningKey
) -> None:
    jwks_server.publish(old_key)
    clock = Clock()
    keys = SigningKeys(settings(jwks_server.url), monotonic=clock)
    await keys.refresh()
    jwks_server.status = 500
    clock.now += 300
    with pytest.raises(JwksError, match="500"):
        await keys.refresh()
    assert keys.get(old_key.kid) is not None


async def test_a_redirect_is_not_followed(jwks_server: JwksServer, old_key: SigningKey) -> None:
    jwks_server.publish(old_key)
    jwks_server.status = 302
    jwks_server.location = "http://127.0.0.1:1/elsewhere.json"
    with pytest.raises(JwksError, match="302"):
        await SigningKeys(settings(jwks_server.url)).refresh()


async def test_an_unreachable_url_fails_the_first_refresh() -> None:
    with pytest.raises(JwksError, match=r"127\.0\.0\.1:1"):
        await SigningKeys(settings("http://127.0.0.1:1/jwks.json")).refresh()


def _jwk(key: SigningKey, **changes: Any) -> dict[str, Any]:
    jwk = key.public_jwk()
    jwk.update(changes)
    return {k: v for k, v in jwk.items() if v is not None}


def test_only_signing_keys_with_a_kid_for_an_allowed_algorithm_are_kept(
    old_key: SigningKey, new_key: SigningKey
) -> None:
    rsa = new_signing_key("RS256", kid="rsa")
    document = {
        "keys": [
            _jwk(old_key),
            _jwk(new_key, kid=None),
            _jwk(rsa, kid="encryption", use="enc"),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            _jwk(rsa, kid="ps256-only", alg="PS256"),
            _jwk(rsa, kid="no-alg", alg=None),
            "not a key",
        ]
    }
    keys = parse_jwks(json.dumps(document).encode(), ("ES256", "RS256", "EdDSA"))
    assert {kid: sorted(by_alg) for kid, by_alg in keys.items()} == {
        old_key.kid: ["ES256"],
        "no-alg": ["RS256"],
    }


def test_a_set_without_usable_keys_is_an_error() -> None:
    with pytest.raises(JwksError, match="no usable signing key"):
        parse_jwks(b'{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}', ("RS256",))


def test_write_jwks_replaces_the_file(tmp_path: pathlib.Path, old_key: SigningKey) -> None:
    path = tmp_path / "jwks.json"
    path.write_text("old")
    inode = os.stat(path).st_ino
    write_jwks(path, old_key)
    assert os.stat(path).st_ino != inode
    assert json.loads(path.read_text())["keys"][0]["kid"] == old_key.kid


async def test_an_https_url_is_verified_with_the_configured_ca(
    tmp_path: pathlib.Path, old_key: SigningKey
) -> None:
    authority, stranger = certs.new_authority(), certs.new_authority()
    (tmp_path / "ca.pem").write_bytes(authority.cert_pem)
    (tmp_path / "other-ca.pem").write_bytes(stranger.cert_pem)
    served = JwksServer()
    served.use_tls(certs.issue(authority, "issuer"), tmp_path)
    served.publish(old_key)
    served.thread.start()
    try:
        keys = SigningKeys(settings(served.url, jwks_ca_file=tmp_path / "ca.pem"))
        await keys.refresh()
        assert keys.get(old_key.kid) is not None
        untrusting = SigningKeys(settings(served.url, jwks_ca_file=tmp_path / "other-ca.pem"))
        with pytest.raises(JwksError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.refresh()
    finally:
        served.server.shutdown()
        served.server.server_close()
        served.thread.join()
