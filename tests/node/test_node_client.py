"""The Node client (clients/node) and the TypeScript stubs (gen/ts) against the real services.

Starts user_svc and order_svc in this process on free ports, on SQLite, then runs
`node --test tests/node/client.test.mjs` with their addresses in SHOP_USER_ADDR and
SHOP_ORDER_ADDR (node's own output is the failure message), and the README's example
`node clients/node/example.mjs USER_ADDR ORDER_ADDR`. Needs Node.js 20+ and node_modules/
(`make setup` runs `npm ci` from package-lock.json).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import re
import shutil
from collections.abc import AsyncIterator

import pytest

from tests.support import running_order_svc, running_user_svc

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODE_TEST = ROOT / "tests" / "node" / "client.test.mjs"
EXAMPLE = ROOT / "clients" / "node" / "example.mjs"
# npm ci writes this last: its presence means node_modules/ is complete.
NODE_MODULES_DONE = ROOT / "node_modules" / ".package-lock.json"
NODE_TIMEOUT_SECONDS = 90
# The spec reporter's summary; `node --test` also exits 0 when it found no test at all.
_PASSED = re.compile(r"^\S* ?pass (\d+)$", re.MULTILINE)


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the TypeScript client's test needs Node.js 20 or later")
    if not NODE_MODULES_DONE.exists():
        pytest.fail(
            "node_modules/ is missing: run `make setup` (it runs `npm ci` from "
            "package-lock.json; where .venv is already set up, `npm ci` alone does it)"
        )
    return node


@contextlib.asynccontextmanager
async def shop(tmp_path: pathlib.Path) -> AsyncIterator[tuple[str, str]]:
    """user_svc and order_svc on SQLite: their addresses."""
    async with running_user_svc(
        f"sqlite:///{tmp_path}/user_svc.db", tmp_path / "user_svc"
    ) as user_server:
        user_addr = f"127.0.0.1:{user_server.port}"
        async with running_order_svc(
            f"sqlite:///{tmp_path}/order_svc.db", tmp_path / "order_svc", user_addr
        ) as order_server:
            yield user_addr, f"127.0.0.1:{order_server.port}"


async def run_node(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """node's exit code and output (stdout and stderr, interleaved)."""
    # Asynchronous: the services answer on this event loop while node runs.
    process = await asyncio.create_subprocess_exec(
        node_binary(),
        *args,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        output, _ = await process.communicate()
        text = output.decode(errors="replace")
        pytest.fail(f"node {' '.join(args)} did not finish in {NODE_TIMEOUT_SECONDS} s:\n{text}")
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def check_node_tests(name: str, code: int, output: str) -> None:
    """Fails unless `node --test name` exited 0 having passed at least one test."""
    if code != 0:
        pytest.fail(f"node --test {name} failed ({code}):\n{output}")
    passed = _PASSED.search(output)
    if passed is None or int(passed.group(1)) == 0:
        pytest.fail(f"node --test {name} ran no test:\n{output}")


async def test_the_node_client_against_the_services(tmp_path: pathlib.Path) -> None:
    node_binary()  # fails before the services start when Node.js is not ready
    name = str(NODE_TEST.relative_to(ROOT))
    async with shop(tmp_path) as (user_addr, order_addr):
        env = {**os.environ, "SHOP_USER_ADDR": user_addr, "SHOP_ORDER_ADDR": order_addr}
        code, output = await run_node("--test", "--test-reporter=spec", name, env=env)
    check_node_tests(name, code, output)


async def test_the_readme_example_runs_as_written(tmp_path: pathlib.Path) -> None:
    node_binary()
    async with shop(tmp_path) as (user_addr, order_addr):
        code, output = await run_node(str(EXAMPLE.relative_to(ROOT)), user_addr, order_addr)
    assert code == 0, output
    assert re.fullmatch(
        r"user \S+ ordered \S+: 7 EUR, PENDING\n"
        r"listed 1 user\(s\), 10 a page\n"
        r"GetUser\('not-an-id'\) failed: INVALID_ARGUMENT INVALID_ARGUMENT \[id\]\n",
        output,
    ), output
