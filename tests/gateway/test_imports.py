"""What the gateway's modules import, read from their source: the services only through
their descriptors, and a subpackage of the gateway only through its `__init__`."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import gateway

ROOT = Path(gateway.__file__).parent
SERVICES = frozenset({"user_svc", "order_svc", "shop"})
"""The services' code and their generated code (`shop.*`): the gateway reads descriptors."""
DESCRIPTOR_IMPORTS = {
    ("gateway.config", "shop.user.v1.user_pb2"),
    ("gateway.config", "shop.order.v1.order_pb2"),
}
"""The exception: the settings name the proto files served by default, by their
DESCRIPTOR (the generated messages, not the service stubs)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}
PACKAGES = frozenset(module_name(path) for path in ROOT.rglob("__init__.py"))
SUBPACKAGES = PACKAGES - {"gateway"}


def imports(module: str, source: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(module, names) per import statement: `import a.b` is ("a.b", ()), `from a import
    b, c` is ("a", ("b", "c")); a relative import is made absolute."""
    package = module if module in PACKAGES else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            yield base, tuple(alias.name for alias in node.names)


def service_imports(module: str, source: str) -> list[str]:
    found = []
    for base, names in imports(module, source):
        for target in [f"{base}.{name}" for name in names] or [base]:
            if target.split(".")[0] in SERVICES and (module, target) not in DESCRIPTOR_IMPORTS:
                found.append(f"{module} imports {target}")
    return found


def private_imports(module: str, source: str) -> list[str]:
    """Imports of a subpackage's own modules from outside the subpackage."""
    found = []
    for base, names in imports(module, source):
        for target in dict.fromkeys([base, *(f"{base}.{name}" for name in names)]):
            if target not in MODULES or target in SUBPACKAGES:
                continue
            package = next((p for p in SUBPACKAGES if target.startswith(f"{p}.")), None)
            if package is not None and module != package and not module.startswith(f"{package}."):
                found.append(f"{module} imports {target}, not {package}")
    return found


def test_the_gateway_knows_the_services_only_by_their_descriptors() -> None:
    found = [
        violation
        for module, path in MODULES.items()
        for violation in service_imports(module, path.read_text())
    ]
    assert found == []


def test_a_subpackage_is_imported_only_through_its_init() -> None:
    assert {"gateway.openapi", "gateway.protojson", "gateway.streams"} <= SUBPACKAGES
    found = [
        violation
        for module, path in MODULES.items()
        for violation in private_imports(module, path.read_text())
    ]
    assert found == []


def test_the_checks_see_what_they_forbid() -> None:
    source = (
        "from gateway.streams._relay import relay\n"
        "from gateway.openapi import _docs\n"
        "import gateway.protojson._errors\n"
        "from .streams._sse import revisions_of\n"
        "from gateway.streams import relay\n"
        "from shop.user.v1 import user_pb2_grpc\n"
        "import order_svc.app\n"
    )
    assert private_imports("gateway.app", source) == [
        "gateway.app imports gateway.streams._relay, not gateway.streams",
        "gateway.app imports gateway.openapi._docs, not gateway.openapi",
        "gateway.app imports gateway.protojson._errors, not gateway.protojson",
        "gateway.app imports gateway.streams._sse, not gateway.streams",
    ]
    inside = "from gateway.streams._relay import relay\nfrom ._sse import revisions_of\n"
    assert private_imports("gateway.streams._negotiation", inside) == []
    assert service_imports("gateway.app", source) == [
        "gateway.app imports shop.user.v1.user_pb2_grpc",
        "gateway.app imports order_svc.app",
    ]
    assert service_imports("gateway.config", "from shop.user.v1 import user_pb2") == []
