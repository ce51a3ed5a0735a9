"""The scale benchmark's picture: bench/out/scale.json drawn as small multiples against the
data size (`make bench ARGS=--plot`; a scale run draws it at its end).

One grid row per request of the `rows` section: its p99 at IN_FLIGHT, its p99 paced, its
req/s at IN_FLIGHT (a paced row's req/s is its pacing, not worth a panel). Then one panel per
metric that another section offers for plotting (results.PLOT: `{"value", "unit"}`, optional
`"label"` and `"limit"`). Every panel: x the users of each size on a log scale, one line per
database; on the latency panels each database's 1.5x target, dashed, at its own BASELINE p99.

matplotlib (the `bench` extra) is imported only here, when a picture is drawn: without it a
scale run still writes its JSON and says how to get the picture. The Figure is built without
pyplot: no global state, no display, nothing but the file written.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.scale import results
from benchmark.scale.sizes import BASELINE, SIZES
from benchmark.settings import REPO

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PACED = "_paced"
"""The key suffix of a row's paced variant (rows.py): it shares the grid row of its stem."""
NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
STYLES = {"sqlite": ("#1f77b4", "o"), "postgresql": ("#d62728", "s")}
OTHER_STYLES = (("#2ca02c", "^"), ("#9467bd", "D"), ("#8c564b", "v"))
COLUMNS = 3
TIMES = "\N{MULTIPLICATION SIGN}"
OUT_NAME = "bench/out/scale.json"
TITLE = "Latency and throughput against data size"
PANEL_INCHES = (3.4, 2.35)
MISSING = (
    "matplotlib is not installed (the bench extra): `make setup`, or "
    "`.venv/bin/pip install -e '.[bench]'`, then `make bench ARGS=--plot`"
)


@dataclass(frozen=True)
class Panel:
    """One small multiple: its title, y unit, points (users -> value) per database, and its
    dashed lines (a value per database, or one for all under the key None)."""

    title: str
    unit: str
    points: dict[str, dict[int, float]]
    limits: dict[str | None, float]
    limit_label: str = ""


def users_of(found: dict[str, Any], size: str) -> int | None:
    """A size's users: as its load says, else as SIZES says (None: neither knows)."""
    for measured in found["sizes"].get(size, {}).values():
        load = measured.get("load")
        if load and "users" in load:
            return int(load["users"])
    return SIZES[size].users if size in SIZES else None


def shown_count(users: int) -> str:
    """10000 -> 10k, 1000000 -> 1M."""
    for step, suffix in ((1_000_000, "M"), (1_000, "k")):
        if users >= step and users % step == 0:
            return f"{users // step}{suffix}"
    return f"{users:,}"


def _values(found: dict[str, Any], pick: Any) -> dict[str, dict[int, float]]:
    """database -> users -> pick(figures of that size and database), where pick finds one."""
    points: dict[str, dict[int, float]] = {}
    for size, databases in found["sizes"].items():
        users = users_of(found, size)
        if users is None:
            continue
        for database, measured in databases.items():
            value = pick(measured)
            if isinstance(value, int | float) and not isinstance(value, bool):
                points.setdefault(database, {})[users] = float(value)
    return points


def _row(key: str, figure: str) -> Any:
    return lambda measured: measured.get("rows", {}).get(key, {}).get(figure)


def _labels(found: dict[str, Any]) -> dict[str, str]:
    """Every row key held, in the order the runs measured them, with its label."""
    labels: dict[str, str] = {}
    for databases in found["sizes"].values():
        for measured in databases.values():
            for key, row in measured.get("rows", {}).items():
                labels.setdefault(key, str(row.get("label", key)))
    return labels


def _split(label: str) -> tuple[str, str]:
    """ "GetUser gRPC, 32 in flight" -> ("GetUser gRPC", "32 in flight")."""
    what, _, how = label.rpartition(", ")
    return (what, how) if what else (label, "")


def _p99_targets(found: dict[str, Any], key: str) -> dict[str | None, float]:
    targets: dict[str | None, float] = {}
    for database, measured in found["sizes"].get(BASELINE, {}).items():
        p99 = measured.get("rows", {}).get(key, {}).get("p99_ms")
        if p99:
            targets[database] = results.P99_TARGET * float(p99)
    return targets


def row_panels(found: dict[str, Any]) -> list[list[Panel | None]]:
    """A grid row per request of `rows`: p99 at IN_FLIGHT, p99 paced, req/s at IN_FLIGHT
    (None where a row has no such variant)."""
    labels = _labels(found)
    target = f"target (p99: {results.P99_TARGET:g}{TIMES} its {BASELINE} figure)"
    grid: list[list[Panel | None]] = []
    for stem in dict.fromkeys(k.removesuffix(PACED) for k in labels):
        cells: list[Panel | None] = []
        for key, figure, unit in (
            (stem, "p99_ms", "ms"),
            (stem + PACED, "p99_ms", "ms"),
            (stem, "rps", "req/s"),
        ):
            points = _values(found, _row(key, figure))
            if key not in labels or not points:
                cells.append(None)
                continue
            what, how = _split(labels[key])
            title = f"{what}\n{'p99' if figure == 'p99_ms' else 'throughput'}, {how}"
            limits = _p99_targets(found, key) if figure == "p99_ms" else {}
            cells.append(Panel(title, unit, points, limits, target if limits else ""))
        grid.append(cells)
    return grid


def section_panels(found: dict[str, Any]) -> list[Panel]:
    """A panel per metric another section offers under results.PLOT, in the order held."""
    metrics: dict[tuple[str, str], dict[str, Any]] = {}
    for databases in found["sizes"].values():
        for measured in databases.values():
            for section, figures in measured.items():
                offered = figures.get(results.PLOT) if isinstance(figures, dict) else None
                for metric, entry in (offered or {}).items():
                    if isinstance(entry, dict) and "value" in entry:
                        metrics.setdefault((section, metric), entry)
    panels = []
    for (section, metric), entry in metrics.items():

        def pick(measured: dict[str, Any], s: str = section, m: str = metric) -> Any:
            return measured.get(s, {}).get(results.PLOT, {}).get(m, {}).get("value")

        limit = entry.get("limit")
        limits: dict[str | None, float] = {} if limit is None else {None: float(limit)}
        title = str(entry.get("label") or f"{section}: {metric}")
        panels.append(
            Panel(title, str(entry.get("unit", "")), _values(found, pick), limits, "target")
        )
    return panels


def layout(found: dict[str, Any]) -> list[list[Panel | None]]:
    """The grid of panels: the rows' grid, then the sections' panels COLUMNS to a line."""
    grid = row_panels(found)
    extra = section_panels(found)
    for start in range(0, len(extra), COLUMNS):
        line: list[Panel | None] = list(extra[start : start + COLUMNS])
        grid.append(line + [None] * (COLUMNS - len(line)))
    return grid


def _style(database: str, order: list[str]) -> tuple[str, str]:
    if database in STYLES:
        return STYLES[database]
    others = [d for d in order if d not in STYLES]
    return OTHER_STYLES[others.index(database) % len(OTHER_STYLES)]


def _databases(grid: list[list[Panel | None]]) -> list[str]:
    """Every database drawn: SQLite, PostgreSQL, then any other by name."""
    known = {d for line in grid for p in line if p for d in p.points}
    return [d for d in STYLES if d in known] + sorted(known - set(STYLES))


def _draw(axes: Axes, panel: Panel, ticks: list[int], order: list[str]) -> None:
    for database in order:
        if database not in panel.points:
            continue
        colour, marker = _style(database, order)
        xs = sorted(panel.points[database])
        axes.plot(xs, [panel.points[database][x] for x in xs], marker=marker, color=colour,
                  linewidth=1.8, markersize=6, label=NAMES.get(database, database))  # fmt: skip
    for owner, limit in panel.limits.items():
        colour = "0.35" if owner is None else _style(owner, order)[0]
        axes.axhline(limit, color=colour, linestyle=(0, (5, 3)), linewidth=1.1, alpha=0.8)
    axes.set_xscale("log")
    axes.set_xticks(ticks, [shown_count(t) for t in ticks])
    axes.minorticks_off()
    axes.set_xlim(ticks[0] / 1.7, ticks[-1] * 1.7)
    axes.set_ylim(bottom=0, top=_top(panel))
    axes.set_ylabel(panel.unit, fontsize=8.5)
    axes.set_title(panel.title, fontsize=9.5, loc="left")
    axes.tick_params(labelsize=8.5)
    axes.grid(True, axis="y", color="0.9", linewidth=0.8)
    axes.spines[["top", "right"]].set_visible(False)


def _top(panel: Panel) -> float:
    """Room above the highest point or dashed line (0 on the axis keeps growth honest)."""
    highest = max(
        [v for p in panel.points.values() for v in p.values()] + list(panel.limits.values())
    )
    return highest * 1.15 if highest > 0 else 1.0


def _ticks(found: dict[str, Any]) -> list[int]:
    """Every size the benchmark knows and every one held: panels share their x axis."""
    known = {s.users for s in SIZES.values()}
    known |= {u for size in found["sizes"] if (u := users_of(found, size)) is not None}
    return sorted(known)


def _caption(found: dict[str, Any]) -> str:
    """Where and when the figures were measured, from the runs' records."""
    runs = [r for r in found.get("runs", {}).values() if isinstance(r, dict)]
    days = sorted({str(r["date"])[:10] for r in runs if r.get("date")})
    machines = sorted({f"{r['nproc']} cores ({r['cpu']})" for r in runs if r.get("nproc")})
    seconds = sorted({int(r["seconds"]) for r in runs if r.get("seconds")})
    where = []
    if days:
        where.append("measured " + " to ".join(dict.fromkeys([days[0], days[-1]])))
    if machines:
        where.append("on " + ", ".join(machines))
    if seconds:
        where.append("/".join(map(str, seconds)) + " s per row")
    return "; ".join(
        [" ".join(where), f"figures: {OUT_NAME}"] if where else [f"figures: {OUT_NAME}"]
    )


def _cells(grid: list[list[Panel | None]]) -> Iterator[tuple[int, int, Panel | None]]:
    for r, line in enumerate(grid):
        for c in range(COLUMNS):
            yield r, c, line[c] if c < len(line) else None


def draw(found: dict[str, Any], out: Path) -> Path:
    """The picture of `found` (scale.json's content) written to `out` (.svg or .png)."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    grid = layout(found)
    if not any(p for line in grid for p in line):
        raise ValueError("nothing to plot: no rows and no section offers a figure")
    order, ticks = _databases(grid), _ticks(found)
    width, height = PANEL_INCHES
    # A fixed salt and no date: the same results draw the same file (it can be committed).
    with rc_context({"svg.hashsalt": "scale"}):
        figure = Figure(figsize=(width * COLUMNS, height * len(grid) + 1.1), layout="constrained")
        axes = figure.subplots(len(grid), COLUMNS, squeeze=False)
        bottoms = {c: r for r, c, panel in _cells(grid) if panel is not None}
        for r, c, panel in _cells(grid):
            if panel is None:
                axes[r][c].set_visible(False)
                continue
            _draw(axes[r][c], panel, ticks, order)
            if bottoms[c] == r:
                axes[r][c].set_xlabel(f"users (orders: 5{TIMES})", fontsize=8.5)
        handles = [
            Line2D([], [], color=_style(d, order)[0], marker=_style(d, order)[1], linewidth=1.8,
                   label=NAMES.get(d, d)) for d in order
        ]  # fmt: skip
        # One entry for every dashed line: the rows' (per database) say what they are.
        limit_labels = {p.limit_label for line in grid for p in line if p and p.limit_label}
        if limit_labels:
            handles.append(
                Line2D([], [], color="0.35", linestyle=(0, (5, 3)), linewidth=1.1,
                       label=max(limit_labels, key=len))
            )  # fmt: skip
        # The title as the legend's: constrained layout stacks a suptitle and an outside
        # legend on top of each other.
        legend = figure.legend(handles=handles, loc="outside upper center", ncol=len(handles),
                               frameon=False, fontsize=9.5, title=TITLE)  # fmt: skip
        legend.get_title().set(fontsize=13, fontweight="bold")
        figure.supxlabel(_caption(found), x=0.005, ha="left", fontsize=8, color="0.35")
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(out, metadata={"Date": None} if out.suffix == ".svg" else None)
    return out


def plot(json_path: Path, out: Path | None = None) -> str:
    """Draws `json_path` to `out` (beside it, .svg, by default); what happened, in a line. A
    missing matplotlib or nothing to draw is said, not raised: the JSON is what matters."""
    out = out or json_path.with_suffix(".svg")
    shown = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    if importlib.util.find_spec("matplotlib") is None:
        return f"{shown} not drawn: {MISSING}"
    try:
        draw(results.read(json_path), out)
    except ValueError as error:
        return f"{shown} not drawn: {error}"
    return f"drawn: {shown}"
