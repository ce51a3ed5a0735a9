"""The issuer's signing keys by `kid`, from a JWKS file (read again when it changes) or URL
(cached, and fetched again when a token names a key not seen yet: rotation).

Reading, fetching and parsing run in a thread, off the event loop; a token's verification only
looks a key up. When a read fails the keys held stay in use."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWTError

from shop_common.security.jwt_settings import JwtSettings

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1024 * 1024
FILE_POLL_SECONDS = 5.0
"""How often `keep_fresh` looks at a JWKS file's modification time."""

_ALGORITHMS_OF_KEY: Mapping[tuple[str, str | None], tuple[str, ...]] = {
    ("RSA", None): ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    ("EC", "P-256"): ("ES256",),
    ("EC", "P-384"): ("ES384",),
    ("EC", "P-521"): ("ES512",),
    ("OKP", "Ed25519"): ("EdDSA",),
    ("OKP", "Ed448"): ("EdDSA",),
}
"""What a key without `alg` may verify, by its type (and curve). Symmetric (`oct`) keys: nothing."""

KeysByKid = Mapping[str, Mapping[str, PyJWK]]
"""kid → algorithm → the key bound to that algorithm."""


class JwksError(Exception):
    """The key set could not be read, or holds no usable key."""


@dataclass(frozen=True, slots=True)
class _FileVersion:
    mtime_ns: int
    size: int
    inode: int


def parse_jwks(document: bytes, allowed: tuple[str, ...]) -> dict[str, dict[str, PyJWK]]:
    """The usable signing keys of a JWKS document. A key is skipped when it has no `kid`, is
    not for signatures, is symmetric, or can verify no allowed algorithm."""
    try:
        keys = json.loads(document)["keys"]
        if not isinstance(keys, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise JwksError("not a JWKS document (a JSON object with a list of keys)") from None
    usable: dict[str, dict[str, PyJWK]] = {}
    for jwk in keys:
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        if kid in usable:
            log.warning("JWKS: a second key with kid %r is ignored", kid)
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        by_alg = {}
        for alg in _algorithms(jwk, allowed):
            try:
                by_alg[alg] = PyJWK(jwk, algorithm=alg)
            except PyJWTError as error:
                log.warning("JWKS: key %r unusable for %s: %s", kid, alg, error)
        if by_alg:
            usable[kid] = by_alg
    if not usable:
        raise JwksError(f"no usable signing key (allowed algorithms: {', '.join(allowed)})")
    return usable


def _algorithms(jwk: Mapping[str, Any], allowed: tuple[str, ...]) -> list[str]:
    kty, crv = str(jwk.get("kty")), jwk.get("crv")
    possible = _ALGORITHMS_OF_KEY.get((kty, None if kty == "RSA" else str(crv)), ())
    alg = jwk.get("alg")
    if alg is not None:
        possible = (alg,) if alg in possible else ()
    return [a for a in possible if a in allowed]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead to http:// or elsewhere: the configured URL is the only one."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class SigningKeys:
    """The issuer's keys, refreshed by `refresh` (due ones), `refresh_for` (a kid not held) or
    `keep_fresh` (a task that refreshes for as long as it runs)."""

    def __init__(
        self, settings: JwtSettings, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._monotonic = monotonic
        self._keys: KeysByKid | None = None
        self._file_version: _FileVersion | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    @property
    def loaded(self) -> bool:
        return self._keys is not None

    @property
    def current(self) -> object:
        """The key set held now: a new object whenever the keys are read again, so that
        what was verified with the old set can be told apart."""
        return self._keys

    def get(self, kid: str) -> Mapping[str, PyJWK] | None:
        """The key `kid`, by the algorithms it may verify; None when not held."""
        return None if self._keys is None else self._keys.get(kid)

    async def refresh(self) -> None:
        """Reads the keys if due: first time, file changed, or the URL's cache expired.
        Raises JwksError if they could not be read (the keys held, if any, stay)."""
        async with self._lock:
            if self._settings.jwks_url is None:
                await self._read_file()
            elif self._keys is None or self._age() >= self._settings.jwks_cache_seconds:
                await self._fetch()

    async def refresh_for(self, kid: str) -> None:
        """A token names `kid`, which is not held: reads the file if it changed, or fetches the
        URL unless it was tried less than `jwks_refetch_seconds` ago. Failures are logged."""
        async with self._lock:
            if self.get(kid) is not None:
                return  # another call's refresh brought it
            try:
                if self._settings.jwks_url is None:
                    await self._read_file()
                elif self._may_refetch():
                    await self._fetch()
            except JwksError as error:
                log.warning("signing keys not refreshed: %s", error)

    def request_refresh_for(self, kid: str) -> None:
        """`refresh_for` in the background (from synchronous code on the event loop); one at a
        time, so that a flood of made-up kids costs one look, not one each."""
        if self._background:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.refresh_for(kid))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def keep_fresh(self) -> None:
        """Refreshes the keys until cancelled: a file every few seconds, a URL when its cache
        expires (sooner after a failure)."""
        while True:
            try:
                await self.refresh()
                wait = self._settings.jwks_cache_seconds - self._age()
            except JwksError as error:
                log.warning("signing keys not refreshed: %s", error)
                wait = self._settings.jwks_refetch_seconds
            if self._settings.jwks_url is None:
                wait = FILE_POLL_SECONDS
            await asyncio.sleep(max(1.0, wait))

    def _age(self) -> float:
        return self._monotonic() - self._fetched_at

    def _may_refetch(self) -> bool:
        last = self._attempted_at
        return last is None or self._monotonic() - last >= self._settings.jwks_refetch_seconds

    async def _read_file(self) -> None:
        path = self._settings.jwks_file
        assert path is not None
        read = await asyncio.to_thread(
            _read_if_changed, path, self._file_version, self._settings.algorithms
        )
        if read is not None:
            self._file_version, self._keys = read
            log.info("signing keys read from %s: %s", path, ", ".join(sorted(self._keys)))

    async def _fetch(self) -> None:
        url = self._settings.jwks_url
        assert url is not None
        self._attempted_at = self._monotonic()
        timeout = self._settings.jwks_timeout_seconds
        try:
            document = await asyncio.wait_for(
                asyncio.to_thread(_download, url, timeout, self._settings.jwks_ca_file),
                timeout * 2,  # a trickling server: the thread ends on its own socket timeout
            )
        except TimeoutError:
            raise JwksError(f"{url}: no answer within {timeout * 2:.1f}s") from None
        try:
            keys = await asyncio.to_thread(parse_jwks, document, self._settings.algorithms)
        except JwksError as error:
            raise JwksError(f"{url}: {error}") from None
        self._keys, self._fetched_at = keys, self._monotonic()
        log.info("signing keys fetched from %s: %s", url, ", ".join(sorted(keys)))


def _read_if_changed(
    path: pathlib.Path, known: _FileVersion | None, allowed: tuple[str, ...]
) -> tuple[_FileVersion, dict[str, dict[str, PyJWK]]] | None:
    """The file's version (taken before reading: a later change is seen next time) and keys;
    None when it is the version known."""
    try:
        stat = os.stat(path)
        version = _FileVersion(stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if version == known:
            return None
        with path.open("rb") as file:
            document = file.read(MAX_JWKS_BYTES + 1)
    except OSError as error:
        raise JwksError(f"{path}: {error.strerror or error}") from None
    if len(document) > MAX_JWKS_BYTES:
        raise JwksError(f"{path}: larger than {MAX_JWKS_BYTES} bytes")
    try:
        return version, parse_jwks(document, allowed)
    except JwksError as error:
        raise JwksError(f"{path}: {error}") from None


def _download(url: str, timeout: float, ca_file: pathlib.Path | None) -> bytes:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    opener = urllib.request.build_opener(
        _NoRedirects(), urllib.request.HTTPSHandler(context=context)
    )
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with opener.open(request, timeout=timeout) as response:
            if response.status != 200:
                raise JwksError(f"{url}: HTTP {response.status}")
            document: bytes = response.read(MAX_JWKS_BYTES + 1)
    except urllib.error.HTTPError as error:  # any status but 2xx, a redirect included
        error.close()
        raise JwksError(f"{url}: HTTP {error.code}") from None
    except OSError as error:  # URLError, HTTPError, timeouts, TLS failures
        raise JwksError(f"{url}: {error}") from None
    if len(document) > MAX_JWKS_BYTES:
        raise JwksError(f"{url}: larger than {MAX_JWKS_BYTES} bytes")
    return document
