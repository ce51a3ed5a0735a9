"""`shop-api` (gen/python) is a client package on its own: installed alone into a fresh
virtualenv, with no server code, its types satisfy mypy --strict, and the README's example
client runs as written against the real services."""

from __future__ import annotations

import asyncio
import importlib.metadata
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from tests.support import Services

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "clients" / "python" / "example.py"


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    home = tmp_path_factory.mktemp("client")
    source = home / "shop-api"
    shutil.copytree(ROOT / "gen" / "python", source)  # builds leave nothing in the repository
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    python = home / "venv" / "bin" / "python"
    # What a team that type-checks its client installs: the package and grpc's type stubs.
    stubs = [f"{name}=={importlib.metadata.version(name)}" for name in ("grpc-stubs",)]
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(source), *stubs],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return python


def test_the_package_holds_only_generated_code(client_python: pathlib.Path) -> None:
    probe = subprocess.run(
        [
            str(client_python),
            "-c",
            "import importlib.util as u, shop.user.v1.user_pb2_grpc, shop.order.v1.order_pb2\n"
            "servers = ('user_svc', 'order_svc', 'shop_common', 'gateway')\n"
            "print([m for m in servers if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    )
    assert probe.stdout.strip() == "[]"


def test_the_example_type_checks_against_the_installed_stubs(
    client_python: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # googleapis-common-protos (google.rpc, google.type) ships no type information at all;
    # everything of shop-api is checked.
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\nstrict = True\n[mypy-google.rpc.*,google.type.*]\nignore_missing_imports = True\n"
    )
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-incremental",
            "--config-file",
            str(config),
            "--python-executable",
            str(client_python),
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_the_readme_example_runs_as_written(
    client_python: pathlib.Path, services: Services
) -> None:
    user_addr = f"127.0.0.1:{services.user_server.port}"
    order_addr = f"127.0.0.1:{services.order_server.port}"
    process = await asyncio_subprocess(str(client_python), str(EXAMPLE), user_addr, order_addr)
    assert process[0] == 0, process[2]
    first, second = process[1].splitlines()
    assert re.fullmatch(r"user \S+ ordered \S+: 7 EUR, STATE_PENDING", first), first
    assert second == "GetUser('not-an-id') failed: INVALID_ARGUMENT INVALID_ARGUMENT"


async def asyncio_subprocess(*argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd="/"
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
