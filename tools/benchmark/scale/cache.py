"""Reads of users and orders the cache has not seen, against the same reads again: GetUser and
the first page of ListOrders for 4,000 users picked at random from the load, from one client
paced at MODERATE_RPS/s, once with the operating system's page cache dropped first (where
this process may: root writes /proc/sys/vm/drop_caches) and once again, warm.

The request rows ask for the same user or page every time, which the caches always hold;
these ask for a different one each time, as the traffic of a large user base does. On
PostgreSQL only the operating system's cache is dropped: its own buffers (`shared_buffers`,
128 MB by default, against a load of gigabytes) may still hold a few of the pages."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from benchmark.feed.results import ms, percentile
from benchmark.scale.loader import Loaded
from benchmark.scale.serving import start_on
from benchmark.session import Session
from benchmark.settings import MODERATE_RPS
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc

USERS = 4_000
SEED = 18
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def drop_caches() -> bool:
    """Drops the operating system's page cache; whether it could."""
    if not os.access(DROP_CACHES, os.W_OK):
        return False
    os.sync()
    try:
        DROP_CACHES.write_text("3\n")
    except OSError:
        return False
    return True


async def _paced(call: Callable[[str], Awaitable[object]], ids: list[str]) -> dict[str, Any]:
    """One call per id, one at a time, each at its time on a MODERATE_RPS/s schedule."""
    latencies, errors = [], 0
    start = time.perf_counter()
    for i, user_id in enumerate(ids):
        if (delay := start + i / MODERATE_RPS - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        began = time.perf_counter()
        try:
            await call(user_id)
        except grpc.aio.AioRpcError:
            errors += 1
            continue
        latencies.append(time.perf_counter() - began)
    latencies.sort()
    return {
        "requests": len(ids),
        "errors": errors,
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(latencies[-1]) if latencies else None,
    }


async def _reads(user_addr: str, order_addr: str, ids: list[str]) -> dict[str, Any]:
    async with (
        grpc.aio.insecure_channel(user_addr) as user_channel,
        grpc.aio.insecure_channel(order_addr) as order_channel,
    ):
        users = user_pb2_grpc.UserServiceStub(user_channel)
        orders = order_pb2_grpc.OrderServiceStub(order_channel)
        await users.GetUser(user_pb2.GetUserRequest(id=ids[0]), timeout=10)  # connected
        await orders.ListOrders(order_pb2.ListOrdersRequest(user_id=ids[0]), timeout=10)

        async def get_user(user_id: str) -> object:
            return await users.GetUser(user_pb2.GetUserRequest(id=user_id), timeout=10)

        async def list_orders(user_id: str) -> object:
            request = order_pb2.ListOrdersRequest(user_id=user_id, page_size=50)
            return await orders.ListOrders(request, timeout=10)

        return {
            "get_user": await _paced(get_user, ids[1:]),
            "list_orders": await _paced(list_orders, ids[1:]),
        }


def cache(session: Session, loaded: Loaded) -> dict[str, Any]:
    system = start_on(session, loaded, no_gateway=True)
    ids = random.Random(SEED).sample(loaded.plan.user_ids, min(USERS, loaded.size.users))
    dropped = drop_caches()
    cold = asyncio.run(_reads(system.user_addr, system.order_addr, ids))
    warm = asyncio.run(_reads(system.user_addr, system.order_addr, ids))
    for name, found in (("cold", cold), ("warm", warm)):
        print(
            f"{loaded.size.name} {loaded.target:<10} random users, {name}"
            f"{'' if dropped or name == 'warm' else ' (page cache not dropped)'}: "
            f"GetUser p99 {found['get_user']['p99_ms']} ms, "
            f"ListOrders p99 {found['list_orders']['p99_ms']} ms",
            flush=True,
        )
    return {"page_cache_dropped": dropped, "cold": cold, "warm": warm}
