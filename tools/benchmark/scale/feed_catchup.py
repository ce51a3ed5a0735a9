"""The change feed on a load: a replay of the first 100k changes of the order feed (or all
it holds, if fewer), and a watch catching up from 1M revisions behind the head (or from the
start, on a smaller load), each read by one WatchOrders stream to the end; events per second,
gaps (there must be none), and order_svc's CPU and RSS while it serves them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

from benchmark.feed.stream import read_in_order
from benchmark.procfs import cpu_seconds, rss_mb
from benchmark.scale.loader import Loaded
from benchmark.scale.serving import start_on, storage_of
from benchmark.session import Session
from shop.order.v1 import order_pb2, order_pb2_grpc

REPLAY = 100_000
BEHIND = 1_000_000
MAX_MESSAGE = 16 * 1024 * 1024


async def _read(address: str, first: int, count: int) -> dict[str, Any]:
    """`count` events from revision `first`, as one client reads them."""
    options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        start = time.perf_counter()
        call = stub.WatchOrders(order_pb2.WatchOrdersRequest(start_revision=first))
        read = await read_in_order(call, first, count)
        seconds = time.perf_counter() - start
        call.cancel()
    return {
        "events": read.events,
        "seconds": round(seconds, 2),
        "events_per_s": round(read.events / seconds),
        "gaps": read.gaps,
    }


def _measured(pid: int, address: str, first: int, count: int) -> dict[str, Any]:
    cpu = cpu_seconds(pid)
    figures = asyncio.run(_read(address, first, count))
    spent = cpu_seconds(pid) - cpu
    figures |= {
        "order_svc_cpu_us_per_event": round(spent * 1e6 / max(1, figures["events"]), 1),
        "order_svc_rss_mb_after": round(rss_mb(pid), 1),
    }
    return figures


def feed_catchup(session: Session, loaded: Loaded) -> dict[str, Any]:
    system = start_on(session, loaded, no_gateway=True)
    pid = session.roots["order_svc" + storage_of(loaded).suffix]
    head = loaded.size.orders  # the order feed's history: one revision per loaded order
    replay = min(REPLAY, head)
    behind = min(BEHIND, head)
    found = {
        "replay": _measured(pid, system.order_addr, 1, replay),
        "catch_up": _measured(pid, system.order_addr, head - behind + 1, behind),
    }
    for name, f in found.items():
        print(
            f"{loaded.size.name} {loaded.target:<10} WatchOrders {name}: {f['events']:,} events "
            f"in {f['seconds']} s = {f['events_per_s']:,}/s, gaps {f['gaps']}",
            flush=True,
        )
    return found
