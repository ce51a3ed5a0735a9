"""Compaction of a load's whole user history (1M changes at `1m`) while writers run: how
long each batch holds the writers back, and the writers' latency during it against before.

It runs on a copy of the loaded user database (compaction forgets the history the other
sections replay): user_svc serves the copy, keeping ten years of history so that it never
compacts by itself, while a writer process sends UpdateUser at a steady rate; after a
baseline, this process compacts the history past a day with the services' own code
(`Feed.compact`, in units of `COMPACTION_BATCH` revisions, each taking the writer lock as
the service's own compaction does) in a process of its own, timing each unit from handing it
over to its commit; then the writer goes on a little."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import orjson
import psycopg
from google.protobuf import field_mask_pb2
from sqlalchemy.engine import Connection, make_url

from benchmark import postgres
from benchmark.errors import BenchError
from benchmark.feed.results import ms, percentile
from benchmark.scale.loader import Loaded
from benchmark.scale.serving import RETENTION_SECONDS
from benchmark.session import Session
from benchmark.settings import REPO, TOOLS
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.feed import FeedSettings
from shop_common.feed.tail import Feed
from shop_common.storage import Changelog, Database
from user_svc import schema as user_schema

T = TypeVar("T")

RATE = 200.0
"""UpdateUser per second, from one writer process."""
BEFORE_SECONDS = 5.0
AFTER_SECONDS = 3.0


class TimedDatabase(Database):
    """A database whose write units are timed, from handing over to commit."""

    units_s: list[float]

    async def write(self, work: Callable[[Connection], T]) -> T:  # type: ignore[override]
        start = time.perf_counter()
        try:
            return await super().write(work)
        finally:
            self.units_s.append(time.perf_counter() - start)


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


def compaction(session: Session, loaded: Loaded, admin_url: str | None) -> dict[str, Any]:
    url = _copy(session, loaded, admin_url)
    data = session.tmp / "compaction"
    env = {
        "SHOP_DATA_DIR": str(data),
        "SHOP_FEED_RETENTION_SECONDS": str(RETENTION_SECONDS),
        "USER_SVC_LISTEN": "127.0.0.1:0",
        "USER_SVC_DATABASE_URL": url,
    }
    user = session.start("user_svc_compaction", [sys.executable, "-m", "user_svc"], REPO, env)
    address = user.wait_for(r"user_svc listening on (\S+)")[1]
    ids = [loaded.plan.user_ids[i] for i in loaded.plan.sample]
    print(f"compacting {loaded.size.users:,} changes while a writer sends {RATE:g}/s", flush=True)
    run = asyncio.run(_run(address, ids, url))
    figures = _figures(run)
    print(
        f"{loaded.size.name} {loaded.target:<10} compaction: {figures['revisions']:,} revisions "
        f"in {figures['seconds']} s, {figures['units']} units, longest {figures['unit_max_ms']} "
        f"ms; writers p99 {figures['writers_p99_before_ms']} → "
        f"{figures['writers_p99_during_ms']} ms during",
        flush=True,
    )
    return figures


class _Run:
    def __init__(self) -> None:
        self.writes: list[tuple[float, float]] = []
        """(sent at, wall clock; latency in seconds) of each UpdateUser answered."""
        self.errors = 0
        self.began = self.ended = 0.0
        self.units_s: list[float] = []
        self.point = 0


async def _run(address: str, ids: list[str], url: str) -> _Run:
    run = _Run()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        writing = asyncio.create_task(_write(stub, ids, run))
        try:
            await asyncio.sleep(BEFORE_SECONDS)
            run.began = time.time()
            compactor = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmark.scale.compaction", url,
                cwd=TOOLS, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await compactor.communicate()
            run.ended = time.time()
            if compactor.returncode != 0:
                raise BenchError(f"compaction failed with status {compactor.returncode}")
            result = orjson.loads(out.splitlines()[-1])
            run.units_s, run.point = result["units_s"], result["point"]
            await asyncio.sleep(AFTER_SECONDS)
        finally:
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writing
    return run


async def _write(stub: user_pb2_grpc.UserServiceAsyncStub, ids: list[str], run: _Run) -> None:
    """UpdateUser at RATE, each due at its time (not waiting for the one before)."""
    mask = field_mask_pb2.FieldMask(paths=["display_name"])
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        user = user_pb2.User(id=ids[i % len(ids)], display_name=f"Compaction {i}")
        sent, clock = time.time(), time.perf_counter()
        try:
            await stub.UpdateUser(
                user_pb2.UpdateUserRequest(user=user, update_mask=mask), timeout=60
            )
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
    before = sorted(lat for at, lat in run.writes if at < run.began)
    during = sorted(lat for at, lat in run.writes if run.began <= at < run.ended)
    units = sorted(run.units_s)
    p99_before, p99_during = percentile(before, 99), percentile(during, 99)
    return {
        "revisions": run.point,
        "seconds": round(run.ended - run.began, 2),
        "units": len(units),
        "unit_p50_ms": ms(percentile(units, 50)),
        "unit_max_ms": ms(units[-1]) if units else None,
        "writes_before": len(before),
        "writes_during": len(during),
        "writer_errors": run.errors,
        "writers_p99_before_ms": ms(p99_before),
        "writers_p99_during_ms": ms(p99_during),
        "writers_max_during_ms": ms(during[-1]) if during else None,
        "writers_p99_ratio": (
            round(p99_during / p99_before, 2) if p99_before and p99_during else None
        ),
    }


async def _compact(url: str) -> tuple[list[float], int]:
    db = TimedDatabase(url)
    db.units_s = []
    try:
        feed = Feed(db, Changelog(user_schema.changelog), FeedSettings(retention_seconds=86_400))
        point = await feed.compact()
        return db.units_s, point
    finally:
        await db.close()


if __name__ == "__main__":
    # The compactor, in a process of its own so that the writer's figures are its own.
    units_s, point = asyncio.run(_compact(sys.argv[1]))
    print(orjson.dumps({"units_s": units_s, "point": point}).decode(), flush=True)
