"""Compaction of a load's whole user history (1M changes at `1m`) while a writer runs: how
long each unit holds the writers back, and the writer's p99 during compaction against its
p99 once compaction is done.

It runs on a copy of the loaded user database (compaction forgets the history the other
sections replay). user_svc serves the copy with the default retention (a day), so the
loaded history, older, is compacted by the service itself at start, as after any restart
with history past its retention: in units of `COMPACTION_BATCH` revisions through its one
writer thread, each answered in turn with the writes around it. A writer sends UpdateUser at
a steady rate from the moment the service listens; the service logs each compaction pass
(revisions, units, longest unit) and the writer goes on a few seconds after it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import psycopg
from google.protobuf import field_mask_pb2
from sqlalchemy.engine import make_url

from benchmark import postgres
from benchmark.feed.results import ms, percentile
from benchmark.processes import Proc
from benchmark.scale.loader import Loaded
from benchmark.session import Session
from benchmark.settings import REPO
from shop.user.v1 import user_pb2, user_pb2_grpc

RATE = 200.0
"""UpdateUser per second, from one client."""
AFTER_SECONDS = 5.0
"""How long the writer goes on once compaction is done: its p99 without compaction."""
MIN_WRITES = 100
"""Fewer writes during the pass than this, and their p99 is not given."""
PASS_SECONDS = 600.0
"""How long the bench waits for the service's compaction pass to end."""
PASS_LINE = (
    r"compacted (?P<revisions>\d+) revisions \(to (?P<point>\d+)\) in (?P<units>\d+) units? "
    r"over (?P<seconds>[\d.]+) s; longest unit (?P<longest>[\d.]+) ms"
)
"""What user_svc logs of a compaction pass (`shop_common.feed.tail`)."""


def _copy(session: Session, loaded: Loaded, admin_url: str | None) -> str:
    """A copy of the loaded user database, dropped with the session; its URL."""
    if loaded.target != "postgresql":
        source = Path(loaded.user_url.removeprefix("sqlite:///"))
        copy = session.tmp / "compaction" / "user_svc.db"
        copy.parent.mkdir(parents=True)
        with (
            contextlib.closing(sqlite3.connect(source)) as src,
            contextlib.closing(sqlite3.connect(copy)) as dst,
        ):
            src.backup(dst)
        return f"sqlite:///{copy}"
    assert admin_url is not None
    (name,) = postgres.database_names(os.getpid(), "compaction")
    template = make_url(loaded.user_url).database
    session.stack.callback(postgres.drop_database, admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'.encode())
    return postgres.with_database(admin_url, name)


class _Run:
    def __init__(self) -> None:
        self.writes: list[tuple[float, float]] = []
        """(sent at, wall clock; latency in seconds) of each UpdateUser answered."""
        self.errors = 0
        self.began = self.ended = 0.0
        self.compacted: dict[str, str] = {}


def compaction(session: Session, loaded: Loaded, admin_url: str | None) -> dict[str, Any]:
    url = _copy(session, loaded, admin_url)
    env = {
        "SHOP_DATA_DIR": str(session.tmp / "compaction"),
        "USER_SVC_LISTEN": "127.0.0.1:0",
        "USER_SVC_DATABASE_URL": url,
    }
    ids = [loaded.plan.user_ids[i] for i in loaded.plan.sample]
    print(
        f"user_svc compacting {loaded.size.users:,} changes while a writer sends {RATE:g}/s",
        flush=True,
    )
    user = session.start("user_svc_compaction", [sys.executable, "-m", "user_svc"], REPO, env)
    address = user.wait_for(r"user_svc listening on (\S+)")[1]
    run = asyncio.run(_run(user, address, ids))
    figures = _figures(run)
    print(
        f"{loaded.size.name} {loaded.target:<10} compaction: {figures['revisions']:,} revisions "
        f"in {figures['seconds']} s, {figures['units']} units, longest {figures['unit_max_ms']} "
        f"ms; writer p99 {figures['writers_p99_during_ms']} ms during, "
        f"{figures['writers_p99_without_ms']} ms after",
        flush=True,
    )
    return figures


async def _run(user: Proc, address: str, ids: list[str]) -> _Run:
    run = _Run()
    async with grpc.aio.insecure_channel(address) as channel:
        await channel.channel_ready()
        stub = user_pb2_grpc.UserServiceStub(channel)
        run.began = time.time()
        writing = asyncio.create_task(_write(stub, ids, run))
        try:
            line = await asyncio.to_thread(user.wait_for, PASS_LINE, PASS_SECONDS)
            run.ended = time.time()
            run.compacted = line.groupdict()
            await asyncio.sleep(AFTER_SECONDS)
        finally:
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writing
    return run


async def _write(stub: user_pb2_grpc.UserServiceAsyncStub, ids: list[str], run: _Run) -> None:
    """UpdateUser at RATE, each sent at its time (not waiting for the one before)."""
    mask = field_mask_pb2.FieldMask(paths=["display_name"])
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        user = user_pb2.User(id=ids[i % len(ids)], display_name=f"Compaction {i}")
        request = user_pb2.UpdateUserRequest(user=user, update_mask=mask)
        sent, clock = time.time(), time.perf_counter()
        try:
            await stub.UpdateUser(request, timeout=60)
        except grpc.aio.AioRpcError:
            run.errors += 1
            return
        run.writes.append((sent, time.perf_counter() - clock))

    start, i = time.perf_counter(), 0
    try:
        while True:
            if (delay := start + i / RATE - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
    finally:
        for task in tasks:
            task.cancel()


def _figures(run: _Run) -> dict[str, Any]:
    during = sorted(lat for at, lat in run.writes if at < run.ended)
    without = sorted(lat for at, lat in run.writes if at >= run.ended)
    # A pass over before the writer got going (a small load's) says nothing of its p99.
    p99_during = percentile(during, 99) if len(during) >= MIN_WRITES else None
    p99_without = percentile(without, 99)
    compacted = run.compacted
    return {
        "revisions": int(compacted["revisions"]),
        "point": int(compacted["point"]),
        "seconds": float(compacted["seconds"]),
        "units": int(compacted["units"]),
        "unit_max_ms": float(compacted["longest"]),
        "writes_during": len(during),
        "writes_without": len(without),
        "writer_errors": run.errors,
        "writers_p99_during_ms": ms(p99_during),
        "writers_p99_without_ms": ms(p99_without),
        "writers_max_during_ms": ms(during[-1]) if during else None,
        "writers_p99_ratio": (
            round(p99_during / p99_without, 2) if p99_without and p99_during else None
        ),
    }
