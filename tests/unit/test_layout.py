"""The walls of the code base, read from every module's imports.

- shop_common knows no service and no gateway; its subpackages stand in layers (process,
  domain, security, storage, feed, serving): none imports one after it.
- The services talk to each other only through generated stubs; a gateway process loads no
  storage, feed or service server (that it knows only descriptors: tests/gateway/test_imports.py).
- Code outside a shop_common subpackage imports only its public surface (its `__init__`).
- Each subpackage's surface is what its `__all__` says.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNTIME = ("shop_common", "user_svc", "order_svc", "gateway")
LAYERS = ("process", "telemetry", "domain", "security", "storage", "feed", "serving")


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> list[tuple[str, str]]:
    """(importing module, imported module) for every module of the four packages and tools."""
    found = []
    for package in (*RUNTIME, "tools"):
        for path in sorted((ROOT / package).rglob("*.py")):
            importer = _module_name(path)
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found += [(importer, alias.name) for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.append((importer, node.module))
                    found += [(importer, f"{node.module}.{a.name}") for a in node.names]
    return found


IMPORTS = _imports()


def _top(module: str) -> str:
    return module.split(".")[0]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "shop_common" else None


def test_shop_common_knows_no_service_and_no_gateway() -> None:
    wrong = [
        (a, b)
        for a, b in IMPORTS
        if _top(a) == "shop_common" and _top(b) in ("user_svc", "order_svc", "gateway")
    ]
    assert wrong == []


def test_shop_common_layers_import_only_downwards() -> None:
    wrong = []
    for a, b in IMPORTS:
        mine, theirs = _layer(a), _layer(b)
        if mine in LAYERS and theirs in LAYERS and LAYERS.index(theirs) > LAYERS.index(mine):
            wrong.append((a, b))
    assert wrong == []


@pytest.mark.parametrize(
    ("service", "other"), [("user_svc", "order_svc"), ("order_svc", "user_svc")]
)
def test_a_service_does_not_import_the_other(service: str, other: str) -> None:
    assert [(a, b) for a, b in IMPORTS if _top(a) == service and _top(b) == other] == []


def test_a_gateway_process_loads_no_storage_no_feed_and_no_service_server() -> None:
    """Not even through another layer: only `process` and `domain` (and no SQLAlchemy).
    (That it knows the services only by their descriptors: tests/gateway/test_imports.py.)"""
    code = "import sys, gateway, gateway.__main__; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    heavy = ("shop_common.storage", "shop_common.feed", "shop_common.serving", "sqlalchemy")
    assert [m for m in loaded if m.startswith(heavy)] == []


def test_code_outside_a_subpackage_imports_only_its_surface() -> None:
    wrong = []
    for a, b in IMPORTS:
        layer = _layer(b)
        if layer not in LAYERS or _layer(a) == layer:
            continue
        imported = b.split(".")
        if len(imported) > 2 and not _is_name_of_surface(b):
            wrong.append((a, b))
    assert wrong == []


def _is_name_of_surface(module: str) -> bool:
    """`shop_common.storage.Database` (a name the surface exports) is fine."""
    package, _, name = module.rpartition(".")
    if package.count(".") != 1:
        return False
    return name in getattr(importlib.import_module(package), "__all__", ())


@pytest.mark.parametrize("layer", LAYERS)
def test_each_surface_is_what_its_all_says(layer: str) -> None:
    package = importlib.import_module(f"shop_common.{layer}")
    public = [n for n in vars(package) if not n.startswith("_")]
    modules = [n for n in public if type(getattr(package, n)).__name__ == "module"]
    assert sorted(set(public) - set(modules)) == sorted(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None
