"""The feed's client processes, one mode each, run from `tools/` by `runner`:

    python -m benchmark.feed.client replay ADDRESS EVENTS
    python -m benchmark.feed.client watch ADDRESS FIRST_REVISION WATCHERS
    python -m benchmark.feed.client write ADDRESS RATE SECONDS INDEX STRIDE IDS_FILE OUT

Each prints `ready`, starts on a line from stdin, and prints one JSON line with what it saw.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from benchmark.feed.results import ms, percentile
from benchmark.feed.stream import read_in_order
from shop.user.v1 import user_pb2, user_pb2_grpc

CLIENT_MAX_MESSAGE = 16 * 1024 * 1024
WRITER_IN_FLIGHT = 512
"""Per writer process: at this many calls in flight it waits (and its writes go out late)."""
LATE_SECONDS = 0.010
"""A write sent this long after its due time counts as late: the schedule slipped."""
WATCH_DRAIN_SECONDS = 60.0
"""How long watchers may take, after the last write, to receive the last revision."""


async def _stdin_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def _say(obj: object) -> None:
    print(obj if isinstance(obj, str) else json.dumps(obj), flush=True)


def _channel(address: str) -> grpc.aio.Channel:
    options = [("grpc.max_receive_message_length", CLIENT_MAX_MESSAGE)]
    return grpc.aio.insecure_channel(address, options=options)


# ---------------------------------------------------------------- replay


async def _client_replay(address: str, events: int) -> None:
    async with _channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        stub = user_pb2_grpc.UserServiceStub(channel)
        _say("ready")
        await _stdin_line()
        cpu, start = time.process_time(), time.perf_counter()
        call = stub.WatchUsers(user_pb2.WatchUsersRequest(start_revision=1))
        read = await read_in_order(call, 1, events)
        seconds = time.perf_counter() - start
        call.cancel()
    _say(
        {
            "events": read.events,
            "seconds": seconds,
            "responses": read.responses,
            "gaps": read.gaps,
            "cpu_s": time.process_time() - cpu,
        }
    )


# ---------------------------------------------------------------- watch


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


class _Watchers:
    """Watchers following the feed from `first`: done once each has passed the last
    revision (known when the writers are done) or failed."""

    def __init__(self, first: int, count: int) -> None:
        self.first, self.watches = first, [_Watch(first) for _ in range(count)]
        self.last: int | None = None
        self.done = asyncio.Event()

    def check(self) -> None:
        last = self.last
        if last is not None and all(w.expect > last or w.error for w in self.watches):
            self.done.set()

    async def follow(self, channel: grpc.aio.Channel, w: _Watch) -> None:
        stub = user_pb2_grpc.UserServiceStub(channel)
        call = stub.WatchUsers(user_pb2.WatchUsersRequest(start_revision=self.first))
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
                if self.last is not None and w.expect > self.last:
                    self.check()
        except grpc.aio.AioRpcError as error:
            if not self.done.is_set():
                w.error = f"WatchUsers {error.code().name}: {error.details()}"
                self.check()


async def _client_watch(address: str, first: int, count: int) -> None:
    channels = [_channel(address) for _ in range(count)]
    await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 10)
    watchers = _Watchers(first, count)
    tasks = [
        asyncio.create_task(watchers.follow(c, w))
        for c, w in zip(channels, watchers.watches, strict=True)
    ]
    await asyncio.sleep(0.3)  # the calls are out and attached
    _say("ready")
    cpu = time.process_time()
    told = json.loads(await _stdin_line())
    watchers.last = told["last"]
    watchers.check()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(watchers.done.wait(), WATCH_DRAIN_SECONDS)
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
    _say(_seen(watchers.watches, told["last"], replied, cpu))


def _seen(
    watches: list[_Watch], last: int, replied: dict[int, float], cpu: float
) -> dict[str, Any]:
    """What the watchers saw up to revision `last`; `replied`: when each revision's writer
    had its reply."""
    lags = sorted(x for w in watches for x in w.lags)
    after_reply = sorted(
        at - replied[r]
        for w in watches
        for r, at in zip(w.revisions, w.received_at, strict=True)
        if r in replied
    )
    missing = sum(max(0, last + 1 - w.expect) for w in watches)
    return {
        "received": [w.received for w in watches],
        "gaps": sum(w.gaps for w in watches) + missing,
        "errors": [
            f"{n} watcher(s): {error}" if n > 1 else error
            for error, n in collections.Counter(w.error for w in watches if w.error).items()
        ]
        + [f"{missing} (watcher, revision) pairs never arrived"] * bool(missing),
        "lag_p50_ms": ms(percentile(lags, 50)),
        "lag_p99_ms": ms(percentile(lags, 99)),
        "lag_max_ms": ms(lags[-1] if lags else None),
        "after_reply_p50_ms": ms(percentile(after_reply, 50)),
        "after_reply_p99_ms": ms(percentile(after_reply, 99)),
        "events_per_response": len(lags) / max(1, sum(w.responses for w in watches)),
        "cpu_s": cpu,
    }


# ---------------------------------------------------------------- write


class _Writes:
    """UpdateUser calls and what became of them."""

    def __init__(self, stub: user_pb2_grpc.UserServiceAsyncStub, ids: list[str]) -> None:
        self.stub, self.ids = stub, ids
        self.mask = field_mask_pb2.FieldMask(paths=["display_name"])
        self.latencies, self.replies = array.array("d"), list[tuple[int, float]]()
        self.counts, self.first_errors = {"ok": 0, "errors": 0, "late": 0}, list[str]()

    async def write(self, i: int, due: float) -> None:
        user = user_pb2.User(id=self.ids[i % len(self.ids)], display_name=f"Live {i}")
        try:
            reply = await self.stub.UpdateUser(
                user_pb2.UpdateUserRequest(user=user, update_mask=self.mask), timeout=60
            )
        except grpc.aio.AioRpcError as error:
            self.counts["errors"] += 1
            if len(self.first_errors) < 3:
                self.first_errors.append(f"UpdateUser {error.code().name}: {error.details()}")
            return
        self.latencies.append(time.monotonic() - due)
        self.replies.append((int(reply.user.etag), time.time()))
        self.counts["ok"] += 1

    def result(self, start_at: float, cpu: float) -> dict[str, Any]:
        return {
            **self.counts,
            "first_errors": self.first_errors,
            "latencies_s": [round(x, 6) for x in self.latencies],
            "end": max((t for _, t in self.replies), default=start_at),
            "cpu_s": cpu,
        }


async def _client_write(
    address: str, rate: float, seconds: float, index: int, stride: int, ids: list[str], out: Path
) -> None:
    """Writes i = index, index + stride, ... < rate x seconds, write i due at start + i/rate."""
    async with _channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        writes = _Writes(user_pb2_grpc.UserServiceStub(channel), ids)
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
                writes.counts["late"] += 1
            task = asyncio.create_task(writes.write(i, due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight)
        cpu = time.process_time() - cpu
    await asyncio.to_thread(out.write_text, json.dumps(writes.replies))
    _say(writes.result(start_at, cpu))


def main(argv: list[str]) -> int:
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
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
