"""The live console at `/console`: a page that calls the gateway itself over the Connect
protocol, its script, style and icon. The files are built from console/ by `make gen`
(tools/console_bundle.py) into gateway/console_assets/, shipped with this package, read once
at start-up and served from memory.

The page is told whether tokens are verified (a `shop-identity` meta element: then it asks
for one) and names its script and style by content hash (`?v=`), so they may be cached
while the page itself is revalidated on every visit. Everything comes with a strict
Content-Security-Policy: scripts, styles, images and calls from this origin only, nothing
inline, no framing, no form posted anywhere.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass

from gateway.types import Headers

CONSOLE_PATH = "/console"
_ASSETS = {
    "console.js": b"text/javascript; charset=utf-8",
    "console.css": b"text/css; charset=utf-8",
    "favicon.svg": b"image/svg+xml",
}
CONSOLE_PATHS = frozenset({CONSOLE_PATH, *(f"{CONSOLE_PATH}/{name}" for name in _ASSETS)})

CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS: Headers = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_ASSET_CACHE = (b"cache-control", b"public, max-age=86400")
_IDENTITY = b'<meta name="shop-identity" content="development">'


@dataclass(frozen=True, slots=True)
class ConsoleFile:
    body: bytes
    headers: Headers
    """Its content type, caching and security headers."""


def console_files(*, verified: bool) -> dict[str, ConsoleFile]:
    """The page and its assets by path (blocking: read once, off the loop). `verified`: tokens
    are verified (jwt mode), so the page asks for one."""
    folder = importlib.resources.files("gateway") / "console_assets"
    served: dict[str, ConsoleFile] = {}
    page = (folder / "index.html").read_bytes()
    if _IDENTITY not in page:
        raise RuntimeError("gateway/console_assets/index.html lacks its identity: run make gen")
    if verified:
        page = page.replace(_IDENTITY, _IDENTITY.replace(b"development", b"verified"))
    for name, content_type in _ASSETS.items():
        path = f"{CONSOLE_PATH}/{name}".encode()
        body = (folder / name).read_bytes()
        version = hashlib.sha256(body).hexdigest()[:16].encode()
        quoted = b'"' + path + b'"'
        if quoted not in page:
            raise RuntimeError(f"gateway/console_assets/index.html does not load {name}")
        page = page.replace(quoted, b'"' + path + b"?v=" + version + b'"')
        headers = [(b"content-type", content_type), _ASSET_CACHE, *_SECURITY_HEADERS]
        served[path.decode()] = ConsoleFile(body, headers)
    html = (b"content-type", b"text/html; charset=utf-8")
    served[CONSOLE_PATH] = ConsoleFile(
        page, [html, (b"cache-control", b"no-cache"), *_SECURITY_HEADERS]
    )
    return served
