"""The gateway's own routes, beside the services': `/healthz` (the backends' gRPC health),
`/openapi.json` (built from the routing table on first read), `/docs` and its script and
style, `/console` and its files (those unless turned off: by default in jwt mode). GET and
HEAD only."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import grpc
import orjson

from gateway import openapi
from gateway.console import CONSOLE_PATHS, ConsoleFile, console_files
from gateway.errors import allow_header, method_not_allowed
from gateway.health import HealthChecker
from gateway.reply import respond
from gateway.routes import Route
from gateway.types import Send

HEALTH_PATH = "/healthz"
OPENAPI_PATH = "/openapi.json"
DOCS_PATHS = frozenset({OPENAPI_PATH, openapi.DOCS_PATH, *openapi.ASSET_PATHS})
PATHS = frozenset({HEALTH_PATH, *DOCS_PATHS, *CONSOLE_PATHS})
METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_HTML = (b"content-type", b"text/html; charset=utf-8")
_ASSET_CACHE = (b"cache-control", b"public, max-age=86400")


class BuiltinRoutes:
    """Answers the requests for `paths`: health, and the docs and the console when on.
    `verified`: tokens are verified (the console asks for one)."""

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        proto_names: bool,
        docs: bool = True,
        console: bool = True,
        verified: bool = False,
    ) -> None:
        self._docs_on, self._console_on, self._verified = docs, console, verified
        self.paths = frozenset(
            {
                HEALTH_PATH,
                *(DOCS_PATHS if docs else ()),
                *(CONSOLE_PATHS if console else ()),
            }
        )
        self._routes = routes
        self._proto_names = proto_names
        self._openapi_json: bytes | None = None
        self._docs = openapi.page(OPENAPI_PATH)
        self._docs_assets: dict[str, openapi.Asset] = {}
        self._console: dict[str, ConsoleFile] = {}
        self._health: HealthChecker | None = None

    async def load_assets(self) -> None:
        """Reads the docs page's and the console's files (blocking, so off the loop)."""
        if self._docs_on:
            self._docs_assets = await asyncio.to_thread(openapi.assets)
        if self._console_on:
            self._console = await asyncio.to_thread(console_files, verified=self._verified)

    def check_health_on(self, channels: Mapping[str, grpc.aio.Channel]) -> None:
        """`channels`: service full name → the channel to its backend."""
        self._health = HealthChecker(channels)

    async def answer(self, method: str, path: str, send: Send) -> None:
        """Answers a request for `path`, one of `paths`."""
        if method == "OPTIONS":
            await respond(send, 204, b"", allow_header(METHODS))
            return
        if method not in ("GET", "HEAD"):
            raise method_not_allowed(method, path, METHODS)
        if path == HEALTH_PATH:
            assert self._health is not None, "startup() has not run"
            status, body = await self._health.check()
            await respond(send, status, body)
        elif path == OPENAPI_PATH:
            await respond(send, 200, self._openapi())
        elif path == openapi.DOCS_PATH:
            await respond(send, 200, self._docs, [_HTML])
        elif path in CONSOLE_PATHS:
            assert self._console, "startup() has not run"
            file = self._console[path]
            await respond(send, 200, file.body, file.headers)
        else:
            assert self._docs_assets, "startup() has not run"
            asset = self._docs_assets[path]
            headers = [(b"content-type", asset.content_type), _ASSET_CACHE]
            await respond(send, 200, asset.body, headers)

    def _openapi(self) -> bytes:
        if self._openapi_json is None:
            spec = openapi.document(self._routes, proto_names=self._proto_names)
            self._openapi_json = orjson.dumps(spec)
        return self._openapi_json
