"""The scale mode of `make bench` (`--scale`): for each size, smallest first, and each
database (SQLite, and PostgreSQL with --database): the size loaded (or a kept load reused),
each section of SECTIONS measured on it, then its databases dropped unless --keep-data
(before the next size is loaded: the disk holds one load at a time). The results are added
to bench/out/scale.json and printed as Markdown, and drawn to bench/out/scale.svg (plot.py;
`make bench ARGS=--plot` draws it again from the JSON alone).

A section is a function of the load and the run's options to a JSON-able dict, stored under
its name beside `load` and `rows`; it starts what it needs in a `Session` of its own (the
system on the load: `serving.start_on`; order_svc alone for a cold start), stopped when it
returns. The parts of the issue not measured here (replay and watch catch-up, compaction
under writers, order_svc's cold start) go in as sections. A section's numbers that belong in
the picture go under its `results.PLOT` key, one `results.plotted(value, unit, label, limit)`
per metric (results.py says how they are drawn).
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
from benchmark.scale import plot, results, rows
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
    """Every row of `rows.ROWS` the started system allows (REST rows need the gateway)."""
    with contextlib.ExitStack() as stack:
        session = Session(stack)
        system = start_on(session, loaded, options.no_gateway)
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
        print("stopping the system", flush=True)
    return found


SECTIONS: tuple[tuple[str, Section], ...] = (("rows", measure_rows),)


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
                for name, section in SECTIONS:
                    results.put(held, size.name, target.name, name, section(loaded, options))
                held["runs"][f"{size.name}/{target.name}"] = about | {"seconds": options.seconds}
                results.write(options.out, held)
    print(f"written: {options.out.relative_to(REPO)}")
    print(plot.plot(options.out))
    return results.markdown(held)
