"""The change-feed rows of `make bench` (tools/bench.py): WatchUsers replay and live delivery.

They run against a user_svc of their own, on a fresh SQLite file whose history of N
changes is written straight into its tables after `python -m user_svc migrate`: users
rows as `UserRows.to_row` makes them, change rows carrying the orjson of that row as
`ResourceStore` writes them, consecutive revisions, the counter at N.

- replay: one watcher reads WatchUsers(start_revision=1) until it has N events;
  events/s, and user_svc's CPU time per event.
- live: 10 watchers follow the feed from the current revision + 1 (from now, without
  the race of `start_revision=0`) while writer processes drive UpdateUser open-loop on
  a fixed schedule (write i is due at start + i/rate, whether or not earlier ones have
  returned). Each event's lag is its receive time minus the user's update_time in the
  event; each watcher must receive every revision committed, once, in order.

Every client runs in a process of its own, apart from user_svc and from the benchmark
(`python tools/bench_feed.py replay|watch|write ...`): it prints `ready`, starts on a
line from stdin, and prints one JSON line with what it saw.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import dataclasses
import json
import math
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from shop.user.v1 import user_pb2, user_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
CHANGES_PER_USER = 5
"""The seeded history: N/5 users created, then updated in turn up to N changes."""
CLIENT_MAX_MESSAGE = 16 * 1024 * 1024
WRITER_IN_FLIGHT = 512
"""Per writer process: at this many calls in flight it waits (and its writes go out late)."""
LATE_SECONDS = 0.010
"""A write sent this long after its due time counts as late: the schedule slipped."""
WATCH_DRAIN_SECONDS = 60.0
"""How long watchers may take, after the last write, to receive the last revision."""

REPLAY_TARGET = 20_000.0
"""events/s"""
LAG_P99_TARGET_MS = 50.0


class FeedError(Exception):
    """The feed benchmark cannot go on; the message says why."""


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


# ---------------------------------------------------------------- seeding


def seed_history(db_path: Path, changes: int, env: dict[str, str]) -> list[str]:
    """A user_svc database at `db_path` with revisions 1..`changes`; returns the user ids.

    Migrates with `python -m user_svc migrate`, then bulk-inserts in one transaction:
    users created at revisions 1..U (U = changes / 5), then updated in turn (display name)
    up to `changes`; the users table holds each user's last row, the counter `changes`.
    """
    import orjson
    import sqlalchemy as sa

    from shop_common.domain import new_id
    from shop_common.storage import ChangeType, to_us
    from user_svc import schema
    from user_svc.domain import User
    from user_svc.store import UserRows

    url = f"sqlite:///{db_path}"
    migrate = [sys.executable, "-m", "user_svc", "migrate"]
    done = subprocess.run(
        migrate, cwd=REPO, env={**env, "USER_SVC_DATABASE_URL": url},
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise FeedError(f"{' '.join(migrate)} failed:\n{done.stdout}{done.stderr}")
    codec, token = UserRows(), os.urandom(3).hex()
    user_count = max(1, changes // CHANGES_PER_USER)
    # One change per millisecond, ending now: well inside the feed's retention.
    start_us = to_us(datetime.now(UTC)) - changes * 1000
    users: list[User] = []
    change_rows: list[dict[str, Any]] = []
    for revision in range(1, changes + 1):
        moment = datetime.fromtimestamp((start_us + revision * 1000) / 1e6, UTC)
        prev: str | None = None
        if revision <= user_count:
            user = User(
                id=new_id(), email=f"feed-{token}-{revision}@example.com",
                display_name=f"Feed {revision}", create_time=moment, update_time=moment,
                revision=revision,
            )  # fmt: skip
            users.append(user)
        else:
            slot = (revision - user_count - 1) % user_count
            prev = orjson.dumps(codec.to_row(users[slot])).decode()
            user = dataclasses.replace(
                users[slot], display_name=f"Feed {slot + 1} r{revision}", update_time=moment,
                revision=revision,
            )  # fmt: skip
            users[slot] = user
        row = codec.to_row(user)
        change_rows.append(
            {
                "revision": revision, "seq": 0, "resource_id": user.id,
                "type": int(ChangeType.PUT), "data": orjson.dumps(row).decode(), "prev": prev,
                "commit_time_us": to_us(user.update_time),
            }
        )  # fmt: skip
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(schema.users.insert(), [codec.to_row(u) for u in users])
            conn.execute(schema.changelog.changes.insert(), change_rows)
            counter = schema.changelog.counter
            conn.execute(counter.update().where(counter.c.id == 1).values(revision=changes))
    finally:
        engine.dispose()
    return [u.id for u in users]


# ---------------------------------------------------------------- client processes


class Client:
    """A client process of this module, in a session of its own."""

    def __init__(self, mode: str, args: Sequence[object], log: Path, env: dict[str, str]):
        self.name, self._log = f"the {mode} client", log
        self._stderr = log.open("w")
        self.popen = subprocess.Popen(
            [sys.executable, __file__, mode, *map(str, args)], cwd=REPO, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            start_new_session=True,
        )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _line(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise self._failure(f"said nothing for {timeout:g}s") from None
        if line is None:
            self.popen.wait()
            raise self._failure(f"exited with status {self.popen.returncode}")
        return line

    def _failure(self, why: str) -> FeedError:
        self._stderr.flush()
        tail = self._log.read_text().splitlines()[-20:]
        return FeedError(f"{self.name} {why}; its stderr:\n" + "\n".join("    " + t for t in tail))

    def ready(self, timeout: float = 60.0) -> None:
        if (line := self._line(timeout)) != "ready":
            raise self._failure(f"said {line!r} instead of ready")

    def go(self, line: str = "go") -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def result(self, timeout: float) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self._line(timeout))
        self.popen.wait(10)
        return answer

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        self._stderr.close()


# ---------------------------------------------------------------- results


@dataclass
class Replay:
    events: int
    seconds: float
    events_per_s: float
    responses: int
    gaps: int
    """Revisions missing, repeated or out of order in what the watcher received."""
    cpu_us_per_event: float
    """user_svc's CPU time (all its threads) per event delivered."""
    client_cpu_s: float
    other_cores: float = 0.0
    """CPUs kept busy meanwhile by processes the benchmark did not start."""


@dataclass
class Live:
    rate_asked: float
    seconds: int
    watchers: int
    writers: int
    writes_ok: int
    write_errors: int
    late_sends: int
    """Writes sent more than 10 ms after their due time (the schedule slipped)."""
    writes_per_s: float
    """Writes that succeeded / (last reply - first due time)."""
    write_p50_ms: float | None
    write_p99_ms: float | None
    """Writer latency from each write's due time to its reply."""
    revisions: int
    """Revisions committed during the run: what every watcher must receive."""
    received: list[int]
    """Events each watcher received."""
    gaps: int
    """Revisions missing, repeated or out of order, over all watchers."""
    errors: list[str]
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    lag_max_ms: float | None
    """Receive time - the event's update_time, over every event of every watcher."""
    after_reply_p50_ms: float | None
    after_reply_p99_ms: float | None
    """Receive time - the time the writer got that write's reply (negative: the event came
    first). The write was committed by then: a bound on the feed's own share of the lag."""
    events_per_response: float
    cpu_us_per_write: float
    """user_svc's CPU time per write, delivery to every watcher included."""
    client_cpus: float
    """CPUs the watcher and writer processes kept busy meanwhile."""
    other_cores: float = 0.0
    """CPUs kept busy meanwhile by processes the benchmark did not start."""
    complete: bool = False
    """Every watcher received every revision committed, once, in order, without error."""

    def __post_init__(self) -> None:
        self.complete = (
            not self.gaps
            and not self.errors
            and self.revisions == self.writes_ok
            and all(n == self.revisions for n in self.received)
        )

    @property
    def rate_met(self) -> bool:
        return self.writes_per_s >= 0.95 * self.rate_asked

    @property
    def lag_met(self) -> bool:
        return self.lag_p99_ms is not None and self.lag_p99_ms < LAG_P99_TARGET_MS


# ---------------------------------------------------------------- the feed rows


async def current_revision(address: str) -> int:
    """The user service's newest revision (that of a ListUsers snapshot)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        reply = await stub.ListUsers(user_pb2.ListUsersRequest(page_size=1), timeout=10)
        return int(reply.revision)


class FeedBench:
    """A user_svc with a seeded history, and the client processes that measure its feed."""

    def __init__(
        self,
        workdir: Path,
        changes: int,
        start: Callable[[str, list[str], Path, dict[str, str]], Any],
        cpu_seconds: Callable[[int], float],
        *,
        watchers: int = 10,
        writers: int = 2,
    ) -> None:
        self.workdir, self.changes, self._cpu = workdir, changes, cpu_seconds
        self.watchers, self.writers = watchers, writers
        self._clients: list[Client] = []
        data = workdir / "data"
        data.mkdir(parents=True)
        env = {
            "SHOP_DATA_DIR": str(data),
            "USER_SVC_LISTEN": "127.0.0.1:0",
            "USER_SVC_DATABASE_URL": f"sqlite:///{data / 'user_svc.db'}",
        }
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        began = time.monotonic()
        self.ids = seed_history(data / "user_svc.db", changes, self.env)
        self.seed_seconds = time.monotonic() - began
        self.ids_file = workdir / "ids.txt"
        self.ids_file.write_text("\n".join(self.ids))
        proc = start("feed_user_svc", [sys.executable, "-m", "user_svc"], REPO, env)
        self.address: str = proc.wait_for(r"user_svc listening on (\S+)")[1]
        self.pid: int = proc.popen.pid

    def _client(self, mode: str, *args: object) -> Client:
        n = len(self._clients)
        client = Client(mode, args, self.workdir / f"{mode}-{n}.log", self.env)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.stop()

    def replay(self) -> Replay:
        client = self._client("replay", self.address, self.changes)
        client.ready()
        before = self._cpu(self.pid)
        client.go()
        got = client.result(timeout=600)
        spent = self._cpu(self.pid) - before
        client.stop()
        return Replay(
            events=got["events"],
            seconds=got["seconds"],
            events_per_s=got["events"] / got["seconds"],
            responses=got["responses"],
            gaps=got["gaps"],
            cpu_us_per_event=spent * 1e6 / max(1, got["events"]),
            client_cpu_s=got["cpu_s"],
        )

    def live(self, rate: float, seconds: int) -> Live:
        first = asyncio.run(current_revision(self.address)) + 1
        watch = self._client("watch", self.address, first, self.watchers)
        replies = [self.workdir / f"replies-{i}.json" for i in range(self.writers)]
        writers = [
            self._client("write", self.address, rate, seconds, i, self.writers, self.ids_file, out)
            for i, out in enumerate(replies)
        ]
        for client in (watch, *writers):
            client.ready()
        before, clock = self._cpu(self.pid), time.monotonic()
        start_at = time.time() + 0.2
        for writer in writers:
            writer.go(repr(start_at))
        wrote = [w.result(timeout=seconds + 300) for w in writers]
        last = asyncio.run(current_revision(self.address))
        watch.go(json.dumps({"last": last, "replies": [str(p) for p in replies]}))
        seen = watch.result(timeout=WATCH_DRAIN_SECONDS + 60)
        spent, elapsed = self._cpu(self.pid) - before, time.monotonic() - clock
        for client in (watch, *writers):
            client.stop()
        ok = sum(w["ok"] for w in wrote)
        latencies = sorted(x for w in wrote for x in w["latencies_s"])
        span = max(w["end"] for w in wrote) - start_at
        return Live(
            rate_asked=rate,
            seconds=seconds,
            watchers=self.watchers,
            writers=self.writers,
            writes_ok=ok,
            write_errors=sum(w["errors"] for w in wrote),
            late_sends=sum(w["late"] for w in wrote),
            writes_per_s=ok / span if span > 0 else 0.0,
            write_p50_ms=_ms(percentile(latencies, 50)),
            write_p99_ms=_ms(percentile(latencies, 99)),
            revisions=last - first + 1,
            received=seen["received"],
            gaps=seen["gaps"],
            errors=seen["errors"] + [e for w in wrote for e in w["first_errors"]],
            lag_p50_ms=seen["lag_p50_ms"],
            lag_p99_ms=seen["lag_p99_ms"],
            lag_max_ms=seen["lag_max_ms"],
            after_reply_p50_ms=seen["after_reply_p50_ms"],
            after_reply_p99_ms=seen["after_reply_p99_ms"],
            events_per_response=seen["events_per_response"],
            cpu_us_per_write=spent * 1e6 / max(1, ok),
            client_cpus=(seen["cpu_s"] + sum(w["cpu_s"] for w in wrote)) / elapsed,
        )


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def summary(replays: list[Replay], lives: list[list[Live]], history: int) -> dict[str, Any]:
    """Medians over the rounds (`lives`: per round, one run per write rate), and the targets."""
    out: dict[str, Any] = {"history_changes": history}
    if replays:
        rate = statistics.median(r.events_per_s for r in replays)
        gaps = sum(r.gaps for r in replays)
        out["replay"] = {
            "events": replays[0].events,
            "events_per_s": rate,
            "cpu_us_per_event": statistics.median(r.cpu_us_per_event for r in replays),
            "gaps": gaps,
            "target_events_per_s": REPLAY_TARGET,
            "met": rate >= REPLAY_TARGET and not gaps,
        }
    out["live"] = []
    for runs in zip(*lives, strict=True):  # the rounds of one rate
        med: dict[str, Any] = {
            name: _median([getattr(r, name) for r in runs])
            for name in (
                "writes_per_s", "write_p50_ms", "write_p99_ms", "lag_p50_ms", "lag_p99_ms",
                "after_reply_p50_ms", "after_reply_p99_ms", "events_per_response",
                "cpu_us_per_write", "client_cpus",
            )
        }  # fmt: skip
        lag_max = [r.lag_max_ms for r in runs if r.lag_max_ms is not None]
        complete = all(r.complete for r in runs)
        rate_met = med["writes_per_s"] >= 0.95 * runs[0].rate_asked
        lag_met = med["lag_p99_ms"] is not None and med["lag_p99_ms"] < LAG_P99_TARGET_MS
        out["live"].append(
            {
                "rate_asked": runs[0].rate_asked,
                "seconds": runs[0].seconds,
                "watchers": runs[0].watchers,
                "writers": runs[0].writers,
                **med,
                "lag_max_ms": max(lag_max) if lag_max else None,
                "writes_ok": sum(r.writes_ok for r in runs),
                "write_errors": sum(r.write_errors for r in runs),
                "late_sends": sum(r.late_sends for r in runs),
                "every_event_delivered": complete,
                "target_lag_p99_ms": LAG_P99_TARGET_MS,
                "rate_met": rate_met,
                "lag_met": lag_met,
                "met": rate_met and lag_met and complete,
            }
        )
    return out


def _f(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(replays: list[Replay], lives: list[list[Live]], history: int) -> list[str]:
    s, yes = summary(replays, lives, history), {True: "yes", False: "**no**"}
    lines = [
        "",
        f"Change feed: WatchUsers from a user_svc of its own (SQLite, {history:,} changes of "
        "history seeded), every client in a process of its own (not user_svc's, not the "
        f"benchmark's); median of {max(len(replays), len(lives))} round(s).",
    ]
    if replays:
        r = s["replay"]
        lines += [
            "",
            "| replay from revision 1, 1 watcher | events | events/s | gaps | user_svc CPU per "
            "event | target | met |",
            "|---|---:|---:|---:|---:|---|---|",
            f"| WatchUsers(start_revision=1) until {r['events']:,} events | {r['events']:,} "
            f"| {r['events_per_s']:,.0f} | {r['gaps']} | {r['cpu_us_per_event']:.1f} µs "
            f"| ≥ {REPLAY_TARGET:,.0f} events/s | {yes[r['met']]} |",
        ]
    if s["live"]:
        first = s["live"][0]
        lines += [
            "",
            f"Live: {first['watchers']} watchers from now while {first['writers']} writer "
            "processes drive UpdateUser open-loop (fixed schedule) for "
            f"{first['seconds']} s. Lag = receive time - the event's update_time (target p99 "
            f"< {LAG_P99_TARGET_MS:.0f} ms, nothing missed).",
            "",
            "| writes/s asked | writes/s done | write p50 / p99 ms | lag p50 ms | lag p99 ms "
            "| lag max ms | after reply p50 / p99 ms | events per response | every event to "
            "every watcher | user_svc CPU per write | met |",
            "|---:|---:|---|---:|---:|---:|---|---:|---|---:|---|",
        ]
        for x in s["live"]:
            delivered = yes[x["every_event_delivered"]]
            if x["write_errors"] or x["late_sends"]:
                delivered += f" ({x['write_errors']} write errors, {x['late_sends']:,} sent late)"
            lines.append(
                f"| {x['rate_asked']:,.0f} | {_f(x['writes_per_s'], ',.0f')} "
                f"| {_f(x['write_p50_ms'])} / {_f(x['write_p99_ms'])} "
                f"| {_f(x['lag_p50_ms'])} | {_f(x['lag_p99_ms'])} | {_f(x['lag_max_ms'])} "
                f"| {_f(x['after_reply_p50_ms'])} / {_f(x['after_reply_p99_ms'])} "
                f"| {_f(x['events_per_response'])} | {delivered} "
                f"| {_f(x['cpu_us_per_write'], ',.0f')} µs "
                f"| rate {yes[x['rate_met']]}, lag {yes[x['lag_met']]} |"
            )
        others = max(r.other_cores for runs in lives for r in runs)
        problems = [
            f"{r.rate_asked:,.0f}/s round {n}: received {sorted(set(r.received))} of "
            f"{r.revisions} revisions ({r.writes_ok} writes ok), {r.gaps} gaps; "
            + ("; ".join(r.errors) or "no errors")
            for n, runs in enumerate(lives, 1)
            for r in runs
            if not r.complete
        ]
        lines += [
            "",
            "update_time is taken by user_svc before the write waits for its one SQLite writer "
            "thread, so the lag includes that wait and the commit; 'after reply' is measured "
            "from the moment the writer had the write's reply (committed by then). Writes "
            "done/s = writes that succeeded / (last reply - first due time). Watcher and "
            f"writer processes kept {_f(first['client_cpus'], '.2f')} CPUs busy beside user_svc"
            f" at {first['rate_asked']:,.0f} writes/s.",
            *(f"- missed: {p}" for p in problems),
        ]
        if others > 0.1:
            lines.append(
                f"- other processes kept up to {others:.2f} CPUs busy during a live run: "
                "its figures are not reliable"
            )
    return lines


# ---------------------------------------------------------------- the clients themselves


async def _stdin_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def _say(obj: object) -> None:
    print(obj if isinstance(obj, str) else json.dumps(obj), flush=True)


def _channel(address: str) -> grpc.aio.Channel:
    options = [("grpc.max_receive_message_length", CLIENT_MAX_MESSAGE)]
    return grpc.aio.insecure_channel(address, options=options)


async def _client_replay(address: str, events: int) -> None:
    async with _channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        stub = user_pb2_grpc.UserServiceStub(channel)
        _say("ready")
        await _stdin_line()
        cpu, start = time.process_time(), time.perf_counter()
        call = stub.WatchUsers(user_pb2.WatchUsersRequest(start_revision=1))
        got, responses, gaps, expect = 0, 0, 0, 1
        async for response in call:
            responses += 1
            for event in response.events:
                if event.revision != expect:
                    gaps += 1
                expect = event.revision + 1
            got += len(response.events)
            if got >= events:
                break
        seconds = time.perf_counter() - start
        call.cancel()
    _say(
        {
            "events": got,
            "seconds": seconds,
            "responses": responses,
            "gaps": gaps,
            "cpu_s": time.process_time() - cpu,
        }
    )


@dataclass
class _Watch:
    expect: int
    """The next revision due."""
    received: int = 0
    gaps: int = 0
    responses: int = 0
    error: str = ""
    revisions: array.array[int] = field(default_factory=lambda: array.array("q"))
    received_at: array.array[float] = field(default_factory=lambda: array.array("d"))
    lags: array.array[float] = field(default_factory=lambda: array.array("d"))


async def _client_watch(address: str, first: int, count: int) -> None:
    channels = [_channel(address) for _ in range(count)]
    await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 10)
    watches = [_Watch(first) for _ in channels]
    last: list[int] = []  # the last revision, once the writers are done
    done = asyncio.Event()

    def check() -> None:
        if last and all(w.expect > last[0] or w.error for w in watches):
            done.set()

    async def follow(channel: grpc.aio.Channel, w: _Watch) -> None:
        stub = user_pb2_grpc.UserServiceStub(channel)
        call = stub.WatchUsers(user_pb2.WatchUsersRequest(start_revision=first))
        try:
            async for response in call:
                now = time.time()
                w.responses += 1
                for event in response.events:
                    t = event.user.update_time
                    w.lags.append(now - t.seconds - t.nanos * 1e-9)
                    w.revisions.append(event.revision)
                    w.received_at.append(now)
                    if event.revision != w.expect:
                        w.gaps += 1
                    w.expect = event.revision + 1
                w.received += len(response.events)
                if last and w.expect > last[0]:
                    check()
        except grpc.aio.AioRpcError as error:
            if not done.is_set():
                w.error = f"WatchUsers {error.code().name}: {error.details()}"
                check()

    tasks = [asyncio.create_task(follow(c, w)) for c, w in zip(channels, watches, strict=True)]
    await asyncio.sleep(0.3)  # the calls are out and attached
    _say("ready")
    cpu = time.process_time()
    told = json.loads(await _stdin_line())
    last.append(told["last"])
    check()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), WATCH_DRAIN_SECONDS)
    cpu = time.process_time() - cpu
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close(None)
    replied: dict[int, float] = {}
    for path in told["replies"]:
        text = await asyncio.to_thread(Path(path).read_text)
        replied.update((int(r), t) for r, t in json.loads(text))
    lags = sorted(x for w in watches for x in w.lags)
    after_reply = sorted(
        at - replied[r]
        for w in watches
        for r, at in zip(w.revisions, w.received_at, strict=True)
        if r in replied
    )
    missing = sum(max(0, last[0] + 1 - w.expect) for w in watches)
    _say(
        {
            "received": [w.received for w in watches],
            "gaps": sum(w.gaps for w in watches) + missing,
            "errors": [
                f"{n} watcher(s): {error}" if n > 1 else error
                for error, n in collections.Counter(w.error for w in watches if w.error).items()
            ]
            + [f"{missing} (watcher, revision) pairs never arrived"] * bool(missing),
            "lag_p50_ms": _ms(percentile(lags, 50)),
            "lag_p99_ms": _ms(percentile(lags, 99)),
            "lag_max_ms": _ms(lags[-1] if lags else None),
            "after_reply_p50_ms": _ms(percentile(after_reply, 50)),
            "after_reply_p99_ms": _ms(percentile(after_reply, 99)),
            "events_per_response": len(lags) / max(1, sum(w.responses for w in watches)),
            "cpu_s": cpu,
        }
    )


async def _client_write(
    address: str, rate: float, seconds: float, index: int, stride: int, ids: list[str], out: Path
) -> None:
    """Writes i = index, index + stride, ... < rate x seconds, write i due at start + i/rate."""
    mask = field_mask_pb2.FieldMask(paths=["display_name"])
    latencies, replies = array.array("d"), list[tuple[int, float]]()
    counts, first_errors = {"ok": 0, "errors": 0, "late": 0}, list[str]()
    async with _channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        stub = user_pb2_grpc.UserServiceStub(channel)

        async def write(i: int, due: float) -> None:
            user = user_pb2.User(id=ids[i % len(ids)], display_name=f"Live {i}")
            try:
                reply = await stub.UpdateUser(
                    user_pb2.UpdateUserRequest(user=user, update_mask=mask), timeout=60
                )
            except grpc.aio.AioRpcError as error:
                counts["errors"] += 1
                if len(first_errors) < 3:
                    first_errors.append(f"UpdateUser {error.code().name}: {error.details()}")
                return
            latencies.append(time.monotonic() - due)
            replies.append((int(reply.user.etag), time.time()))
            counts["ok"] += 1

        _say("ready")
        start_at = float(await _stdin_line())
        cpu = time.process_time()
        base = time.monotonic() + (start_at - time.time())
        in_flight: set[asyncio.Task[None]] = set()
        for i in range(index, round(rate * seconds), stride):
            due = base + i / rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            while len(in_flight) >= WRITER_IN_FLIGHT:
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            if time.monotonic() - due > LATE_SECONDS:
                counts["late"] += 1
            task = asyncio.create_task(write(i, due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight)
        cpu = time.process_time() - cpu
    await asyncio.to_thread(out.write_text, json.dumps(replies))
    _say(
        {
            **counts,
            "first_errors": first_errors,
            "latencies_s": [round(x, 6) for x in latencies],
            "end": max((t for _, t in replies), default=start_at),
            "cpu_s": cpu,
        }
    )


def _client_main(argv: list[str]) -> int:
    match argv:
        case ["replay", address, events]:
            asyncio.run(_client_replay(address, int(events)))
        case ["watch", address, first, count]:
            asyncio.run(_client_watch(address, int(first), int(count)))
        case ["write", address, rate, seconds, index, stride, ids_file, out]:
            ids = Path(ids_file).read_text().split()
            asyncio.run(
                _client_write(
                    address, float(rate), float(seconds), int(index), int(stride), ids, Path(out)
                )
            )
        case _:
            print("usage: bench_feed.py replay|watch|write ARGS...", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(_client_main(sys.argv[1:]))
