"""The policy table (`tests/policy_table.py`, the README's "Who may call what"), every RPC for
every caller, in jwt mode with mutual TLS between all parts (certificates from a test CA, as
`make certs` writes them), over the real services and gateway (one system for the module, on
SQLite), through gRPC and through the gateway's REST routes. Tokens are signed by a test
issuer whose key is served from a JWKS file.

Over gRPC every client presents a certificate from the CA (plaintext is refused): the owner,
another user and an admin (`shop.admin`) the test client's, with their tokens; the order
service and the gateway their own, without a token (the order service is who its certificate
names; the gateway's names no caller: anonymous); anonymous, a certificate naming nobody of
this trust domain. Through the gateway, the anonymous and gateway columns are the same
request: one without a token, which the gateway forwards with its certificate.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import certs
import httpx
import pytest
import pytest_asyncio

from tests import policy_table
from tests.policy_table import ANONYMOUS, GATEWAY, ORDER_SERVICE, Outcome
from tests.security import policy_cells
from tests.security.policy_cells import Stubs, World, bearer
from tests.security.system import (
    Issuer,
    Pki,
    running_gateway,
    running_order_svc,
    running_user_svc,
    secure_channel,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOT_THROUGH_THE_GATEWAY = (
    "the order service never calls through the gateway (it calls the user service directly): "
    "not a caller the gateway can have"
)
STRANGER = "stranger"
"""A client certificate from the CA whose SPIFFE id is of another trust domain."""


@dataclass
class System:
    world: World
    stubs: dict[str, Stubs]
    """Channels to both services with each gRPC caller's certificate."""
    http: httpx.AsyncClient


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    tmp = pathlib.Path(tmp_path_factory.mktemp("policy_mtls"))
    pki = Pki(tmp / "certs")
    stranger = certs.issue(pki.ca, STRANGER, uri=f"spiffe://elsewhere.test/{STRANGER}")
    certs.Files.of(pki.root, STRANGER).write(stranger)
    issuer = Issuer(tmp / "jwks.json")
    names = {
        ANONYMOUS: STRANGER,
        policy_table.OWNER: certs.TEST_CLIENT,
        ORDER_SERVICE: "order_svc",
        GATEWAY: "gateway",
    }
    async with (
        running_user_svc(tmp, issuer.security(pki.tls("user_svc"))) as users,
        running_order_svc(tmp, issuer.security(pki.tls("order_svc")), users.port) as orders,
        running_gateway(
            issuer.security(pki.tls("gateway")), users.port, orders.port, rate_limit_per_second=0
        ) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=policy_cells.TIMEOUT) as http,
    ):
        channels = [
            (
                caller,
                secure_channel(users.port, pki.credentials(name), "user-svc"),
                secure_channel(orders.port, pki.credentials(name), "order-svc"),
            )
            for caller, name in names.items()
        ]
        try:
            stubs = {caller: Stubs.of(u, o) for caller, u, o in channels}
            for caller in (policy_table.ANOTHER_USER, policy_table.ADMIN):
                stubs[caller] = stubs[policy_table.OWNER]
            world = await policy_cells.make_world(issuer, stubs[policy_table.ADMIN])
            yield System(world, stubs, http)
        finally:
            for _, u, o in channels:
                await u.close(None)
                await o.close(None)


@pytest.mark.parametrize(("rpc", "caller", "outcome"), policy_table.cells())
async def test_grpc(system: System, rpc: str, caller: str, outcome: Outcome) -> None:
    world = system.world
    target = await policy_cells.target(world, rpc)
    token = policy_cells.user_token(world, caller, target)
    metadata = () if token is None else bearer(token)
    await policy_cells.check_grpc(rpc, outcome, system.stubs[caller], target, metadata)


@pytest.mark.parametrize(
    ("rpc", "caller", "outcome"), policy_table.cells({ORDER_SERVICE: NOT_THROUGH_THE_GATEWAY})
)
async def test_rest(system: System, rpc: str, caller: str, outcome: Outcome) -> None:
    target = await policy_cells.target(system.world, rpc)
    headers = policy_cells.rest_headers(policy_cells.user_token(system.world, caller, target))
    response = await policy_cells.rest_call(system.http, rpc, target, headers)
    policy_cells.check_rest(rpc, outcome, response)
