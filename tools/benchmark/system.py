"""The system under test: started as `tools/run.py` starts it, seeded with users, and its
view of users synced before anything is measured."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grpc_health.v1 import health_pb2

from benchmark.calls import current_revision, grpc_frame, health_status, new_order, seed_users
from benchmark.errors import BenchError
from benchmark.load import lua_cycling
from benchmark.procfs import runs_module, tree
from benchmark.session import Session
from benchmark.settings import ITEMS_JSON, REPO, USERS, VIEW_SYNC_SECONDS
from order_svc.user_feed import HEALTH_NAME as USER_FEED_HEALTH
from shop.user.v1 import user_pb2


@dataclass(frozen=True)
class System:
    """Where the started system answers, its seeded users and what the load tools send."""

    gateway: str | None
    """The gateway's base URL; None when it is absent or --no-gateway."""
    user_addr: str
    order_addr: str
    ids: list[str]
    user_frame: Path
    """GetUser of the first user, as a gRPC frame for h2load."""
    order_frame: Path
    """CreateOrder for the first user, as a gRPC frame for h2load."""
    get_user_lua: Path
    """wrk: GET /v1/users/{id}, cycling over the users."""
    create_order_lua: Path
    """wrk: POST /v1/orders, cycling over the users."""


@dataclass(frozen=True)
class Storage:
    """The databases a system runs on, and how the view of users is read from them."""

    name: str
    """SQLite or PostgreSQL, for the notes."""
    suffix: str
    """Of its processes' names (CPU and memory) and of its files: "" on SQLite."""
    env: dict[str, str]
    """The services' database settings: none (SQLite under SHOP_DATA_DIR) or URLs."""
    view_revision: Callable[[Path], int | None]
    """order_svc's view revision, given the data dir; None when there is nothing to read."""


SQLITE = Storage("SQLite", "", {}, lambda data: view_revision(data / "order_svc.db"))


def start_system(
    session: Session, no_gateway: bool, storage: Storage = SQLITE, ids: list[str] | None = None
) -> System:
    """Starts the system on `storage` and seeds it with USERS users, or, given the `ids` of
    users its databases hold already (the scale benchmark's loads), seeds nothing and
    drives those."""
    env = {f"{s}_LISTEN": "127.0.0.1:0" for s in ("USER_SVC", "ORDER_SVC", "GATEWAY")}
    data = session.tmp / f"data{storage.suffix}"
    env |= {"SHOP_DATA_DIR": str(data), "SHOP_GRACE_SECONDS": "1", **storage.env}
    gateway: str | None = None
    if (REPO / "gateway" / "__main__.py").exists() and not no_gateway:
        gateway, user_addr, order_addr = _start_with_gateway(session, env, storage.suffix)
    else:
        if not storage.suffix:
            session.notes.append("no gateway (absent, or --no-gateway): the REST rows are skipped")
        user_addr, order_addr = _start_services(session, env, storage.suffix)
    if ids is None:
        print(f"seeding {USERS} users over gRPC at {user_addr} ({storage.name})", flush=True)
        ids = asyncio.run(seed_users(user_addr))
    wait_user_view(session, user_addr, order_addr, storage, data)
    tmp, x = session.tmp, storage.suffix
    system = System(
        gateway, user_addr, order_addr, ids, tmp / f"get_user{x}.bin", tmp / f"order{x}.bin",
        tmp / f"get_user{x}.lua", tmp / f"create_order{x}.lua",
    )  # fmt: skip
    _write_load_inputs(system)
    return system


def _start_with_gateway(session: Session, env: dict[str, str], suffix: str) -> tuple[str, str, str]:
    """`tools/run.py`: the gateway's URL, user_svc's and order_svc's addresses."""
    names = ("user_svc", "order_svc", "gateway")
    session.stack.callback(session.kill_leftovers, names, suffix)
    run = session.start(f"run{suffix}", [sys.executable, "tools/run.py"], REPO, env)
    gateway = "http://" + run.wait_for(r"^\s+gateway\s+http\s+http://(\S+)$")[1]
    user_addr = run.wait_for(r"^\s+user_svc\s+grpc\s+(\S+)$")[1]
    order_addr = run.wait_for(r"^\s+order_svc\s+grpc\s+(\S+)$")[1]
    children = tree(run.popen.pid)[1:]
    session.roots |= {n + suffix: next(p for p in children if runs_module(p, n)) for n in names}
    return gateway, user_addr, order_addr


def _start_services(session: Session, env: dict[str, str], suffix: str) -> tuple[str, str]:
    """The two services alone, started as tools/run.py starts them; their addresses."""
    user = session.start(f"user_svc{suffix}", [sys.executable, "-m", "user_svc"], REPO, env)
    user_addr = user.wait_for(r"user_svc listening on (\S+)")[1]
    env["ORDER_SVC_USER_SVC_ADDR"] = user_addr
    order = session.start(f"order_svc{suffix}", [sys.executable, "-m", "order_svc"], REPO, env)
    order_addr = order.wait_for(r"order_svc listening on (\S+)")[1]
    session.roots |= {f"user_svc{suffix}": user.popen.pid, f"order_svc{suffix}": order.popen.pid}
    return user_addr, order_addr


def _write_load_inputs(system: System) -> None:
    first = system.ids[0]
    system.user_frame.write_bytes(grpc_frame(user_pb2.GetUserRequest(id=first)))
    system.order_frame.write_bytes(grpc_frame(new_order(first)))
    get = 'wrk.format("GET", "/v1/users/" .. ids[i])'
    body = f"""'{{"userId":"' .. ids[i] .. '","items":{ITEMS_JSON}}}'"""
    post = f'wrk.format("POST", "/v1/orders", nil, {body})'
    json_type = 'wrk.headers["Content-Type"] = "application/json"'
    system.get_user_lua.write_text(lua_cycling(system.ids, get))
    system.create_order_lua.write_text(lua_cycling(system.ids, post, json_type))


def wait_user_view(
    session: Session, user_addr: str, order_addr: str, storage: Storage, data: Path
) -> None:
    """Waits until order_svc's view of users is current: its user-feed health entry
    SERVING and, read from its database, the view at the seeding's last revision."""
    revision = asyncio.run(current_revision(user_addr))
    print(f"waiting for order_svc's view of users to reach revision {revision}", flush=True)
    deadline, status, view = time.monotonic() + VIEW_SYNC_SECONDS, 0, None
    while time.monotonic() < deadline:
        status = asyncio.run(health_status(order_addr, USER_FEED_HEALTH))
        view = storage.view_revision(data)
        serving = status == health_pb2.HealthCheckResponse.SERVING
        if serving and (view is None or view >= revision):
            session.notes.append(
                f"{storage.name}: order_svc's view of users was synced before measuring: "
                f"{USER_FEED_HEALTH} SERVING, "
                + (f"view at revision {view} ≥ {revision}" if view is not None else
                   "(no database to read the view's revision from)")
            )  # fmt: skip
            return
        time.sleep(0.1)
    raise BenchError(
        f"{storage.name}: order_svc's view of users did not catch up in "
        f"{VIEW_SYNC_SECONDS:g}s: {USER_FEED_HEALTH} status {status}, view at {view}, "
        f"user_svc at {revision}"
    )


def view_revision(db: Path) -> int | None:
    """The user revision order_svc's view is current to, read from its SQLite file (None
    when there is no such file); 0 before its first listing."""
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        row = conn.execute("SELECT revision FROM user_view_state WHERE id = 1").fetchone()
    return int(row[0] or 0) if row else 0
