"""The report: medians over the rounds, ratios within a round, the targets, the change feed's
rows and the machine, as Markdown and as JSON."""

from __future__ import annotations

import statistics
from dataclasses import asdict
from typing import Any, NamedTuple

from benchmark.feed.results import FeedRounds
from benchmark.feed.results import markdown as feed_markdown
from benchmark.feed.results import summary as feed_summary
from benchmark.load import Run
from benchmark.machine import machine
from benchmark.pg_system import PostgresSystem
from benchmark.postgres import settings_lines, shown
from benchmark.procfs import rss_mb
from benchmark.scenarios import Scenario
from benchmark.session import Session
from benchmark.settings import IN_FLIGHT, MODERATE, MODERATE_RPS
from benchmark.targets import browser_targets, gateway_targets, order_target, postgres_targets

RATIOS = (  # name, row, the row its rate is compared with in the same round, label
    ("get_user_grpc", "get_user_grpc", "echo", "GetUser gRPC / echo"),
    ("get_user_rest", "get_user_rest", "get_user_grpc", "GetUser REST / GetUser gRPC"),
    ("create_order_rest", "create_order_rest", "seed_post_order",
     "CreateOrder REST / seed POST /order"),
    ("create_order_grpc", "create_order_grpc", "seed_post_order",
     "CreateOrder gRPC / seed POST /order"),
    ("get_order_ours", "get_order_ours", "get_order_naive", "ours / naive"),
    ("get_user_grpc_pg", "get_user_grpc_pg", "get_user_grpc", "GetUser gRPC PostgreSQL / SQLite"),
    ("create_order_rest_pg", "create_order_rest_pg", "seed_post_order",
     "CreateOrder REST (PostgreSQL) / seed POST /order"),
    ("create_order_rest_pg_vs_sqlite", "create_order_rest_pg", "create_order_rest",
     "CreateOrder REST PostgreSQL / SQLite"),
    ("create_order_grpc_pg", "create_order_grpc_pg", "seed_post_order",
     "CreateOrder gRPC (PostgreSQL) / seed POST /order"),
)  # fmt: skip


def report(
    session: Session,
    scenarios: list[Scenario],
    rounds: list[dict[str, Run]],
    seconds: int,
    feeds: list[FeedRounds],
    on_postgres: PostgresSystem | None = None,
) -> dict[str, Any]:
    medians = _medians(scenarios, rounds)
    ratios = {
        name: Ratio(row, label, statistics.median(r[row].rps / r[base].rps for r in rounds))
        for name, row, base, label in RATIOS
        if row in medians and base in medians
    }
    values = {name: ratio.value for name, ratio in ratios.items()}
    rss = {name: round(rss_mb(pid), 1) for name, pid in session.roots.items()}
    info = machine()
    if (others := _others(rounds, feeds)) > 0.1:
        session.notes.append(f"other processes kept up to {others:.2f} CPUs busy during a run")
    lines = _table(scenarios, medians, ratios, seconds, len(rounds))
    order_lines, order_figures = order_target(medians, values.get("create_order_rest"))
    gateway_lines, gateway_figures = gateway_targets(medians, values.get("get_user_rest"), rss)
    browser_lines, browser_figures = browser_targets(medians)
    lines += ["", *order_lines, *gateway_lines, *browser_lines]
    targets: dict[str, Any] = {
        "create_order_rest_vs_seed": order_figures,
        "gateway": gateway_figures,
        "browser_protocols": browser_figures,
    }
    if on_postgres is not None:
        postgres_lines, targets["postgresql"] = postgres_targets(medians, values)
        lines += postgres_lines
    feed_json: dict[str, dict[str, Any]] = {"SQLite": {}, "PostgreSQL": {}}
    for feed in feeds:
        lines += feed_markdown(feed.replays, feed.lives, feed.history, feed.database)
        feed_json[feed.database] = _feed_json(feed)
        tail = "" if feed.database == "SQLite" else "_pg"
        targets["feed_replay" + tail] = feed_json[feed.database].get("replay", {})
        targets["feed_live" + tail] = feed_json[feed.database]["live"]
    database = (
        settings_lines(on_postgres.url, on_postgres.settings, on_postgres.local)
        if on_postgres is not None
        else []
    )
    lines += _footer(session, rss, info, database, seconds)
    return {
        "markdown": "\n".join(lines),
        "machine": info,
        "settings": {"in_flight": IN_FLIGHT, "seconds": seconds, "rounds": len(rounds)},
        "median": {k: asdict(v) for k, v in medians.items()},
        "ratios": {k: {"of": r.label, "value": r.value} for k, r in ratios.items()},
        "targets": targets,
        "feed": feed_json["SQLite"],
        "feed_postgresql": feed_json["PostgreSQL"],
        "rss_mb": rss,
        "rounds": [{k: asdict(v) for k, v in r.items()} for r in rounds],
        "notes": session.notes,
        "postgresql": _postgres_json(on_postgres),
    }


class Ratio(NamedTuple):
    row: str
    """The row whose ratio it is (shown in its line)."""
    label: str
    value: float


def _postgres_json(on_postgres: PostgresSystem | None) -> dict[str, Any]:
    """Where the PostgreSQL rows ran and the settings in force; {} when there were none."""
    if on_postgres is None:
        return {}
    return {
        "server": shown(on_postgres.url),
        "settings": on_postgres.settings,
        "backends_cpu_measured": on_postgres.local,
    }


def _medians(scenarios: list[Scenario], rounds: list[dict[str, Run]]) -> dict[str, Run]:
    """Each row's median over the rounds; requests and errors summed."""
    med, medians = statistics.median, {}
    for s in scenarios:
        runs = [r[s.key] for r in rounds]
        medians[s.key] = Run(
            med(r.rps for r in runs), med(r.p50_ms for r in runs), med(r.p99_ms for r in runs),
            sum(r.requests for r in runs), sum(r.errors for r in runs),
            {n: med(r.cpu_us[n] for r in runs) for n in s.procs},
            other_cores=med(r.other_cores for r in runs),
        )  # fmt: skip
    return medians


def _others(rounds: list[dict[str, Run]], feeds: list[FeedRounds]) -> float:
    """The most CPUs other processes kept busy during any run."""
    others = max(r.other_cores for each in rounds for r in each.values())
    for feed in feeds:
        others = max([others, *(r.other_cores for r in feed.replays)])
        others = max([others, *(x.other_cores for lives in feed.lives for x in lives)])
    return others


def _table(
    scenarios: list[Scenario],
    medians: dict[str, Run],
    ratios: dict[str, Ratio],
    seconds: int,
    rounds: int,
) -> list[str]:
    lines = [
        f"{IN_FLIGHT} requests in flight, {seconds} s per run, median of {rounds} round(s)",
        "",
        "| | requests/s | p50 ms | p99 ms | errors | ratio | CPU µs per request |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for s in scenarios:
        m = medians[s.key]
        ratio = "; ".join(f"{r.label} = {r.value:.2f}" for r in ratios.values() if r.row == s.key)
        cpu = " + ".join(f"{n} {v:,.0f}" for n, v in m.cpu_us.items())
        cpu += f" = {sum(m.cpu_us.values()):,.0f}" if len(m.cpu_us) > 1 else ""
        cells = [s.label, f"{m.rps:,.0f}", f"{m.p50_ms:.2f}", f"{m.p99_ms:.2f}", str(m.errors)]
        lines.append("| " + " | ".join([*cells, ratio, cpu]) + " |")
    return lines


def _feed_json(feed: FeedRounds) -> dict[str, Any]:
    """The change feed's medians and targets, and each round's runs."""
    out = feed_summary(feed.replays, feed.lives, feed.history)
    out["rounds"] = [
        {"replay": asdict(r), "live": [asdict(x) for x in lives]}
        for r, lives in zip(feed.replays, feed.lives, strict=True)
    ]
    return out


def _footer(
    session: Session,
    rss: dict[str, float],
    info: dict[str, str],
    database: list[str],
    seconds: int,
) -> list[str]:
    """Memory, the machine, PostgreSQL's settings (`database`), the notes, and how each kind
    of row was driven."""
    return [
        "",
        "RSS at the end, MB (gunicorn: master + 2 workers): "
        + ", ".join(f"{n} {v:.0f}" for n, v in rss.items()),
        "",
        *(f"- {k}: {v}" for k, v in info.items()),
        *database,
        *(f"- note: {n}" for n in session.notes),
        "",
        f"gRPC rows: h2load -t1 -c{IN_FLIGHT} -m1 -D {seconds}; REST and seed rows: wrk -t2 "
        f"-c{IN_FLIGHT} -d{seconds}s --latency; paced rows: h2load -c{MODERATE} "
        f"--rps={MODERATE_RPS} (REST: --h1). Errors: "
        "non-2xx, socket errors, failed gRPC calls (reply bytes, or orders made).",
    ]
