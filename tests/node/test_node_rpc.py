"""Browser protocols from Node: the generated stubs (gen/ts) called through the gateway's
Connect and gRPC-Web endpoints (`/<package>.<Service>/<Method>`) by connect-es's own
transports over HTTP/1.1 (@connectrpc/connect-node's, and @connectrpc/connect-web's, the
browsers', on Node's fetch), in front of the real services.

Starts user_svc and order_svc (SQLite) and the gateway in this process on free ports, then
runs `node --test tests/node/rpc.test.mjs` with the gateway's URL and limits in SHOP_GATEWAY_*
variables; node's own output is the failure message.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import AsyncIterator

from gateway import RunningGateway, Settings, start
from gateway.config import services_of
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from tests.node.test_node_client import ROOT, check_node_tests, node_binary, run_node, shop

RPC_TEST = ROOT / "tests" / "node" / "rpc.test.mjs"
MAX_BODY_BYTES = 64 * 1024
"""Small, so that a body over it is quick to send."""
STREAMS_PER_CALLER = 8


@contextlib.asynccontextmanager
async def gateway_to(user_addr: str, order_addr: str) -> AsyncIterator[RunningGateway]:
    """The gateway in development identity on an ephemeral port. No rate limit: one caller
    (127.0.0.1) makes a few hundred calls in a few seconds here. The stream cap is on: a
    watch the client aborted must give its slot back."""
    settings = Settings(
        backends=services_of(user_pb2.DESCRIPTOR, user_addr)
        | services_of(order_pb2.DESCRIPTOR, order_addr),
        listen="127.0.0.1:0",
        grace_seconds=1,
        max_body_bytes=MAX_BODY_BYTES,
        rate_limit_per_second=0,
        max_streams_per_caller=STREAMS_PER_CALLER,
    )
    running = await start(settings)
    try:
        yield running
    finally:
        await running.stop()


async def test_connect_and_grpc_web_from_node_through_the_gateway(
    tmp_path: pathlib.Path,
) -> None:
    node_binary()  # fails before anything starts when Node.js is not ready
    name = str(RPC_TEST.relative_to(ROOT))
    async with (
        shop(tmp_path) as (user_addr, order_addr),
        gateway_to(user_addr, order_addr) as gateway,
    ):
        env = {
            **os.environ,
            "SHOP_GATEWAY_URL": gateway.url,
            "SHOP_GATEWAY_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "SHOP_GATEWAY_STREAMS_PER_CALLER": str(STREAMS_PER_CALLER),
        }
        code, output = await run_node("--test", "--test-reporter=spec", name, env=env)
    check_node_tests(name, code, output)
