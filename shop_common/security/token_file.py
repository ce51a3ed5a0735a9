"""A service's own bearer token, read from a file that something else keeps current (a
Kubernetes projected service-account token, an identity provider's sidecar): read again
when the file changes, off the event loop. What a service sends where TLS does not name it."""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
MAX_TOKEN_BYTES = 16 * 1024

_Version = tuple[int, int, int]


class TokenFile:
    """The token in `path` (surrounding white space removed)."""

    def __init__(self, path: pathlib.Path) -> None:
        self._path = path
        self._version: _Version | None = None
        self._token = ""

    @property
    def token(self) -> str:
        return self._token

    async def refresh(self) -> None:
        """Reads the file if it changed; OSError or ValueError when it is unusable (the
        token held, if any, stays)."""
        read = await asyncio.to_thread(_read_if_changed, self._path, self._version)
        if read is not None:
            self._version, self._token = read
            log.info("service token read from %s", self._path)

    async def keep_fresh(self) -> None:
        """Refreshes until cancelled."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.refresh()
            except (OSError, ValueError) as error:
                log.warning("service token not read again, the old one is sent: %s", error)


def _read_if_changed(path: pathlib.Path, known: _Version | None) -> tuple[_Version, str] | None:
    stat = os.stat(path)
    version = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    if version == known:
        return None
    with path.open("rb") as file:
        raw = file.read(MAX_TOKEN_BYTES + 1)
    token = raw.decode("ascii", "replace").strip()
    if len(raw) > MAX_TOKEN_BYTES or not token or not token.isprintable() or " " in token:
        raise ValueError(f"{path} holds no token (one line of at most {MAX_TOKEN_BYTES} bytes)")
    return version, token
