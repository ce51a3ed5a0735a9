"""OpenAPI 3.1 of the routes the gateway serves, built from its live routing table (so it
cannot drift from what is routed), with JSON Schemas of the messages as proto3 JSON
carries them, and the Swagger UI page that reads it at `/docs`. None of it is on the
request path: the document is built once, on its first request.
"""

from gateway.openapi._comments import comments_of
from gateway.openapi._docs import ASSET_PATHS, DOCS_PATH, Asset, assets, page
from gateway.openapi._document import document
from gateway.openapi._paths import openapi_path, openapi_paths, shape_of

__all__ = [
    "ASSET_PATHS",
    "DOCS_PATH",
    "Asset",
    "assets",
    "comments_of",
    "document",
    "openapi_path",
    "openapi_paths",
    "page",
    "shape_of",
]
