"""HTTPS on the gateway's own listener (optional: an ingress often terminates TLS): a server
SSLContext from `GATEWAY_TLS_CERT_FILE` and `_KEY_FILE`, loaded again when they change (new
connections get the new certificate; no restart). Files are read off the event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import ssl

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0

_Version = tuple[tuple[int, int, int], ...]


def _version(*paths: pathlib.Path) -> _Version:
    stats = [os.stat(path) for path in paths]
    return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in stats)


class ServerTls:
    def __init__(self, cert: pathlib.Path, key: pathlib.Path) -> None:
        self._cert = cert
        self._key = key
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])
        self._loaded: _Version | None = None

    async def load(self) -> None:
        """Loads the files (OSError or ssl.SSLError when unusable)."""
        version = await asyncio.to_thread(_version, self._cert, self._key)
        await asyncio.to_thread(self.context.load_cert_chain, self._cert, self._key)
        self._loaded = version

    async def keep_fresh(self) -> None:
        """Loads the files again whenever they change, until cancelled; a pair caught
        half-written keeps the old one until the next look."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                if await asyncio.to_thread(_version, self._cert, self._key) != self._loaded:
                    await self.load()
                    log.info("HTTPS certificate reloaded")
            except (OSError, ssl.SSLError) as error:
                log.warning("HTTPS certificate not reloaded, the old one serves on: %s", error)
