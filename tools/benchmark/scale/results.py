"""The scale benchmark's results: one JSON file that runs add to, and its Markdown table.

    {"sizes": {"10k": {"sqlite": {"load": {...}, "rows": {"get_user_grpc": {...}, ...},
                                  <other sections>: {...}},
                       "postgresql": {...}},
               "100k": {...}},
     "runs": {"<size>/<database>": {"at": ..., "machine": ..., "postgres": ...}}}

A run replaces the sections it measured for the sizes and databases it ran, and keeps the
rest: the 1m figures of one run are compared with the 10k figures of an earlier one (each
row's p99 against its BASELINE figure: the target is at most 1.5 times).

A section other than `rows` gets panels in the picture (plot.py, bench/out/scale.svg) by
holding figures under PLOT, one number per size and database each (`plotted` builds one):

    "cold_start": {..., "plot": {"serving_s": {"value": 41.2, "unit": "s",
                                               "label": "order_svc cold start: SERVING",
                                               "limit": 60}}}

`value` and `unit` are needed; `label` (the panel's title, else "<section>: <metric>") and
`limit` (an absolute target, drawn dashed) are optional. Each metric is one panel: its value
against the users of each size, one line per database; a size or database without it is left
out of its line. The rest of the section is the JSON's alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmark.load import Run
from benchmark.scale.sizes import BASELINE, SIZES

P99_TARGET = 1.5
"""Each row's p99 at most this many times its figure at BASELINE."""
COLD_START_TARGET_S = 60.0
COLD_START_RSS_TARGET_MB = 150.0
RSS_GROWTH_TARGET = 0.20
HOLD_TARGET_MS = 100.0
COMPACTION_P99_TARGET = 2.0
"""The issue's targets: the cold start, memory after the rows, compaction under writers."""
PLOT = "plot"
"""The key of a section's figures to draw (see above)."""


def plotted(
    value: float, unit: str, label: str | None = None, limit: float | None = None
) -> dict[str, Any]:
    """One figure under a section's PLOT: `{"serving_s": plotted(41.2, "s", ..., limit=60)}`."""
    figure: dict[str, Any] = {"value": round(value, 3), "unit": unit}
    if label is not None:
        figure["label"] = label
    if limit is not None:
        figure["limit"] = limit
    return figure


OFFERED: dict[str, tuple[tuple[str, str, str, float | None], ...]] = {
    "feed": (("catch_up.events_per_s", "events/s", "WatchOrders catching up: events/s", None),),
    "cache": (
        ("cold.get_user.p99_ms", "ms", "GetUser, random users, cold cache: p99", None),
        ("warm.get_user.p99_ms", "ms", "GetUser, random users, warm: p99", None),
        ("cold.list_orders.p99_ms", "ms", "ListOrders, random users, cold cache: p99", None),
    ),
    "cold_start": (
        ("serving_s", "s", "order_svc cold start: SERVING after", COLD_START_TARGET_S),
        ("peak_rss_mb", "MB", "order_svc cold start: peak RSS", COLD_START_RSS_TARGET_MB),
    ),
    "compaction": (
        ("unit_max_ms", "ms", "compaction: longest unit (writers held)", HOLD_TARGET_MS),
        (
            "writers_p99_ratio",
            "x",
            "compaction: writer's p99, during / after",
            COMPACTION_P99_TARGET,
        ),
    ),
}
"""The figures of each part that are drawn: (path in the part, unit, title, target)."""


def offered(name: str, part: dict[str, Any]) -> dict[str, Any]:
    """The part's figures to draw, under PLOT (none for a part OFFERED does not name)."""
    figures: dict[str, Any] = {}
    for path, unit, label, limit in OFFERED.get(name, ()):
        value: Any = part
        for step in path.split("."):
            value = value.get(step) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            figures[path.replace(".", "_")] = plotted(value, unit, label, limit)
    return {PLOT: figures} if figures else {}


def run_figures(run: Run, label: str) -> dict[str, Any]:
    figures = asdict(run)
    figures["label"] = label
    for key in ("rps", "p50_ms", "p99_ms"):
        figures[key] = round(figures[key], 3)
    return figures


def read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"sizes": {}, "runs": {}}
    found: dict[str, Any] = json.loads(path.read_text())
    found.setdefault("sizes", {})
    found.setdefault("runs", {})
    return found


def put(results: dict[str, Any], size: str, database: str, section: str, value: Any) -> None:
    results["sizes"].setdefault(size, {}).setdefault(database, {})[section] = value


def write(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def p99_ratio(results: dict[str, Any], size: str, database: str, row: str) -> float | None:
    """The row's p99 over its BASELINE figure on the same database; None without one."""
    sizes = results["sizes"]
    base = sizes.get(BASELINE, {}).get(database, {}).get("rows", {}).get(row)
    here = sizes.get(size, {}).get(database, {}).get("rows", {}).get(row)
    if not base or not here or not base["p99_ms"]:
        return None
    return float(here["p99_ms"]) / float(base["p99_ms"])


def _order(size: str) -> int:
    return SIZES[size].users if size in SIZES else 0


def markdown(results: dict[str, Any]) -> str:
    """The load times and a table of every row at every size and database held."""
    lines = ["## Scale: loads", "", "| size | database | users | orders | load s "
             "(schema, users, view, orders, changelog, indexes, analyze) | on disk "
             "| B per user (user db) | B per order (order db) |",
             "|---|---|---:|---:|---|---:|---:|---:|"]  # fmt: skip
    sizes = sorted(results["sizes"], key=_order)
    for size in sizes:
        for database, found in sorted(results["sizes"][size].items()):
            load = found.get("load")
            if not load:
                continue
            seconds = load["seconds"]
            parts = ", ".join(f"{v:g}" for k, v in seconds.items() if k != "total")
            timing = "kept load reused" if load["reused"] else f"{seconds['total']:g} ({parts})"
            lines.append(
                f"| {size} | {database} | {load['users']:,} | {load['orders']:,} | {timing} "
                f"| {load['bytes'] / 1e6:,.0f} MB | {load.get('user_db_bytes_per_user', '')} "
                f"| {load.get('order_db_bytes_per_order', '')} |"
            )
    lines += ["", "## Scale: rows", "",
              f"p99 / {BASELINE}: the row's p99 over its {BASELINE} figure on the same database "
              f"(target ≤ {P99_TARGET:g}).", "",
              "| row | size | database | req/s | p50 ms | p99 ms | p99 / 10k | errors |",
              "|---|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    keys: dict[str, str] = {}
    for size in sizes:
        for found in results["sizes"][size].values():
            keys |= {k: r["label"] for k, r in found.get("rows", {}).items()}
    for key, label in keys.items():
        for size in sizes:
            for database, found in sorted(results["sizes"][size].items()):
                row = found.get("rows", {}).get(key)
                if row is None:
                    continue
                ratio = p99_ratio(results, size, database, key)
                over = ratio is not None and ratio > P99_TARGET
                shown = "" if ratio is None else f"{ratio:.2f}" + (" (over)" if over else "")
                lines.append(
                    f"| {label} | {size} | {database} | {row['rps']:,.0f} | {row['p50_ms']:.2f} "
                    f"| {row['p99_ms']:.2f} | {shown} | {row['errors']} |"
                )
    return "\n".join(lines + _parts(results, sizes))


def _parts(results: dict[str, Any], sizes: list[str]) -> list[str]:
    """The feed, the cold start and memory, each a table of its own."""
    held = [
        (size, database, found)
        for size in sizes
        for database, found in sorted(results["sizes"][size].items())
    ]
    lines = ["", "## Scale: the order feed", "",
             "| size | database | replay: events | events/s | catch-up: events | events/s "
             "| order_svc CPU µs/event | gaps |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for size, database, found in held:
        if (feed := found.get("feed")) is not None:
            replay, catch = feed["replay"], feed["catch_up"]
            lines.append(
                f"| {size} | {database} | {replay['events']:,} | {replay['events_per_s']:,} "
                f"| {catch['events']:,} | {catch['events_per_s']:,} "
                f"| {catch['order_svc_cpu_us_per_event']} | {replay['gaps'] + catch['gaps']} |"
            )
    lines += ["", "## Scale: where the bytes are", "",
              "| size | database | user db: tables | indexes | B per user (tables + indexes) "
              "| order db: tables | indexes | B per order (tables + indexes) |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for size, database, found in held:
        if (f := found.get("footprint")) is not None:
            u, o = f["user_db"], f["order_db"]
            lines.append(
                f"| {size} | {database} | {u['tables_bytes'] / 1e6:,.0f} MB "
                f"| {u['indexes_bytes'] / 1e6:,.0f} MB "
                f"| {u['per_resource_tables']} + {u['per_resource_indexes']} "
                f"| {o['tables_bytes'] / 1e6:,.0f} MB | {o['indexes_bytes'] / 1e6:,.0f} MB "
                f"| {o['per_resource_tables']} + {o['per_resource_indexes']} |"
            )
    lines += ["", "## Scale: random users, cold cache and warm (one client, paced)", "",
              "| size | database | page cache dropped | GetUser p50 / p99 ms cold | warm "
              "| ListOrders p50 / p99 ms cold | warm |",
              "|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for size, database, found in held:
        if (c := found.get("cache")) is not None:
            cold, warm = c["cold"], c["warm"]
            lines.append(
                f"| {size} | {database} | {'yes' if c['page_cache_dropped'] else 'no'} "
                f"| {cold['get_user']['p50_ms']} / {cold['get_user']['p99_ms']} "
                f"| {warm['get_user']['p50_ms']} / {warm['get_user']['p99_ms']} "
                f"| {cold['list_orders']['p50_ms']} / {cold['list_orders']['p99_ms']} "
                f"| {warm['list_orders']['p50_ms']} / {warm['list_orders']['p99_ms']} |"
            )
    lines += ["", "## Scale: order_svc's cold start (list-then-watch)", "",
              f"Targets: SERVING within {COLD_START_TARGET_S:g} s, RSS under "
              f"{COLD_START_RSS_TARGET_MB:g} MB.", "",
              "| size | database | users listed | SERVING s | peak RSS MB | order_svc CPU s "
              "| user_svc CPU s |", "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for size, database, found in held:
        if (cold := found.get("cold_start")) is not None:
            lines.append(
                f"| {size} | {database} | {cold['users_listed']:,} | {cold['serving_s']} "
                f"| {cold['peak_rss_mb']} | {cold['order_svc_cpu_s']} | {cold['user_svc_cpu_s']} |"
            )
    lines += ["", "## Scale: the user history compacted by user_svc while a writer runs", "",
              f"Targets: each unit holds writers ≤ {HOLD_TARGET_MS:g} ms; the writer's p99 "
              f"during compaction at most {COMPACTION_P99_TARGET:g} times its p99 after.", "",
              "| size | database | revisions | s | units | longest unit ms | writer p99 during ms "
              "| after ms | ratio | writer's longest during ms |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for size, database, found in held:
        if (c := found.get("compaction")) is not None:
            lines.append(
                f"| {size} | {database} | {c['revisions']:,} | {c['seconds']} | {c['units']} "
                f"| {c['unit_max_ms']} | {c['writers_p99_during_ms']} "
                f"| {c['writers_p99_without_ms']} | {c['writers_p99_ratio']} "
                f"| {c['writers_max_during_ms']} |"
            )
    lines += ["", "## Scale: memory (RSS MB, idle on the load → after the rows)", "",
              f"Target: after within {RSS_GROWTH_TARGET:.0%} of idle.", "",
              "| size | database | service | idle | after | growth |",
              "|---|---|---|---:|---:|---:|"]  # fmt: skip
    for size, database, found in held:
        if (memory := found.get("memory")) is not None:
            for name, idle in memory["idle_rss_mb"].items():
                after = memory["after_rows_rss_mb"].get(name, idle)
                lines.append(
                    f"| {size} | {database} | {name} | {idle} | {after} | {after / idle - 1:+.0%} |"
                )
    return lines
