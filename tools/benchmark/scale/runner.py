"""The scale mode of `make bench` (`--scale`): for each size, smallest first, and each
database (SQLite, and PostgreSQL with --database): the size loaded (or a kept load reused),
each section of SECTIONS measured on it, then its databases dropped unless --keep-data
(before the next size is loaded: the disk holds one load at a time). The results are added
to bench/out/scale.json and printed as Markdown, and drawn to bench/out/scale.svg (plot.py;
`make bench ARGS=--plot` draws it again from the JSON alone).

A section is a function of the load and the run's options to JSON-able parts by name, each
stored beside `load`; it starts what it needs in a `Session` of its own (the system on the
load: `serving.start_on`; user_svc and an order_svc on an empty database for a cold start),
stopped when it returns. The sections: each table's and index's bytes (`footprint`), the
request rows and the services' memory (`rows`), random users read cold and warm (`cache`),
the order feed's replay and catch-up (`feed_catchup`), order_svc's cold start (`cold_start`),
the user history compacted under writers (`compaction`). A part's numbers that belong in the
picture are offered under `results.PLOT` (`results.offered`: which, with their targets).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import postgres
from benchmark.load import ensure_tools
from benchmark.machine import machine
from benchmark.procfs import rss_mb
from benchmark.scale import plot, results, rows
from benchmark.scale.cache import cache
from benchmark.scale.cold_start import cold_start
from benchmark.scale.compaction import compaction
from benchmark.scale.feed_catchup import feed_catchup
from benchmark.scale.footprint import footprint
from benchmark.scale.loader import Loaded, prepare
from benchmark.scale.postgres_store import PostgresTarget
from benchmark.scale.serving import start_on
from benchmark.scale.sizes import Size
from benchmark.scale.sqlite_store import SqliteTarget
from benchmark.scale.store import Target
from benchmark.session import Session
from benchmark.settings import REPO

OUT = REPO / "bench" / "out" / "scale.json"
DATA = REPO / "bench" / "out" / "scale-data"
"""The SQLite loads, one directory per size (ignored by git, as all of bench/out)."""


@dataclass(frozen=True)
class Options:
    sizes: list[Size]
    seconds: int
    """Of each measured run."""
    database: str | None
    """The PostgreSQL server (admin URL) with --database; None: SQLite only."""
    keep: bool
    no_gateway: bool
    data: Path = DATA
    out: Path = OUT


Section = Callable[[Loaded, Options], dict[str, Any]]


def measure_rows(loaded: Loaded, options: Options) -> dict[str, Any]:
    """Every row of `rows.ROWS` the started system allows (REST rows need the gateway), and
    each service's RSS idle (started on the load) and after the rows."""
    with contextlib.ExitStack() as stack:
        session = Session(stack)
        system = start_on(session, loaded, options.no_gateway)
        idle = {name: round(rss_mb(pid), 1) for name, pid in session.roots.items()}
        print("finding the listing pages (paging with the real client)", flush=True)
        target = rows.Target(session, system, rows.find_listings(system, loaded.plan))
        found: dict[str, Any] = {}
        for row in rows.ROWS:
            if row.key.endswith("_rest") and system.gateway is None:
                continue
            row.measure(target, 1)  # warm-up
            run = row.measure(target, options.seconds)
            found[row.key] = results.run_figures(run, row.label)
            print(
                f"{loaded.size.name} {loaded.target:<10} {row.label:<48} {run.rps:8,.0f}/s  "
                f"p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms  errors {run.errors}",
                flush=True,
            )
        after = {name: round(rss_mb(pid), 1) for name, pid in session.roots.items()}
        print("stopping the system", flush=True)
    return {"rows": found, "memory": {"idle_rss_mb": idle, "after_rows_rss_mb": after}}


def measure_feed(loaded: Loaded, options: Options) -> dict[str, Any]:
    """The order feed's replay and a watch catching up (`feed_catchup`)."""
    with contextlib.ExitStack() as stack:
        return {"feed": feed_catchup(Session(stack), loaded)}


def measure_cold_start(loaded: Loaded, options: Options) -> dict[str, Any]:
    """order_svc started against the loaded users with an empty view (`cold_start`)."""
    with contextlib.ExitStack() as stack:
        return {"cold_start": cold_start(Session(stack), loaded, options.database)}


def measure_footprint(loaded: Loaded, options: Options) -> dict[str, Any]:
    """Each table's and index's bytes in both databases (`footprint`)."""
    return {"footprint": footprint(loaded)}


def measure_cache(loaded: Loaded, options: Options) -> dict[str, Any]:
    """Random users read with the page cache dropped, then again warm (`cache`)."""
    with contextlib.ExitStack() as stack:
        return {"cache": cache(Session(stack), loaded)}


def measure_compaction(loaded: Loaded, options: Options) -> dict[str, Any]:
    """The user history compacted while writers run, on a copy of the load (`compaction`)."""
    with contextlib.ExitStack() as stack:
        return {"compaction": compaction(Session(stack), loaded, options.database)}


SECTIONS: tuple[Section, ...] = (
    measure_footprint,
    measure_rows,
    measure_cache,
    measure_feed,
    measure_cold_start,
    measure_compaction,
)
"""Each returns its parts of the results by name (stored beside `load`)."""


def targets(options: Options) -> list[Target]:
    found: list[Target] = [SqliteTarget(options.data)]
    if options.database is not None:
        found.append(PostgresTarget(options.database))
    return found


def run_scale(options: Options, stack: contextlib.ExitStack) -> str:
    """Loads and measures every size on every database; the Markdown of all results held."""
    ensure_tools()
    held = results.read(options.out)
    about = machine()
    if options.database is not None:
        about["postgres"] = postgres.shown(options.database)
        settings = postgres.server_settings(options.database)
        about |= {f"postgres.{k}": v for k, v in settings.items()}
    for size in options.sizes:
        for target in targets(options):
            with contextlib.ExitStack() as each:
                loaded = prepare(target, size, each, keep=options.keep)
                results.put(held, size.name, target.name, "load", loaded.summary())
                for section in SECTIONS:
                    for name, part in section(loaded, options).items():
                        part = part | results.offered(name, part)
                        results.put(held, size.name, target.name, name, part)
                held["runs"][f"{size.name}/{target.name}"] = about | {"seconds": options.seconds}
                results.write(options.out, held)
    print(f"written: {options.out.relative_to(REPO)}")
    print(plot.plot(options.out))
    return results.markdown(held)
