"""The gateway's public surface, and each of its subpackages', is what `__all__` says."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import gateway

SUBPACKAGES = {
    "gateway.openapi": [
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
    ],
    "gateway.protojson": [
        "MAX_DEPTH",
        "DecodeError",
        "Encode",
        "decoder",
        "encoder",
        "field_decoder",
        "field_encoder",
        "field_paths",
        "is_plain_message",
    ],
    "gateway.rpc": [
        "Codec",
        "Exchange",
        "Procedure",
        "exchange_for",
        "procedures_of",
        "refusal_form",
        "unknown_procedure",
    ],
    "gateway.streams": [
        "NDJSON_FORMAT",
        "SSE_FORMAT",
        "Revisions",
        "Writer",
        "negotiate",
        "relay",
        "revisions_of",
        "stopping_error",
        "writer_for",
    ],
}


def test_public_members() -> None:
    assert sorted(gateway.__all__) == ["Gateway", "RunningGateway", "Settings", "serve", "start"]
    for name in gateway.__all__:
        assert getattr(gateway, name).__module__.startswith("gateway.")


def test_every_subpackage_is_pinned() -> None:
    root = Path(gateway.__file__).parent
    assert {f"gateway.{init.parent.name}" for init in root.glob("*/__init__.py")} == set(
        SUBPACKAGES
    )


@pytest.mark.parametrize(("name", "members"), SUBPACKAGES.items())
def test_subpackage_members(name: str, members: list[str]) -> None:
    package = importlib.import_module(name)
    assert sorted(package.__all__) == sorted(members)
    for member in members:
        assert hasattr(package, member)
