"""The policy table (`tests/policy_table.py`, the README's "Who may call what"), every RPC for
every caller, in jwt mode without TLS, over the real services and gateway (one system for
the module, on SQLite), through gRPC and through the gateway's REST routes. Tokens are signed
by a test issuer whose key is served from a JWKS file.

The callers: anonymous (no token); the owner, another user and an admin (`shop.admin`) by
their tokens; the order service by its own token, whose `sub` `SHOP_SERVICE_SUBJECTS` names.
Without TLS the gateway has no identity of its own, so its column is a request through the
gateway without a token (the same request as the anonymous column's there).
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from tests import policy_table
from tests.policy_table import ANONYMOUS, GATEWAY, ORDER_SERVICE, Outcome
from tests.security import policy_cells
from tests.security.policy_cells import Stubs, World, bearer
from tests.security.system import ORDER_SVC_SUBJECT, jwt_system
from tests.support import channel_to

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOT_THROUGH_THE_GATEWAY = (
    "the order service never calls through the gateway (it calls the user service directly): "
    "not a caller the gateway can have"
)
NO_GATEWAY_IDENTITY = (
    "without TLS the gateway has no identity of its own: over gRPC its call without a token "
    "is the anonymous column's; this column is checked through the gateway (test_rest) and, "
    "with its certificate, in test_policy_mtls.py"
)


@dataclass
class System:
    world: World
    stubs: Stubs
    """Plaintext channels to both services."""
    http: httpx.AsyncClient


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    tmp = pathlib.Path(tmp_path_factory.mktemp("policy_jwt"))
    async with (
        jwt_system(tmp, rate_limit_per_second=0) as running,
        channel_to(running.users.port) as user_channel,
        channel_to(running.orders.port) as order_channel,
    ):
        stubs = Stubs.of(user_channel, order_channel)
        world = await policy_cells.make_world(running.issuer, stubs)
        yield System(world, stubs, running.http)


@pytest.mark.parametrize(
    ("rpc", "caller", "outcome"), policy_table.cells({GATEWAY: NO_GATEWAY_IDENTITY})
)
async def test_grpc(system: System, rpc: str, caller: str, outcome: Outcome) -> None:
    world = system.world
    target = await policy_cells.target(world, rpc)
    if caller == ANONYMOUS:
        metadata: policy_cells.Metadata = ()
    elif caller == ORDER_SERVICE:
        metadata = bearer(world.issuer.token(ORDER_SVC_SUBJECT))
    else:
        token = policy_cells.user_token(world, caller, target)
        assert token is not None
        metadata = bearer(token)
    await policy_cells.check_grpc(rpc, outcome, system.stubs, target, metadata)


@pytest.mark.parametrize(
    ("rpc", "caller", "outcome"), policy_table.cells({ORDER_SERVICE: NOT_THROUGH_THE_GATEWAY})
)
async def test_rest(system: System, rpc: str, caller: str, outcome: Outcome) -> None:
    target = await policy_cells.target(system.world, rpc)
    headers = policy_cells.rest_headers(policy_cells.user_token(system.world, caller, target))
    response = await policy_cells.rest_call(system.http, rpc, target, headers)
    policy_cells.check_rest(rpc, outcome, response)
