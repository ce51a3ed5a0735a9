"""Running the feed rows: a user_svc of their own with a seeded history, and the client
processes (`client`) that measure its feed."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmark.calls import current_revision
from benchmark.errors import FeedError
from benchmark.feed.client import WATCH_DRAIN_SECONDS
from benchmark.feed.history import seed_history
from benchmark.feed.results import FeedRounds, Live, Replay, ms, percentile
from benchmark.procfs import cpu_seconds, elsewhere
from benchmark.session import Session
from benchmark.settings import REPO, TOOLS


class ClientProcess:
    """A process of `benchmark.feed.client`, in a session of its own."""

    def __init__(self, mode: str, args: Sequence[object], log: Path, env: dict[str, str]):
        self.name, self._log = f"the {mode} client", log
        self._stderr = log.open("w")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "benchmark.feed.client", mode, *map(str, args)], cwd=TOOLS,
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, start_new_session=True,
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


class FeedBench:
    """A user_svc with a seeded history, and the client processes that measure its feed."""

    def __init__(
        self,
        session: Session,
        changes: int,
        *,
        watchers: int,
        writers: int,
        database: str | None = None,
        suffix: str = "",
    ) -> None:
        """On a SQLite file of its own, or on the empty PostgreSQL `database` (a URL); its
        files and its process named with `suffix`."""
        self.workdir, self.changes = session.tmp / f"feed{suffix}", changes
        self.watchers, self.writers, self.suffix = watchers, writers, suffix
        self.database = "SQLite" if database is None else "PostgreSQL"
        self.server_cpu: Callable[[], float] | None = None
        """CPU seconds of its database server's processes, when they are measured: not
        counted as other processes' load."""
        self._clients: list[ClientProcess] = []
        data = self.workdir / "data"
        data.mkdir(parents=True)
        url = database or f"sqlite:///{data / 'user_svc.db'}"
        env = {
            "SHOP_DATA_DIR": str(data),
            "USER_SVC_LISTEN": "127.0.0.1:0",
            "USER_SVC_DATABASE_URL": url,
        }
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        began = time.monotonic()
        self.ids = seed_history(url, changes, self.env)
        self.seed_seconds = time.monotonic() - began
        self.ids_file = self.workdir / "ids.txt"
        self.ids_file.write_text("\n".join(self.ids))
        argv = [sys.executable, "-m", "user_svc"]
        proc = session.start(f"feed_user_svc{suffix}", argv, REPO, env)
        self.address: str = proc.wait_for(r"user_svc listening on (\S+)")[1]
        self.pid: int = proc.popen.pid

    def _client(self, mode: str, *args: object) -> ClientProcess:
        n = len(self._clients)
        client = ClientProcess(mode, args, self.workdir / f"{mode}-{n}.log", self.env)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.stop()

    def replay(self) -> Replay:
        client = self._client("replay", self.address, self.changes)
        client.ready()
        before = cpu_seconds(self.pid)
        client.go()
        got = client.result(timeout=600)
        spent = cpu_seconds(self.pid) - before
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
        before, clock = cpu_seconds(self.pid), time.monotonic()
        start_at = time.time() + 0.2
        for writer in writers:
            writer.go(repr(start_at))
        wrote = [w.result(timeout=seconds + 300) for w in writers]
        last = asyncio.run(current_revision(self.address))
        watch.go(json.dumps({"last": last, "replies": [str(p) for p in replies]}))
        seen = watch.result(timeout=WATCH_DRAIN_SECONDS + 60)
        spent, elapsed = cpu_seconds(self.pid) - before, time.monotonic() - clock
        for client in (watch, *writers):
            client.stop()
        return self._live_result(
            rate, seconds, last - first + 1, wrote, seen, start_at, spent, elapsed
        )

    def _live_result(
        self,
        rate: float,
        seconds: int,
        revisions: int,
        wrote: list[dict[str, Any]],
        seen: dict[str, Any],
        start_at: float,
        spent: float,
        elapsed: float,
    ) -> Live:
        """A live run from what the writers and the watchers reported, and user_svc's CPU
        time `spent` over the `elapsed` seconds of the run."""
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
            write_p50_ms=ms(percentile(latencies, 50)),
            write_p99_ms=ms(percentile(latencies, 99)),
            revisions=revisions,
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


def start_feed(
    session: Session,
    changes: int,
    watchers: int,
    writers: int,
    database: str | None = None,
    suffix: str = "",
) -> FeedBench:
    """A user_svc of its own with a seeded history, for the change-feed rows: on SQLite, or
    on the empty PostgreSQL `database` (its process then named with `suffix`)."""
    where = "SQLite" if database is None else "PostgreSQL"
    print(f"feed rows: seeding a user_svc ({where}) with {changes:,} changes", flush=True)
    feed = FeedBench(
        session, changes, watchers=watchers, writers=writers, database=database, suffix=suffix
    )
    session.stack.callback(feed.close)
    session.roots[f"feed_user_svc{suffix}"] = feed.pid
    print(f"  seeded in {feed.seed_seconds:.1f} s; serving at {feed.address}")
    return feed


def measure_feed(
    bench: FeedBench, feed: FeedRounds, number: int, seconds: int, rates: list[float]
) -> None:
    """Round `number` of the feed rows: one replay, then one live run per write rate."""
    on = f" ({bench.database})" if bench.suffix else ""
    replay, others = elsewhere(bench.replay, bench.server_cpu)
    replay.other_cores = others
    feed.replays.append(replay)
    print(
        f"round {number}: feed replay{on}          {replay.events_per_s:7,.0f} events/s  "
        f"{replay.cpu_us_per_event:.1f} µs CPU per event  gaps {replay.gaps}",
        flush=True,
    )
    feed.lives.append([])
    for rate in rates:
        live, others = elsewhere(functools.partial(bench.live, rate, seconds), bench.server_cpu)
        live.other_cores = others
        feed.lives[-1].append(live)
        print(
            f"round {number}: feed live{on} {rate:,.0f}/s asked  "
            f"{live.writes_per_s:,.0f} writes/s  "
            f"lag p50 {live.lag_p50_ms} ms  p99 {live.lag_p99_ms} ms  max {live.lag_max_ms} ms  "
            f"every event delivered: {live.complete}",
            flush=True,
        )
