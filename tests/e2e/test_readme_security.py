"""The README's jwt and mutual TLS walk-through ("Try it: jwt and mutual TLS on one
machine"), run as written: certificates and a development issuer, the system started by
`make run`'s script in jwt mode with a certificate per part, then the calls. Only the
directory (a temporary one, not the repository's `certs/`) and the addresses (ephemeral
ports) are swapped."""

from __future__ import annotations

import pathlib
import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ROOT, System, started_system, system_env

pytestmark = pytest.mark.e2e

TITLE = "### Try it: jwt and mutual TLS on one machine"


def blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(TITLE) :]
    section = section[: section.index("\n## ", len(TITLE))]
    found = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(found) == 3, "certificates, start, calls"
    return found


def in_directory(block: str, certs: pathlib.Path) -> str:
    return (
        block.replace("make certs", f".venv/bin/python tools/certs.py --out {certs}")
        .replace("tools/issuer.py ", f"tools/issuer.py --out {certs} ")
        .replace(
            'make run ARGS="--certs certs"', f"exec .venv/bin/python tools/run.py --certs {certs}"
        )
        .replace("certs/", f"{certs}/")
    )


def run(block: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    directory = tmp_path_factory.mktemp("secure") / "certs"
    made = run(in_directory(blocks()[0], directory))
    assert made.returncode == 0, made.stdout + made.stderr
    return directory


@pytest.fixture(scope="module")
def secure_system(
    certs: pathlib.Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    env = system_env(tmp_path_factory)
    for name in ("USER_SVC_DATABASE_URL", "ORDER_SVC_DATABASE_URL", "SHOP_AUTH"):
        env.pop(name, None)
    with started_system(["bash", "-c", in_directory(blocks()[1], certs)], env) as running:
        yield running


def test_the_walk_through_runs(certs: pathlib.Path, secure_system: System) -> None:
    assert secure_system.gateway_url.startswith("https://")
    assert any("(mutual TLS)" in line for line in secure_system.output)
    block = (
        in_directory(blocks()[2], certs)
        .replace("https://localhost:8080", secure_system.gateway_url)
        .replace("localhost:50051", secure_system.user_addr)
    )
    result = run(block)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '"status":"SERVING"' in out, out
    assert '"subject":"alice"' in out, out
    assert "HTTP/1.1 401 Unauthorized" in out, out
    assert 'www-authenticate: Bearer error="invalid_token"' in out, out
    assert '"reason":"TOKEN_INVALID"' in out, out
    assert re.search(r"^(\{.*\})?404$", out, flags=re.M), out  # /docs: after a JSON body
    assert '"subject": "alice"' in out, out  # grpcurl: ListUsers as the admin
    assert "refused: mutual TLS only" in out, out
