"""The command line of `make bench` (`tools/bench.py`): what it starts, in which order, and
the rounds it measures."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from types import FrameType
from typing import Any

import grpc
import httpx
import psycopg

from benchmark.errors import BenchError, FeedError
from benchmark.feed.results import FeedRounds
from benchmark.feed.runner import FeedBench, measure_feed, start_feed
from benchmark.load import Run, ensure_tools
from benchmark.pg_system import PostgresSystem, start_postgres_feed, start_postgres_system
from benchmark.postgres import LOCAL_URL, parse_database
from benchmark.processes import Proc
from benchmark.references import make_seed_venv, start_echo, start_reference_gateways, start_seed
from benchmark.report import report
from benchmark.scale import plot
from benchmark.scale.runner import OUT as SCALE_OUT
from benchmark.scale.runner import Options, run_scale
from benchmark.scale.sizes import parse_sizes
from benchmark.scenarios import Scenario, measure, round_order, scenarios
from benchmark.session import Session
from benchmark.settings import OUT, REPO
from benchmark.system import start_system


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Throughput and latency, beside references.")
    parser.add_argument("--duration", type=int, help="seconds per run (10; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="3 s runs")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians)")
    parser.add_argument("--no-seed", action="store_true", help="skip the Flask seed design")
    parser.add_argument("--no-gateway", action="store_true", help="only the gRPC rows")
    parser.add_argument("--no-feed", action="store_true", help="skip the change-feed rows")
    parser.add_argument(
        "--database",
        type=parse_database,
        metavar="postgresql|URL",
        help="also run every row that touches a database on PostgreSQL: `postgresql` for the "
        f"server on this machine ({LOCAL_URL}), or a postgresql:// URL; the run creates its "
        "databases there (shop_bench_<pid>_user, _order, _feed) and drops them at the end",
    )
    parser.add_argument(
        "--feed-history", type=int, help="changes of history to replay (50,000; 10,000 --quick)"
    )
    parser.add_argument(
        "--write-rates",
        type=lambda text: [float(r) for r in text.split(",")],
        default=[1000.0, 300.0],
        help="writes/s of the live feed runs, comma-separated (1000,300: the target, and a "
        "rate below user_svc's saturation, where the lag is the feed's own)",
    )
    parser.add_argument("--watchers", type=int, default=10, help="live feed watchers (10)")
    parser.add_argument("--writers", type=int, default=2, help="live feed writer processes (2)")
    parser.add_argument(
        "--scale",
        type=parse_sizes,
        metavar="SIZES",
        help="instead of the rows above, the scale benchmark: loads of 10k, 100k or 1m users "
        "(5 orders each on average), comma-separated, measured on SQLite and, with --database, "
        "on PostgreSQL (databases shop_scale_<size>_user, _order); 10 s runs unless --duration; "
        "results added to bench/out/scale.json",
    )
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="--scale: keep the loads (bench/out/scale-data/, shop_scale_* databases) and reuse "
        "them next time; without it they are dropped at the end",
    )
    parser.add_argument(
        "--plot",
        action="store_true",
        help="only draw bench/out/scale.svg from bench/out/scale.json (a --scale run draws it "
        "at its end); needs matplotlib, which `make setup` installs (the bench extra)",
    )
    return parser


def scale_options(args: argparse.Namespace) -> Options:
    seconds: int = args.duration or (3 if args.quick else 10)
    return Options(args.scale, seconds, args.database, args.keep_data, args.no_gateway)


def start(
    args: argparse.Namespace, session: Session
) -> tuple[list[Scenario], list[FeedBench], PostgresSystem | None]:
    """Starts what the rows measure; the rows, the feed's user_svc (SQLite, then PostgreSQL
    with --database) unless --no-feed, and the system on PostgreSQL with --database."""
    venv: Proc | None = None
    if args.no_seed:
        session.notes.append("--no-seed: the seed design was not measured")
    else:
        print("creating the seed design's venv (flask, gunicorn, requests) meanwhile", flush=True)
        venv = make_seed_venv(session)
    print("generating the echo stubs, starting the echo server", flush=True)
    echo = start_echo(session)
    print("starting the system (tools/run.py)", flush=True)
    system = start_system(session, args.no_gateway)
    on_pg: PostgresSystem | None = None
    if args.database is not None:
        on_pg = start_postgres_system(session, args.database, args.no_gateway)
    ref_urls: dict[str, str] = {}
    if system.gateway:
        print("starting the gateway references: ours and a naive one on a trivial backend")
        ref_urls = start_reference_gateways(session)
    seed = start_seed(session, venv) if venv is not None else None
    feeds = _start_feeds(args, session, on_pg)
    rows = scenarios(session, system, echo, ref_urls, seed, on_pg.system if on_pg else None)
    return rows, feeds, on_pg


def _start_feeds(
    args: argparse.Namespace, session: Session, on_pg: PostgresSystem | None
) -> list[FeedBench]:
    """The feed rows' user_svc on SQLite and, with --database, on PostgreSQL; none with
    --no-feed."""
    if args.no_feed:
        session.notes.append("--no-feed: the change-feed rows were not measured")
        return []
    changes = args.feed_history or (10_000 if args.quick else 50_000)
    feeds = [start_feed(session, changes, args.watchers, args.writers)]
    if on_pg is not None:
        feeds.append(start_postgres_feed(session, on_pg, changes, args.watchers, args.writers))
    return feeds


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    seconds: int = args.duration or (3 if args.quick else 10)
    ensure_tools()
    session = Session(stack)
    rows, feeds, on_pg = start(args, session)
    feed_rounds = [FeedRounds(feed.changes, feed.database) for feed in feeds]
    print("warming up: 1 s each", flush=True)
    for scenario in rows:
        measure(session, scenario, 1)
    rounds: list[dict[str, Run]] = []
    for number in range(1, args.rounds + 1):
        rounds.append({})
        for s in round_order(rows, number):
            r = rounds[-1][s.key] = measure(session, s, seconds)
            figures = (
                f"{r.rps:7,.0f}/s  p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms  errors {r.errors}"
            )
            print(f"round {number}: {s.label:<32} {figures}  ({'; '.join(r.notes)})", flush=True)
        for feed, results in zip(feeds, feed_rounds, strict=True):
            measure_feed(feed, results, number, seconds, args.write_rates)
    return report(session, rows, rounds, seconds, feed_rounds, on_pg)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = build_parser()
    args = parser.parse_args()
    if (args.duration is not None and args.duration < 1) or args.rounds < 1:
        parser.error("--duration and --rounds must be at least 1")
    if args.plot:
        if args.scale is not None:
            parser.error("--plot draws the held results alone: a --scale run draws them anyway")
        print(plot.plot(SCALE_OUT))
        return 0
    if args.keep_data and args.scale is None:
        parser.error("--keep-data goes with --scale")
    if min(args.watchers, args.writers, args.feed_history or 1) < 1 or min(args.write_rates) <= 0:
        parser.error("--watchers, --writers, --feed-history and --write-rates must be positive")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.ExitStack() as stack:
            if args.scale is not None:
                print("\n" + run_scale(scale_options(args), stack))
                return 0
            result = run(args, stack)
            print("stopping everything", flush=True)
    except (BenchError, FeedError) as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    except psycopg.Error as error:
        print(f"bench: PostgreSQL: {error}", file=sys.stderr)
        return 1
    except (grpc.RpcError, httpx.HTTPError) as error:
        print(f"bench: a check call failed: {error!r}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; what it started is stopped", file=sys.stderr)
        return 130
    print("\n" + result.pop("markdown"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten: {OUT.relative_to(REPO)}")
    return 0
