"""Schemathesis fuzzes every operation of the gateway's own /openapi.json against the real
system (user_svc, order_svc and the gateway, on SQLite in a temporary directory): no request
it makes, valid or not, may get a server error (5xx).

The system runs in a thread of its own, on its own event loop; the `st run` CLI, in a
process of its own, fuzzes it (all phases, a fixed seed, a few examples per operation) and
prints each failure with a curl command that reproduces it. Allowances, all documented:
- the watch streams (`:watch`) are left out: a watch never ends by itself, so a fuzzed call
  would last until its deadline; `test_watch_lines_follow_the_document` reads one instead;
- a 504 is the answer to a `Grpc-Timeout` under a second that ran out (Schemathesis loves
  `0H`), not a fault: the check `not_a_server_error_nor_asked_deadline` says so, loaded
  into the CLI from this module (`SCHEMATHESIS_HOOKS`);
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import pathlib
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from openapi_schema_validator import OAS31Validator
from schemathesis.checks import not_a_server_error

from gateway import Settings, start
from gateway.config import services_of
from gateway.errors import RequestError
from gateway.metadata import parse_timeout
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.support import running_order_svc, running_user_svc

pytestmark = pytest.mark.e2e

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES_PER_OPERATION = 30
SEED = 20240917
SHORT_DEADLINE_SECONDS = 1.0
"""A 504 for a `Grpc-Timeout` below this is the deadline working, not a fault."""


@dataclass(frozen=True)
class System:
    url: str
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event


async def _serve(data: pathlib.Path, ready: concurrent.futures.Future[System]) -> None:
    stop = asyncio.Event()
    async with (
        running_user_svc(f"sqlite:///{data}/users.db", data / "user_svc") as users,
        running_order_svc(
            f"sqlite:///{data}/orders.db", data / "order_svc", f"127.0.0.1:{users.port}"
        ) as orders,
    ):
        settings = Settings(
            backends=services_of(user_pb2.DESCRIPTOR, f"127.0.0.1:{users.port}")
            | services_of(order_pb2.DESCRIPTOR, f"127.0.0.1:{orders.port}"),
            listen="127.0.0.1:0",
            grace_seconds=1,
        )
        gateway = await start(settings)
        try:
            ready.set_result(System(gateway.url, asyncio.get_running_loop(), stop))
            await stop.wait()
        finally:
            await gateway.stop()


@contextlib.contextmanager
def running_system(data: pathlib.Path) -> Iterator[System]:
    """The three parts on ephemeral ports, served by a thread until the block ends."""
    ready: concurrent.futures.Future[System] = concurrent.futures.Future()

    def run() -> None:
        try:
            asyncio.run(_serve(data, ready))
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error)
            raise

    thread = threading.Thread(target=run, name="system", daemon=True)
    thread.start()
    try:
        system = ready.result(timeout=60)
    except BaseException:
        thread.join(30)
        raise
    try:
        yield system
    finally:
        system.loop.call_soon_threadsafe(system.stop.set)
        thread.join(30)
        assert not thread.is_alive(), "the system did not stop"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(tmp_path_factory.mktemp("system")) as running:
        yield running


def _short_deadline(headers: Mapping[str, Any] | None) -> bool:
    for name, value in (headers or {}).items():
        if name.lower() == "grpc-timeout":
            try:
                return parse_timeout(str(value)) < SHORT_DEADLINE_SECONDS
            except RequestError:
                return False
    return False


@schemathesis.check
def not_a_server_error_nor_asked_deadline(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """`not_a_server_error`, except a 504 for a deadline under a second the case asked for."""
    if response.status_code == 504 and _short_deadline(case.headers):
        return None
    return not_a_server_error(ctx, response, case)


def test_no_operation_answers_a_server_error(system: System, tmp_path: pathlib.Path) -> None:
    document = httpx.get(f"{system.url}/openapi.json", timeout=10).json()
    spec = tmp_path / "openapi.json"
    spec.write_bytes(orjson.dumps(document))
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", str(spec), "--url", system.url),
        *("--checks", not_a_server_error_nor_asked_deadline.__name__),
        *("--exclude-path-regex", ":watch$"),
        *("--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED)),
        *("--generation-database", "none", "--request-timeout", "30", "--no-color"),
    ]
    # The CLI imports this module for its check.
    env = {**os.environ, "SCHEMATHESIS_HOOKS": __name__, "PYTHONPATH": str(ROOT)}
    # Run in tmp_path: whatever the CLI writes stays out of the working tree.
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[max(report.find("\n====="), 0) :]
    fuzzed = sum(len(item) for path, item in document["paths"].items() if ":watch" not in path)
    total = sum(len(item) for item in document["paths"].values())
    assert f"Selected: {fuzzed}/{total}" in report
    assert f"Tested: {fuzzed}" in report


async def test_watch_lines_follow_the_document(system: System) -> None:
    """The fuzzing leaves the watches out: one read here, its first line checked against
    the NDJSON schema the document gives it."""
    async with httpx.AsyncClient(base_url=system.url, timeout=10) as http:
        document = (await http.get("/openapi.json")).json()
        email = f"watch-{uuid.uuid4().hex[:12]}@example.com"
        created = await http.post("/v1/users", json={"email": email})
        assert created.status_code < 300, created.text
        operation = document["paths"]["/v1/users:watch"]["get"]
        media = operation["responses"]["200"]["content"]["application/x-ndjson"]
        validator = OAS31Validator(
            {**media["schema"], "components": document["components"]},
            format_checker=OAS31Validator.FORMAT_CHECKER,
        )
        async with http.stream(
            "GET", "/v1/users:watch", params={"startRevision": "1"}, headers={"Grpc-Timeout": "5S"}
        ) as stream:
            assert stream.status_code == 200
            line = await anext(stream.aiter_lines())
    validator.validate(orjson.loads(line))
    assert orjson.loads(line)["result"]["events"], "the watch replays the created user"
