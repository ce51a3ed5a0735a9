"""What the feed rows measured: each run's results, their medians over the rounds beside the
targets (JSON), and the Markdown for the report."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

REPLAY_TARGET = 20_000.0
"""events/s"""
LAG_P99_TARGET_MS = 50.0


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


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


@dataclass
class FeedRounds:
    """The change-feed rows of each round: one replay, one live run per write rate."""

    history: int
    database: str = "SQLite"
    """The user_svc's database: SQLite, or PostgreSQL (`--database`)."""
    replays: list[Replay] = field(default_factory=list)
    lives: list[list[Live]] = field(default_factory=list)


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
    out["live"] = [_live_summary(runs) for runs in zip(*lives, strict=True)]
    return out


def _live_summary(runs: Sequence[Live]) -> dict[str, Any]:
    """The rounds of one write rate."""
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
    return {
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


def _f(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


YES = {True: "yes", False: "**no**"}


def markdown(
    replays: list[Replay], lives: list[list[Live]], history: int, database: str = "SQLite"
) -> list[str]:
    s = summary(replays, lives, history)
    lines = [
        "",
        f"Change feed: WatchUsers from a user_svc of its own ({database}, {history:,} changes of "
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
            f"| ≥ {REPLAY_TARGET:,.0f} events/s | {YES[r['met']]} |",
        ]
    if s["live"]:
        lines += _live_lines(s["live"], lives, database)
    return lines


def _live_lines(live: list[dict[str, Any]], lives: list[list[Live]], database: str) -> list[str]:
    """The live table (`live`: medians per write rate), and what any run missed."""
    first = live[0]
    lines = [
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
        *map(_live_row, live),
    ]
    others = max(r.other_cores for runs in lives for r in runs)
    problems = [
        f"{r.rate_asked:,.0f}/s round {n}: received {sorted(set(r.received))} of "
        f"{r.revisions} revisions ({r.writes_ok} writes ok), {r.gaps} gaps; "
        + ("; ".join(r.errors) or "no errors")
        for n, runs in enumerate(lives, 1)
        for r in runs
        if not r.complete
    ]
    waits = (
        "its one SQLite writer thread"
        if database == "SQLite"
        else "its one PostgreSQL writer thread and the writer lock (PostgreSQL's own CPU is not"
        " in these rows)"
    )
    lines += [
        "",
        f"update_time is taken by user_svc before the write waits for {waits}, "
        "so the lag includes that wait and the commit; 'after reply' is measured "
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


def _live_row(x: dict[str, Any]) -> str:
    delivered = YES[x["every_event_delivered"]]
    if x["write_errors"] or x["late_sends"]:
        delivered += f" ({x['write_errors']} write errors, {x['late_sends']:,} sent late)"
    return (
        f"| {x['rate_asked']:,.0f} | {_f(x['writes_per_s'], ',.0f')} "
        f"| {_f(x['write_p50_ms'])} / {_f(x['write_p99_ms'])} "
        f"| {_f(x['lag_p50_ms'])} | {_f(x['lag_p99_ms'])} | {_f(x['lag_max_ms'])} "
        f"| {_f(x['after_reply_p50_ms'])} / {_f(x['after_reply_p99_ms'])} "
        f"| {_f(x['events_per_response'])} | {delivered} "
        f"| {_f(x['cpu_us_per_write'], ',.0f')} µs "
        f"| rate {YES[x['rate_met']]}, lag {YES[x['lag_met']]} |"
    )
