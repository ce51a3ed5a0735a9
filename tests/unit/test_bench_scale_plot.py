"""The scale benchmark's picture (tools/benchmark/scale/plot.py) from a small hand-written
scale.json: the panels it lays out, the SVG it writes, and what it does with holes (a size
measured on one database only, a section without figures to draw, no matplotlib)."""

from __future__ import annotations

import importlib.util
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from benchmark.scale import plot, results

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is missing: it is the bench extra, which `make setup` installs",
)


def _row(label: str, rps: float, p99: float) -> dict[str, Any]:
    return {"label": label, "rps": rps, "p50_ms": p99 / 2, "p99_ms": p99, "errors": 0}


def _measured(users: int, scale: float) -> dict[str, Any]:
    return {
        "load": {"users": users, "orders": users * 5},
        "rows": {
            "get_user_grpc": _row("GetUser gRPC, 32 in flight", 3000 / scale, 10 * scale),
            "get_user_grpc_paced": _row("GetUser gRPC, 1 x 400/s", 400, 2 * scale),
            "create_order_rest": _row("CreateOrder REST, 32 in flight", 1500 / scale, 40 * scale),
        },
        "cold_start": {"seconds": 1.0},
    }


def _scale_json() -> dict[str, Any]:
    """10k on both databases; 100k on SQLite only, with a section offering a figure."""
    held: dict[str, Any] = {"sizes": {}, "runs": {}}
    results.put(held, "10k", "sqlite", "rows", _measured(10_000, 1.0)["rows"])
    results.put(held, "10k", "postgresql", "rows", _measured(10_000, 1.5)["rows"])
    for section, value in _measured(100_000, 1.2).items():
        results.put(held, "100k", "sqlite", section, value)
    serving = results.plotted(12.5, "s", "order_svc cold start: SERVING", limit=60)
    results.put(held, "100k", "sqlite", "replay", {"plot": {"serving_s": serving}})
    held["runs"]["10k/sqlite"] = {"nproc": "2", "cpu": "a CPU", "date": "2026-12-05T07:00"}
    return held


def _svg_texts(path: Path) -> tuple[str, set[str]]:
    """The root's tag and every text drawn (matplotlib notes each above its glyphs)."""
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    root = ET.fromstring(path.read_text(), parser=parser)
    comment: object = ET.Comment  # a comment's tag (typeshed says every tag is a str)
    texts = {str(e.text).strip() for e in root.iter() if e.tag is comment}
    return root.tag, texts


def test_each_request_gets_its_p99_paced_p99_and_throughput_panels() -> None:
    grid = plot.row_panels(_scale_json())
    titles = [[p.title if p else None for p in line] for line in grid]
    assert titles == [
        ["GetUser gRPC\np99, 32 in flight", "GetUser gRPC\np99, 1 x 400/s",
         "GetUser gRPC\nthroughput, 32 in flight"],
        ["CreateOrder REST\np99, 32 in flight", None,
         "CreateOrder REST\nthroughput, 32 in flight"],
    ]  # fmt: skip


def test_a_size_measured_on_one_database_is_a_point_of_its_line_alone() -> None:
    p99 = plot.row_panels(_scale_json())[0][0]
    assert p99 is not None
    assert p99.points == {"sqlite": {10_000: 10.0, 100_000: 12.0}, "postgresql": {10_000: 15.0}}


def test_each_database_has_its_target_at_one_and_a_half_times_its_10k_p99() -> None:
    p99, paced, throughput = plot.row_panels(_scale_json())[0]
    assert p99 is not None
    assert paced is not None
    assert throughput is not None
    assert p99.limits == {"sqlite": 15.0, "postgresql": pytest.approx(22.5)}
    assert paced.limits == {"sqlite": 3.0, "postgresql": 4.5}
    assert throughput.limits == {}


def test_a_section_offering_figures_gets_a_panel_and_one_without_none() -> None:
    (panel,) = plot.section_panels(_scale_json())
    assert panel.title == "order_svc cold start: SERVING"
    assert panel.unit == "s"
    assert panel.points == {"sqlite": {100_000: 12.5}}
    assert panel.limits == {None: 60.0}


def test_sizes_are_shown_as_the_users_they_hold() -> None:
    assert [plot.shown_count(n) for n in (10_000, 100_000, 1_000_000, 200)] == [
        "10k",
        "100k",
        "1M",
        "200",
    ]


@needs_matplotlib
def test_the_picture_is_an_svg_with_every_panel_and_both_databases(tmp_path: Path) -> None:
    held = tmp_path / "scale.json"
    results.write(held, _scale_json())
    said = plot.plot(held)
    assert said == f"drawn: {tmp_path / 'scale.svg'}"
    tag, texts = _svg_texts(tmp_path / "scale.svg")
    assert tag == "{http://www.w3.org/2000/svg}svg"
    assert {"GetUser gRPC", "CreateOrder REST", "p99, 1 x 400/s", "throughput, 32 in flight"} <= (
        texts
    )
    assert {"order_svc cold start: SERVING", "SQLite", "PostgreSQL", "10k", "100k", "1M"} <= texts
    assert plot.TITLE in texts


@needs_matplotlib
def test_the_same_figures_draw_the_same_file(tmp_path: Path) -> None:
    found = _scale_json()
    first = plot.draw(found, tmp_path / "first.svg").read_bytes()
    assert plot.draw(found, tmp_path / "second.svg").read_bytes() == first


@needs_matplotlib
def test_results_of_sqlite_alone_and_of_sections_alone_still_draw(tmp_path: Path) -> None:
    found = _scale_json()
    del found["sizes"]["10k"]["postgresql"]
    plot.draw(found, tmp_path / "sqlite.svg")
    assert "PostgreSQL" not in _svg_texts(tmp_path / "sqlite.svg")[1]
    for measured in found["sizes"].values():
        measured["sqlite"].pop("rows", None)
    plot.draw(found, tmp_path / "sections.svg")
    assert "order_svc cold start: SERVING" in _svg_texts(tmp_path / "sections.svg")[1]


@needs_matplotlib
def test_nothing_to_draw_is_said_and_nothing_written(tmp_path: Path) -> None:
    held = tmp_path / "scale.json"
    held.write_text(json.dumps({"sizes": {"10k": {"sqlite": {"load": {"users": 10}}}}}))
    assert "not drawn: nothing to plot" in plot.plot(held)
    assert not (tmp_path / "scale.svg").exists()


def test_without_matplotlib_the_run_says_how_to_get_the_picture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    held = tmp_path / "scale.json"
    results.write(held, _scale_json())
    said = plot.plot(held)
    assert "not drawn: matplotlib is not installed" in said
    assert "make setup" in said
    assert not (tmp_path / "scale.svg").exists()


def test_the_sections_offer_their_targets_figures_to_the_picture() -> None:
    cold = {"users_listed": 10, "serving_s": 12.5, "peak_rss_mb": 91.0, "rss_mb": 90.0}
    drawn = results.offered("cold_start", cold)[results.PLOT]
    assert drawn["serving_s"] == {
        "value": 12.5,
        "unit": "s",
        "label": "order_svc cold start: SERVING after",
        "limit": results.COLD_START_TARGET_S,
    }
    assert drawn["peak_rss_mb"]["limit"] == results.COLD_START_RSS_TARGET_MB
    feed = {"replay": {"events_per_s": 1}, "catch_up": {"events_per_s": 40_000}}
    assert results.offered("feed", feed)[results.PLOT]["catch_up_events_per_s"]["value"] == 40_000
    # A figure a part lacks (no writes before compaction: no ratio) is not drawn.
    compacted = {"unit_max_ms": 9.0, "writers_p99_ratio": None}
    assert list(results.offered("compaction", compacted)[results.PLOT]) == ["unit_max_ms"]
    assert results.offered("memory", {"idle_rss_mb": {}}) == {}
