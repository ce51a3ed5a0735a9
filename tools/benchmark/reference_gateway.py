"""The gateway's reference, for `make bench` (not a test): the same GET measured through our
gateway and through the naive gateway the gateway issue describes, over one trivial backend.
Run from `tools/`:

    python -m benchmark.reference_gateway backend PORT        # GetOrder: a fixed order
    python -m benchmark.reference_gateway naive PORT BACKEND  # Starlette, uvicorn, json_format

The backend answers every GetOrder with the same order (about ten fields: nested, repeated,
int64, enum, timestamps), so that both gateways do the same work per request and the
backend costs little. The naive gateway is what the issue measured as its reference (its CPU
per request there is `targets.NAIVE_REFERENCE_CPU_US`): Starlette on uvicorn, `json_format`
to and from JSON, one channel, and none of the steps the issue lists as helping from there
(raw ASGI, orjson, uvicorn with httptools and uvloop): uvicorn runs its pure-Python defaults,
h11 on asyncio's loop. Figures from another machine compare with ours only through it,
measured in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2

from shop.order.v1 import order_pb2, order_pb2_grpc

PATH = "/v1/orders/{id}"


def fixed_order(order_id: str) -> order_pb2.Order:
    def money(units: int) -> money_pb2.Money:
        return money_pb2.Money(currency_code="EUR", units=units, nanos=500_000_000)

    items = [
        order_pb2.LineItem(sku=f"SKU-{n:04d}", quantity=n + 1, unit_price=money(3 * n + 2))
        for n in range(3)
    ]
    when = Timestamp(seconds=1_790_000_000, nanos=123_456_000)
    return order_pb2.Order(
        id=order_id,
        user_id="0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        items=items,
        total=money(27),
        state=order_pb2.Order.STATE_PENDING,
        create_time=when,
        update_time=when,
        etag="17",
    )


async def _get_order(
    request: order_pb2.GetOrderRequest, _context: grpc.aio.ServicerContext[Any, Any]
) -> order_pb2.GetOrderResponse:
    return order_pb2.GetOrderResponse(order=fixed_order(request.id))


async def _backend(port: int) -> None:
    server = grpc.aio.server()
    service = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name
    get_order = grpc.unary_unary_rpc_method_handler(
        _get_order,
        request_deserializer=order_pb2.GetOrderRequest.FromString,
        response_serializer=order_pb2.GetOrderResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, {"GetOrder": get_order}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"trivial backend listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


def _naive(port: int, backend: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    channel: grpc.aio.Channel | None = None

    async def get_order(request: Request) -> Response:
        assert channel is not None
        stub = order_pb2_grpc.OrderServiceStub(channel)
        reply = await stub.GetOrder(
            order_pb2.GetOrderRequest(id=request.path_params["id"]), timeout=10
        )
        # The HTTP rule's response_body is "order", as our gateway answers.
        return Response(json_format.MessageToJson(reply.order), media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        nonlocal channel
        channel = grpc.aio.insecure_channel(backend)
        print(f"naive gateway listening on http://127.0.0.1:{port}", flush=True)
        yield
        await channel.close(None)

    app = Starlette(routes=[Route(PATH, get_order)], lifespan=lifespan)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        http="h11",
        log_level="warning",
        access_log=False,
    )


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "backend":
        asyncio.run(_backend(int(argv[1])))
        return 0
    if len(argv) == 3 and argv[0] == "naive":
        _naive(int(argv[1]), argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
