"""The rows measured over gRPC (h2c) with h2load, each checked by real calls before and after
it and by what it got back: h2load counts HTTP 200s, not gRPC statuses."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from benchmark.calls import create_order, get_user
from benchmark.load import Run, h2load
from benchmark.processes import sh
from benchmark.references import Echo
from benchmark.settings import IN_FLIGHT
from benchmark.system import System


def echo(server: Echo, log: Path, seconds: int) -> Run:
    check = [sys.executable, "check_echo.py", f"127.0.0.1:{server.port}"]
    sh(check, cwd=server.dir)
    url = f"http://127.0.0.1:{server.port}/echo.Echo/Echo"
    run, ok_http, data = h2load(url, server.frame, seconds, log)
    sh(check, cwd=server.dir)
    return count_replies(run, ok_http, data, server.frame.stat().st_size)


def get_user_grpc(
    system: System, log: Path, seconds: int, in_flight: int = IN_FLIGHT, rps: int | None = None
) -> Run:
    size = asyncio.run(get_user(system.user_addr, system.ids[0]))
    url = f"http://{system.user_addr}/shop.user.v1.UserService/GetUser"
    run, ok_http, data = h2load(url, system.user_frame, seconds, log, in_flight, rps)
    asyncio.run(get_user(system.user_addr, system.ids[0]))
    return count_replies(run, ok_http, data, size)


def count_replies(run: Run, ok_http: int, data: int, size: int) -> Run:
    """Every OK reply is `size` bytes of DATA; a failed status sends none."""
    run.errors += max(0, round((size * ok_http - data) / size))
    run.notes.append(f"reply DATA {data} B for {ok_http} replies of {size} B")
    return run


def create_order_grpc(
    system: System, log: Path, seconds: int, in_flight: int = IN_FLIGHT, rps: int | None = None
) -> Run:
    before = asyncio.run(create_order(system.order_addr, system.ids[0]))
    url = f"http://{system.order_addr}/shop.order.v1.OrderService/CreateOrder"
    run, ok_http, data = h2load(url, system.order_frame, seconds, log, in_flight, rps)
    created = asyncio.run(create_order(system.order_addr, system.ids[0])) - before - 1
    # Replies vary in size (timestamps, etag): count the orders made instead.
    run.errors += max(0, ok_http - created)
    run.notes.append(
        f"{created} orders made for {ok_http} replies, {data / max(1, ok_http):.0f} B each"
    )
    return run
