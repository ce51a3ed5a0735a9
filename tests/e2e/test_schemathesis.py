"""Schemathesis tests the real system (user_svc, order_svc and the gateway, on SQLite in a
temporary directory) from nothing but the gateway's own /openapi.json: no request it makes,
valid or not, may get a server error (5xx) or a response the document does not describe
(status, content type, headers, body schema).

The system runs in a thread of its own, on its own event loop; the `st run` CLI, in a
process of its own, tests it (a fixed seed, a few examples per operation) and prints each
failure with a curl command that reproduces it. Two runs:
- every operation on its own (examples, coverage and fuzzing phases);
- the stateful phase: scenarios of a few steps that follow the document's links, from each
  create to the operations on what it created (get, update, delete, cancel), checked to
  have followed every link.
Allowances, all documented:
- the watch streams (`:watch`) are left out: a watch never ends by itself, so a fuzzed call
  would last until its deadline; `test_watch_lines_follow_the_document` reads one instead;
- a 504 is the answer to a `Grpc-Timeout` under a second that ran out (Schemathesis loves
  `0H`), not a fault, where the document lists 504: the check
  `not_a_server_error_nor_asked_deadline` says so, loaded into the CLI from this module
  (`SCHEMATHESIS_HOOKS`);
- the protos do not say what makes an e-mail address or an order valid, so the stateful
  phase's valid (positive) creates are given one (`map_case`): without a created resource
  there is no link to follow. Its invalid (negative) cases, and the other phases, are left
  as generated.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import pathlib
import re
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
from schemathesis.generation import GenerationMode
from schemathesis.generation.meta import TestPhase

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
SCENARIOS = 60
"""The stateful phase's `--max-examples`: how many scenarios it runs, each of at most
`STEPS` calls."""
STEPS = 6
CHECKS = (
    "not_a_server_error_nor_asked_deadline",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
USER_FOR_ORDERS = "SHOP_FUZZ_USER_ID"
"""Names the user the stateful phase's valid orders are for (the test creates it)."""
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
    """`not_a_server_error`, except a 504 for a deadline under a second the case asked for,
    where the document lists 504 for the operation."""
    documented = "504" in case.operation.responses.status_codes
    if response.status_code == 504 and documented and _short_deadline(case.headers):
        return None
    return not_a_server_error(ctx, response, case)


_EMAILS = itertools.count(1)


@schemathesis.hook
def map_case(ctx: schemathesis.HookContext, case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    """A valid create in the stateful phase makes a resource the links can then use."""
    meta = case.meta
    if meta is None or meta.phase.name != TestPhase.STATEFUL:
        return case
    if meta.generation.mode != GenerationMode.POSITIVE or not isinstance(case.body, dict):
        return case
    if case.operation.label == "POST /v1/users":
        case.body["email"] = f"fuzz-{next(_EMAILS)}@example.com"
        # A user no subject owns (the development admin's): a generated `subject` would be
        # taken by an earlier create (409), and the links would have nothing to follow.
        if case.query:
            case.query.pop("subject", None)
    elif case.operation.label == "POST /v1/orders":
        price: dict[str, Any] = {"currencyCode": "EUR", "units": "3", "nanos": 0}
        item: dict[str, Any] = {"sku": "SKU-1", "quantity": 2, "unitPrice": price}
        case.body.update(userId=os.environ[USER_FOR_ORDERS], items=[item])
    return case


def _run(
    system: System, document: dict[str, Any], tmp_path: pathlib.Path, *options: str
) -> tuple[str, list[dict[str, Any]]]:
    """Runs the CLI on the document; its report and the events it recorded."""
    spec = tmp_path / "openapi.json"
    spec.write_bytes(orjson.dumps(document))
    # Only the document's links: no links inferred from names or `Location` headers.
    config = (
        f"[phases.stateful]\nmax-steps = {STEPS}\n[phases.stateful.inference]\nalgorithms = []\n"
    )
    (tmp_path / "schemathesis.toml").write_text(config)
    events = tmp_path / "events.ndjson"
    command = [
        *(sys.executable, "-m", "schemathesis.cli"),
        *("--config-file", str(tmp_path / "schemathesis.toml")),
        *("run", str(spec), "--url", system.url),
        *("--checks", ",".join(CHECKS)),
        *("--exclude-path-regex", ":watch$", "--seed", str(SEED)),
        *("--generation-database", "none", "--request-timeout", "30", "--no-color"),
        *("--report", "ndjson", "--report-ndjson-path", str(events)),
        *options,
    ]
    # The CLI imports this module for its check and its hook.
    env = {**os.environ, "SCHEMATHESIS_HOOKS": __name__, "PYTHONPATH": str(ROOT)}
    # Run in tmp_path: whatever the CLI writes stays out of the working tree.
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[max(report.find("\n====="), 0) :]
    return report, [orjson.loads(line) for line in events.read_bytes().splitlines()]


def _tested(document: dict[str, Any]) -> tuple[int, int]:
    tested = sum(len(item) for path, item in document["paths"].items() if ":watch" not in path)
    return tested, sum(len(item) for item in document["paths"].values())


def test_no_operation_answers_a_server_error_or_off_the_document(
    system: System, tmp_path: pathlib.Path
) -> None:
    document = httpx.get(f"{system.url}/openapi.json", timeout=10).json()
    report, _ = _run(
        system,
        document,
        tmp_path,
        *("--phases", "examples,coverage,fuzzing"),
        *("--max-examples", str(EXAMPLES_PER_OPERATION)),
    )
    tested, total = _tested(document)
    assert f"Selected: {tested}/{total}" in report
    assert f"Tested: {tested}" in report


def declared_links(document: dict[str, Any]) -> set[str]:
    """Each link of the document as Schemathesis names the transition it follows."""
    labels = {
        op["operationId"]: f"{verb.upper()} {path}"
        for path, item in document["paths"].items()
        for verb, op in item.items()
    }
    return {
        f"{labels[op['operationId']]} -> [{status}] {name} -> {labels[link['operationId']]}"
        for item in document["paths"].values()
        for op in item.values()
        for status, response in op["responses"].items()
        for name, link in response.get("links", {}).items()
    }


def followed(events: list[dict[str, Any]]) -> dict[str, set[int]]:
    """Each transition the stateful phase took, with the statuses its target answered."""
    found: dict[str, set[int]] = {}
    for event in events:
        recorder = event.get("ScenarioFinished", {}).get("recorder", {})
        for case_id, case in recorder.get("cases", {}).items():
            transition = case.get("transition")
            interaction = recorder.get("interactions", {}).get(case_id) or {}
            if transition is not None and interaction.get("response"):
                status = interaction["response"]["status_code"]
                found.setdefault(transition["id"], set()).add(status)
    return found


@pytest.mark.parametrize("collection", ["/v1/users", "/v1/orders"])
def test_stateful_scenarios_follow_every_link_within_the_document(
    system: System, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, collection: str
) -> None:
    """One run per collection. Schemathesis 4.32.5 starts scenarios from the operations it
    deems likely to succeed, and only where there are none from the others; it reads the
    order's `userId` as a reference to a `User` that no operation makes (ours is
    `shop.user.v1.User`), so the orders' create starts scenarios only in a run of its own."""
    document = httpx.get(f"{system.url}/openapi.json", timeout=10).json()
    owner = httpx.post(
        f"{system.url}/v1/users",
        json={"email": f"orders-{uuid.uuid4().hex[:8]}@example.com"},
        timeout=10,
    )
    assert owner.status_code == 201, owner.text
    monkeypatch.setenv(USER_FOR_ORDERS, owner.json()["id"])
    report, events = _run(
        system,
        document,
        tmp_path,
        *("--phases", "stateful", "--max-examples", str(SCENARIOS)),
        *("--include-path-regex", f"^{re.escape(collection)}"),
    )
    links = {link for link in declared_links(document) if link.startswith(f"POST {collection} ")}
    assert len(links) == {"/v1/users": 3, "/v1/orders": 2}[collection]
    covered = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", report)
    assert covered is not None, report
    assert covered.groups() == (str(len(links)), str(len(links)))
    taken = followed(events)
    assert set(taken) == links  # the document's links, and no inferred ones
    # Each link reached what was created at least once (a success, not only refusals).
    assert all(any(status < 300 for status in taken[link]) for link in links), taken


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
