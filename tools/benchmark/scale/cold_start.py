"""order_svc's cold start against a load: user_svc on the loaded users, order_svc on an
empty database of its own, timed from its start to its view of users being current (the
user-feed health entry SERVING: every user listed into the view, then watching), with its
peak and final RSS. The view lives in the database: the listing is written a page at a
time, so memory must not grow with the users."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from grpc_health.v1 import health_pb2

from benchmark import postgres
from benchmark.calls import health_status
from benchmark.errors import BenchError
from benchmark.procfs import cpu_seconds
from benchmark.scale.loader import Loaded
from benchmark.scale.serving import RETENTION_SECONDS
from benchmark.session import Session
from benchmark.settings import REPO
from order_svc.user_feed import HEALTH_NAME as USER_FEED_HEALTH

SERVING_WITHIN_SECONDS = 600.0
"""How long the bench waits for SERVING before it calls the cold start failed."""


def memory_mb(pid: int) -> tuple[float, float]:
    """The process's peak RSS (VmHWM) and RSS now, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    peak, now = (int(re.search(rf"^{k}:\s+(\d+)", status, re.M)[1]) for k in ("VmHWM", "VmRSS"))  # type: ignore[index]
    return peak / 1024, now / 1024


def cold_start(session: Session, loaded: Loaded, admin_url: str | None) -> dict[str, Any]:
    """Starts user_svc on the load and order_svc on an empty database; the figures."""
    data = session.tmp / "cold"
    env = {
        "SHOP_DATA_DIR": str(data),
        "SHOP_FEED_RETENTION_SECONDS": str(RETENTION_SECONDS),
        "USER_SVC_LISTEN": "127.0.0.1:0",
        "ORDER_SVC_LISTEN": "127.0.0.1:0",
        "USER_SVC_DATABASE_URL": loaded.user_url,
    }
    if loaded.target == "postgresql":
        assert admin_url is not None
        names = postgres.database_names(os.getpid(), "cold")
        (env["ORDER_SVC_DATABASE_URL"],) = postgres.create_databases(
            session.stack, admin_url, names
        )
    else:
        env["ORDER_SVC_DATABASE_URL"] = f"sqlite:///{data / 'cold_order_svc.db'}"
    python = sys.executable
    user = session.start("user_svc_cold", [python, "-m", "user_svc"], REPO, env)
    env["ORDER_SVC_USER_SVC_ADDR"] = user.wait_for(r"user_svc listening on (\S+)")[1]
    user_cpu = cpu_seconds(user.popen.pid)
    print(f"cold start of order_svc against {loaded.size.users:,} users", flush=True)
    start = time.monotonic()
    order = session.start("order_svc_cold", [python, "-m", "order_svc"], REPO, env)
    address = order.wait_for(r"order_svc listening on (\S+)", SERVING_WITHIN_SECONDS)[1]
    listening = time.monotonic() - start
    peak_while = 0.0
    while True:
        peak_while = max(peak_while, memory_mb(order.popen.pid)[0])
        if (
            asyncio.run(health_status(address, USER_FEED_HEALTH))
            == health_pb2.HealthCheckResponse.SERVING
        ):
            break
        if time.monotonic() - start > SERVING_WITHIN_SECONDS:
            raise BenchError(
                f"order_svc's view of users was not current in {SERVING_WITHIN_SECONDS:g}s"
            )
        time.sleep(0.05)
    serving = time.monotonic() - start
    peak, rss = memory_mb(order.popen.pid)
    listed = order.wait_for(r"listed (\d+) users")
    figures = {
        "users_listed": int(listed[1]),
        "listening_s": round(listening, 2),
        "serving_s": round(serving, 2),
        "peak_rss_mb": round(max(peak, peak_while), 1),
        "rss_mb": round(rss, 1),
        "order_svc_cpu_s": round(cpu_seconds(order.popen.pid), 2),
        "user_svc_cpu_s": round(cpu_seconds(user.popen.pid) - user_cpu, 2),
    }
    print(
        f"{loaded.size.name} {loaded.target:<10} cold start: SERVING in {serving:.1f} s "
        f"(listening in {listening:.1f} s), peak RSS {figures['peak_rss_mb']} MB",
        flush=True,
    )
    return figures
