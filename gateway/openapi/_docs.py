"""The API reference page at `/docs`: Swagger UI 5 (it reads OpenAPI 3.1) over the gateway's
`/openapi.json`. Its script and style are served by the gateway itself, from the static files
of the pinned swagger-ui-py wheel, so the page works on a machine without internet and loads
nothing from a third party."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

DOCS_PATH = "/docs"

_ASSETS = {
    "swagger-ui.css": b"text/css; charset=utf-8",
    "swagger-ui-bundle.js": b"text/javascript; charset=utf-8",
}
ASSET_PATHS = frozenset(f"{DOCS_PATH}/{name}" for name in _ASSETS)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API reference</title>
<link rel="stylesheet" href="DOCS/swagger-ui.css">
</head>
<body>
<div id="docs"></div>
<script src="DOCS/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: SPEC_URL, dom_id: "#docs"});</script>
</body>
</html>
"""


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: bytes


def page(spec_url: str) -> bytes:
    """The Swagger UI page reading the document at `spec_url`."""
    # JSON is a JS literal; escaping <, > and & keeps `</script>` out of the page.
    literal = json.dumps(spec_url)
    for char in "<>&":
        literal = literal.replace(char, f"\\u{ord(char):04x}")
    return _PAGE.replace("DOCS", DOCS_PATH).replace("SPEC_URL", literal).encode()


def assets() -> dict[str, Asset]:
    """The page's script and style by path, read from the wheel (blocking: once, off the loop).

    Located without importing `swagger_ui`, whose own code (a framework adapter) is not used.
    """
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed: pip install the project again")
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    return {
        f"{DOCS_PATH}/{name}": Asset((static / name).read_bytes(), content_type)
        for name, content_type in _ASSETS.items()
    }
